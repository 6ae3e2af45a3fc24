import Crypto
import Testing
import TestSupport

@testable import MachineCore

@Suite("MemoryDigest")
struct MemoryDigestTests {
    /// A memory with a tracker and a digest made before anything was written.
    func tracked(pages: Int) throws -> (GuestMemory, DirtyPageTracker, MemoryDigest) {
        let memory = try GuestMemory(size: UInt64(pages) * GuestMemory.pageSize)
        let tracker = DirtyPageTracker(memory: memory)
        return (memory, tracker, MemoryDigest(tracker: tracker))
    }

    @Test func freshRAMDigestsAsZeroPagesWithoutReadingThem() throws {
        let (memory, _, digest) = try tracked(pages: 130)
        #expect(try digest.digest() == MemoryDigest.recomputed(memory))
        #expect(try digest.nonZeroPages().isEmpty)
        #expect(GuestMemory.zeroPageDigest.bytes == Array(SHA256.hash(data: [UInt8](repeating: 0, count: 4096))))
    }

    @Test func incrementalEqualsRecomputedAfterRandomWrites() throws {
        // 200 pages: three full groups and a partial one.
        let (memory, _, digest) = try tracked(pages: 200)
        var random = SplitMix64(seed: 13)
        var seen: Set<StateDigest> = [try digest.digest()]
        for round in 0..<40 {
            for _ in 0..<Int(random.next() % 5) {
                let offset = random.next() % (memory.size - 8)
                switch random.next() % 4 {
                case 0: try memory.write([UInt8(truncatingIfNeeded: random.next())], at: GuestAddress(offset))
                case 1: try memory.fill(0, at: GuestAddress(offset & ~4095), count: 4096)
                case 2: memory.storeBigEndianWord(UInt32(truncatingIfNeeded: random.next()),
                                                  atOffset: UInt32(offset & ~3))
                default: try memory.store(random.next(), at: GuestAddress(offset), order: .little)
                }
            }
            let incremental = try digest.digest()
            #expect(incremental == MemoryDigest.recomputed(memory), "round \(round)")
            seen.insert(incremental)
        }
        #expect(seen.count > 20)
    }

    @Test func aPageWrittenBackToZeroIsAZeroPageAgain() throws {
        let (memory, _, digest) = try tracked(pages: 8)
        let zero = try digest.digest()
        try memory.write([1], at: GuestAddress(3 * 4096 + 7))
        #expect(try digest.nonZeroPages() == [3])
        let changed = try digest.digest()
        #expect(changed != zero)
        try memory.write([0], at: GuestAddress(3 * 4096 + 7))
        #expect(try digest.digest() == zero)
        #expect(try digest.nonZeroPages().isEmpty)
    }

    @Test func everyByteAndTheSizeTakePart() throws {
        let (small, _, a) = try tracked(pages: 1)
        let (_, _, b) = try tracked(pages: 2)
        #expect(try a.digest() != b.digest())
        try small.write([1], at: GuestAddress(4095))
        let last = try a.digest()
        try small.write([1, 1], at: GuestAddress(4094))
        #expect(try a.digest() != last)
    }

    @Test func writesBeforeTheDigestExistedAreSeen() throws {
        let memory = try GuestMemory(size: 4 * 4096)
        try memory.write([5], at: GuestAddress(2 * 4096))
        let digest = MemoryDigest(tracker: DirtyPageTracker(memory: memory))
        #expect(try digest.nonZeroPages() == [2])
        #expect(try digest.digest() == MemoryDigest.recomputed(memory))
    }
}
