@preconcurrency import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The secret a primary and its backup share: whoever holds it can join or impersonate a replica.
///
/// A key file is text: comment lines starting with `#`, and one line `lockstep-key-v1` followed
/// by 64 hexadecimal digits (32 bytes). `lockstep keygen` writes one with mode 0600.
public struct ReplicationKey: Sendable, Equatable {
    /// The 32 key bytes.
    let bytes: [UInt8]

    public static let size = 32
    static let tag = "lockstep-key-v1"

    /// A key from its 32 bytes (a caller's error traps: keys from outside come through the file
    /// parser, which checks them).
    public init(bytes: [UInt8]) {
        precondition(bytes.count == Self.size, "a replication key has \(Self.size) bytes")
        self.bytes = bytes
    }

    var symmetricKey: SymmetricKey { SymmetricKey(data: bytes) }

    /// A new key from the system's cryptographic random source (getrandom(2)).
    public static func generate() -> ReplicationKey {
        var generator = SystemRandomNumberGenerator()
        return ReplicationKey(bytes: (0..<size).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }

    /// The fixed, public key of `--insecure` runs: the channel is still encrypted against a
    /// passive eavesdropper (the ephemeral exchange), but anyone can join.
    public static let insecure = ReplicationKey(bytes: Array(SHA256.hash(data: Array("lockstep insecure key: anyone can join".utf8))))

    /// The key file's text.
    public var fileText: String {
        "# lockstep replication key: anyone who holds it can join or impersonate a replica\n"
            + "\(Self.tag) \(bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined())\n"
    }

    /// Parses a key file's text.
    public init(fileText text: String) throws(KeyFileError) {
        var found: [UInt8]?
        for line in text.split(whereSeparator: \.isNewline) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count == 2, fields[0] == Self.tag else { throw .malformed("expected \"\(Self.tag)\" and 64 hexadecimal digits") }
            guard found == nil else { throw .malformed("more than one key") }
            let hex = Array(fields[1].utf8)
            guard hex.count == 2 * Self.size else { throw .malformed("the key has \(hex.count) digits, expected \(2 * Self.size)") }
            var bytes: [UInt8] = []
            for i in stride(from: 0, to: hex.count, by: 2) {
                guard let high = Self.hexValue(hex[i]), let low = Self.hexValue(hex[i + 1]) else {
                    throw .malformed("the key is not hexadecimal")
                }
                bytes.append(high << 4 | low)
            }
            found = bytes
        }
        guard let found else { throw .malformed("no key in it") }
        self.init(bytes: found)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// The largest key file read (a key file is one line and a comment).
    static let maximumFileSize = 4096

    /// Loads the key in `path`, refusing a file that is not a regular file, that grants any
    /// permission to its group or others, or that belongs to another user (root excepted).
    public init(contentsOf path: String) throws(KeyFileError) {
        let attributes: [FileAttributeKey: Any]
        do { attributes = try FileManager.default.attributesOfItem(atPath: path) } catch {
            throw .unreadable(path, Self.reason(error))
        }
        guard attributes[.type] as? FileAttributeType == .typeRegular else { throw .notRegular(path) }
        let permissions = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? 0o777
        guard permissions & 0o077 == 0 else { throw .permissive(path, permissions) }
        let owner = (attributes[.ownerAccountID] as? NSNumber)?.uint32Value ?? UInt32.max
        guard owner == geteuid() || owner == 0 else { throw .foreignOwner(path, owner) }
        let size = (attributes[.size] as? NSNumber)?.intValue ?? 0
        guard size <= Self.maximumFileSize else { throw .malformed("\(size) bytes is too large for a key file") }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw .unreadable(path, Self.reason(error))
        }
        guard let text = String(validating: Array(data.prefix(Self.maximumFileSize)), as: UTF8.self) else {
            throw .malformed("not text")
        }
        do { try self.init(fileText: text) } catch let KeyFileError.malformed(why) {
            throw .malformed("\(path): \(why)")
        }
    }

    /// Writes a new key file at `path` with mode 0600. An existing file is never overwritten.
    public func write(to path: String) throws(KeyFileError) {
        // The corresponding C call is open(2) with O_CREAT | O_EXCL: never replace a key.
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let code = errno
            throw code == EEXIST ? .exists(path) : .unwritable(path, String(cString: strerror(code)))
        }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        do {
            try handle.write(contentsOf: Data(fileText.utf8))
            try handle.synchronize()
        } catch {
            unlink(path)
            throw .unwritable(path, Self.reason(error))
        }
    }

    private static func reason(_ error: any Error) -> String {
        if let posix = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError, posix.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(posix.code)))
        }
        if (error as NSError).domain == NSCocoaErrorDomain, (error as NSError).code == NSFileReadNoSuchFileError {
            return "no such file"
        }
        return (error as NSError).localizedDescription
    }
}

/// A key file that cannot be used. Each description is one line for the user.
public enum KeyFileError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(String, String)
    case notRegular(String)
    case permissive(String, Int)
    case foreignOwner(String, UInt32)
    case malformed(String)
    case exists(String)
    case unwritable(String, String)

    public var description: String {
        switch self {
        case .unreadable(let path, let why): "cannot read the key file \(path): \(why)"
        case .notRegular(let path): "the key file \(path) is not a regular file"
        case .permissive(let path, let mode):
            "the key file \(path) is accessible to others (mode \(String(mode, radix: 8))): chmod 600 it, or make a new one with lockstep keygen"
        case .foreignOwner(let path, let uid): "the key file \(path) belongs to user \(uid), not to you"
        case .malformed(let why): "not a lockstep key file: \(why) (make one with lockstep keygen)"
        case .exists(let path): "\(path) already exists: lockstep keygen never overwrites a file"
        case .unwritable(let path, let why): "cannot create the key file \(path): \(why)"
        }
    }
}
