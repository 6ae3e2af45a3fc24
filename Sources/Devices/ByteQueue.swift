/// A first-in first-out queue of bytes with amortised O(1) `popFirst`, used for device input
/// that waits to enter a hardware FIFO.
///
/// Equality and the `Codable` form depend only on the bytes in the queue, not on how they are
/// stored, so two replicas holding the same bytes have equal (and equally encoded) state.
public struct ByteQueue: Equatable, Sendable, Codable, ExpressibleByArrayLiteral {
    private var storage: [UInt8]
    private var head: Int = 0

    /// An empty queue.
    public init() { storage = [] }

    /// A queue holding `bytes`, first byte first.
    public init(_ bytes: some Sequence<UInt8>) { storage = Array(bytes) }

    /// A queue holding the literal's bytes, first byte first.
    public init(arrayLiteral elements: UInt8...) { storage = elements }

    /// The number of bytes waiting.
    public var count: Int { storage.count - head }

    /// Whether no byte is waiting.
    public var isEmpty: Bool { head == storage.count }

    /// The waiting bytes, first byte first.
    public var bytes: [UInt8] { Array(storage[head...]) }

    /// Appends `bytes` at the back.
    public mutating func append(contentsOf bytes: some Sequence<UInt8>) {
        storage.append(contentsOf: bytes)
    }

    /// Removes and returns the byte at the front, or nil if the queue is empty.
    public mutating func popFirst() -> UInt8? {
        guard head < storage.count else { return nil }
        let byte = storage[head]
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 4096, head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return byte
    }

    /// Removes every byte.
    public mutating func removeAll() {
        storage.removeAll()
        head = 0
    }

    public static func == (lhs: ByteQueue, rhs: ByteQueue) -> Bool {
        lhs.storage[lhs.head...].elementsEqual(rhs.storage[rhs.head...])
    }

    public init(from decoder: any Decoder) throws {
        storage = try decoder.singleValueContainer().decode([UInt8].self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(bytes)
    }
}
