import Testing

@testable import MachineCore

@Suite struct RAMCheckpointTests {
    @Test func aRollbackWritesBackOnlyThePagesWrittenSinceTheCheckpoint() throws {
        let memory = try GuestMemory(size: 64 * 4096)
        let tracker = DirtyPageTracker(memory: memory)
        try memory.write([7, 7], at: GuestAddress(3 * 4096 + 10))     // the loaded image
        let checkpoint = try RAMCheckpoint(memory: memory, tracker: tracker)
        #expect(checkpoint.lastCopied == 1, "the first checkpoint keeps the pages that are not zero")
        let before = MemoryDigest.recomputed(memory)

        try memory.write([1], at: GuestAddress(3 * 4096 + 10))
        try memory.write([2], at: GuestAddress(40 * 4096))
        #expect(try checkpoint.restore() == 2)
        #expect(MemoryDigest.recomputed(memory) == before)
        #expect(try memory.read(at: GuestAddress(3 * 4096 + 10), count: 2) == [7, 7])
        #expect(try memory.read(at: GuestAddress(40 * 4096), count: 1) == [0])

        // A later checkpoint copies only what was written since; a rollback goes back to it.
        try memory.write([9], at: GuestAddress(5 * 4096))
        try checkpoint.save()
        #expect(checkpoint.lastCopied == 1)
        let second = MemoryDigest.recomputed(memory)
        try memory.write([8], at: GuestAddress(5 * 4096))
        try memory.write([8], at: GuestAddress(63 * 4096 + 4095))
        try checkpoint.restore()
        #expect(MemoryDigest.recomputed(memory) == second)
        #expect(try checkpoint.restore() == 0, "nothing written since the last rollback")
    }
}
