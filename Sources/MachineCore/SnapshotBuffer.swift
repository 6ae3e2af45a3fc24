/// A snapshot held in memory: written into, then read back (tests, and transfers that hand a
/// whole snapshot over at once).
public final class SnapshotBuffer: SnapshotOutput, SnapshotInput {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8]
    private var position = 0

    /// A buffer holding `bytes`, to be read from the start.
    public init(_ bytes: [UInt8] = []) { self.bytes = bytes }

    public func write(_ bytes: [UInt8]) throws(SnapshotError) { self.bytes += bytes }

    public func read(upTo count: Int) throws(SnapshotError) -> [UInt8] {
        let n = min(max(count, 0), bytes.count - position)
        defer { position += n }
        return Array(bytes[position..<position + n])
    }
}
