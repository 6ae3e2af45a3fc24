import Foundation

/// Where a pair's arbiter lives, as given by `--arbiter` (or `--arbiter-dir DIR`, an alias of
/// `file:DIR`).
///
/// - `file:DIR`: the test-and-set is `O_CREAT|O_EXCL` on a file in DIR, a directory both
///   replicas see (local, or NFSv3 and later, where exclusive create is atomic).
/// - `etcd://HOST:PORT[/PREFIX]`: an etcd v3 cluster member, spoken to through its JSON gateway
///   over HTTP; the pair's keys live under PREFIX (default `/lockstep`). HOST may be a name, an
///   IPv4 address or a bracketed IPv6 address.
public enum ArbiterSpecification: Sendable, Equatable, CustomStringConvertible {
    case directory(String)
    case etcd(EtcdEndpoint)

    /// Parses `--arbiter`'s value; the error's description is the one line to show.
    public init(parsing text: String) throws(ArbiterSpecificationError) {
        if text.hasPrefix("file:") {
            let directory = String(text.dropFirst("file:".count))
            guard !directory.isEmpty else { throw .init(text, "file: needs a directory (file:DIR)") }
            guard !directory.contains("\0") else { throw .init(text, "the directory name contains a NUL byte") }
            self = .directory(directory)
            return
        }
        if text.hasPrefix("etcd://") {
            self = .etcd(try EtcdEndpoint(parsing: text))
            return
        }
        throw .init(text, "expected file:DIR or etcd://HOST:PORT[/PREFIX]")
    }

    public var description: String {
        switch self {
        case .directory(let directory): "file:\(directory)"
        case .etcd(let endpoint): endpoint.description
        }
    }

    /// Checks, when a replica starts, that the arbiter can be used: a failover is the wrong
    /// moment to find out. A directory must take a new file; etcd must answer (one request).
    public func check() throws(ArbiterError) {
        switch self {
        case .directory(let directory):
            try FileArbiter.checkDirectory(directory)
        case .etcd(let endpoint):
            try EtcdArbiter.checkReachable(endpoint)
        }
    }
}

/// An etcd member's client URL and the key prefix for Lockstep's sessions.
public struct EtcdEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// A name or an address (an IPv6 address without its brackets).
    public let host: String
    public let port: Int
    /// The key prefix: starts with "/", no trailing "/".
    public let prefix: String

    public static let defaultPrefix = "/lockstep"

    public init(host: String, port: Int, prefix: String = EtcdEndpoint.defaultPrefix) {
        self.host = host
        self.port = port
        self.prefix = prefix
    }

    /// Parses `etcd://HOST:PORT[/PREFIX]`.
    public init(parsing text: String) throws(ArbiterSpecificationError) {
        var rest = Substring(text)
        guard rest.hasPrefix("etcd://") else { throw .init(text, "expected etcd://HOST:PORT[/PREFIX]") }
        rest = rest.dropFirst("etcd://".count)
        let authority = rest.prefix { $0 != "/" }
        let path = rest.dropFirst(authority.count)
        let host: Substring
        let portText: Substring
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw .init(text, "an IPv6 address needs its closing bracket")
            }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            guard after.hasPrefix(":") else { throw .init(text, "missing :PORT after the host") }
            portText = after.dropFirst()
        } else {
            guard let colon = authority.lastIndex(of: ":") else { throw .init(text, "missing :PORT after the host") }
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        }
        guard !host.isEmpty else { throw .init(text, "missing host") }
        guard host.allSatisfy({ $0.isLetter || $0.isNumber || "-._:".contains($0) }), host.allSatisfy(\.isASCII) else {
            throw .init(text, "the host \"\(host)\" is not a name or an address")
        }
        guard let port = Int(portText), (1...65535).contains(port) else {
            throw .init(text, "the port must be a number from 1 to 65535")
        }
        var prefix = String(path)
        while prefix.hasSuffix("/") { prefix.removeLast() }
        if prefix.isEmpty { prefix = Self.defaultPrefix }
        guard prefix.utf8.count <= 256 else { throw .init(text, "the key prefix is longer than 256 bytes") }
        guard prefix.unicodeScalars.allSatisfy({ $0.value >= 0x21 && $0.value < 0x7F }) else {
            throw .init(text, "the key prefix must be printable ASCII without spaces")
        }
        self.init(host: String(host), port: port, prefix: prefix)
    }

    /// The host as it appears in a URL (IPv6 in brackets).
    var urlHost: String { host.contains(":") ? "[\(host)]" : host }

    public var description: String { "etcd://\(urlHost):\(port)\(prefix)" }
}

/// A `--arbiter` value that cannot be parsed.
public struct ArbiterSpecificationError: Error, Equatable, Sendable, CustomStringConvertible {
    public let text: String
    public let reason: String

    init(_ text: String, _ reason: String) {
        self.text = text
        self.reason = reason
    }

    public var description: String { "--arbiter \(text): \(reason)" }
}
