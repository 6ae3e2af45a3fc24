/// Why a machine snapshot could not be written, read or restored. Each description is one line
/// for the user.
public enum SnapshotError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The bytes do not start with the snapshot magic.
    case notASnapshot
    /// A snapshot format version this Lockstep does not read.
    case unsupportedVersion(UInt16)
    /// The data ended early.
    case truncated(String)
    /// A record's checksum does not match its contents: the file is damaged.
    case checksumMismatch(record: String)
    /// A record is longer than any valid one of its type.
    case recordTooLarge(record: String, length: UInt64, limit: UInt64)
    /// Well-formed records whose contents make no sense (or a value out of range).
    case malformed(String)
    /// The snapshot is of another guest image or configuration.
    case foreign(String)
    /// The machine cannot take or restore a snapshot in its current state or configuration.
    case unsupported(String)
    /// The restored machine does not arrive at the state the snapshot recorded.
    case digestMismatch(what: String, expected: StateDigest, actual: StateDigest)
    /// Reading the snapshot's file or stream failed.
    case io(String)
    /// Writing the snapshot's file or stream failed.
    case writeFailed(String)

    public var description: String {
        switch self {
        case .notASnapshot: "not a Lockstep machine snapshot (bad magic)"
        case .unsupportedVersion(let v):
            "snapshot format version \(v) is not supported (this Lockstep reads version \(MachineSnapshot.version))"
        case .truncated(let what): "the snapshot is truncated (\(what))"
        case .checksumMismatch(let record): "the snapshot's \(record) record is damaged (checksum mismatch)"
        case .recordTooLarge(let record, let length, let limit):
            "the snapshot's \(record) record claims \(length) bytes, more than the \(limit) it can have"
        case .malformed(let why): "malformed snapshot: \(why)"
        case .foreign(let why): "the snapshot does not fit this run: \(why)"
        case .unsupported(let why): "cannot snapshot this machine: \(why)"
        case .digestMismatch(let what, let expected, let actual):
            "the restored \(what) digest \(actual.description.prefix(16))… differs from the snapshot's \(expected.description.prefix(16))…"
        case .io(let why), .writeFailed(let why): why
        }
    }
}
