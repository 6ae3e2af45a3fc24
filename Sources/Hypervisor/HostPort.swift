/// A network address as given on the command line, in QEMU's spellings: `HOST:PORT`,
/// `[IPV6]:PORT` (brackets required around an IPv6 address) and `:PORT` (no host: the caller's
/// default, all addresses for a listener and this host for a client, as QEMU's `tcp::PORT`).
public struct HostPort: Hashable, Sendable, CustomStringConvertible {
    /// The host name or address, without brackets; nil when the text gave only a port.
    public var host: String?
    public var port: Int

    public init(host: String?, port: Int) {
        self.host = host
        self.port = port
    }

    /// Why a text is not an address: the one line to show after the option's name.
    public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        case noPort
        case badPort(String)
        case unbracketedIPv6
        case unclosedBracket
        case emptyHost

        public var description: String {
            switch self {
            case .noPort: "expected HOST:PORT, [IPV6]:PORT or :PORT"
            case .badPort(let text): "\(text.isEmpty ? "the port is missing" : "\(text) is not a port"): expected a number from 0 to 65535"
            case .unbracketedIPv6: "put an IPv6 address in brackets: [ADDRESS]:PORT"
            case .unclosedBracket: "the [ has no closing ]: expected [IPV6]:PORT"
            case .emptyHost: "the host between [ and ] is empty"
            }
        }
    }

    /// Parses `text`.
    public static func parse(_ text: String) -> Result<HostPort, ParseError> {
        let host: Substring?
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return .failure(.unclosedBracket) }
            let inside = text[text.index(after: text.startIndex)..<close]
            guard !inside.isEmpty else { return .failure(.emptyHost) }
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return .failure(.noPort) }
            host = inside
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return .failure(.noPort) }
            let before = text[..<colon]
            if before.contains(":") { return .failure(.unbracketedIPv6) }
            host = before.isEmpty ? nil : before
            portText = text[text.index(after: colon)...]
        }
        guard portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portText), (0...65535).contains(port) else {
            return .failure(.badPort(String(portText)))
        }
        return .success(HostPort(host: host.map(String.init), port: port))
    }

    /// `HOST:PORT`, with an IPv6 address in brackets; `:PORT` without a host.
    public var description: String { Self.format(host: host ?? "", port: port) }

    /// `host:port` as a user would type it back: an IPv6 address in brackets.
    public static func format(host: String, port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}
