import Testing

@testable import MachineCore

@Suite("PageBitmap")
struct PageBitmapTests {
    @Test func insertsCountsAndListsPagesInOrder() {
        var pages = PageBitmap(pageCount: 130)
        #expect(pages.isEmpty)
        for page in [129, 0, 64, 63, 64] { pages.insert(page) }
        #expect(pages.pages == [0, 63, 64, 129])
        #expect(pages.count == 4)
        #expect(pages[63] && !pages[62])
        pages.removeAll()
        #expect(pages.isEmpty && pages.words.count == 3)
    }

    @Test func allHasExactlyPageCountPages() {
        #expect(PageBitmap.all(pageCount: 130).count == 130)
        #expect(PageBitmap.all(pageCount: 128).pages == Array(0..<128))
        #expect(PageBitmap.all(pageCount: 0).isEmpty)
    }

    @Test func aForeignBitmapsBitsPastTheEndAreIgnored() {
        var pages = PageBitmap(pageCount: 70)
        pages.formUnion(words: [1, ~0])
        #expect(pages.pages == [0] + Array(64..<70))
        var other = PageBitmap(pageCount: 70)
        other.insert(3)
        pages.formUnion(other)
        #expect(pages.count == 8)
    }
}

@Suite("Dirty-page tracking")
struct DirtyTrackingTests {
    @Test func hostWritesMarkEveryPageTheyTouch() throws {
        let memory = try GuestMemory(size: 16 * 4096)
        let tracker = DirtyPageTracker(memory: memory)
        let consumer = tracker.registerSinceCreation()
        try memory.write([1, 2], at: GuestAddress(4095))             // pages 0 and 1
        try memory.fill(7, at: GuestAddress(3 * 4096), count: 4097)   // pages 3 and 4
        try memory.store(UInt64(9), at: GuestAddress(8 * 4096 - 4), order: .little)  // 7 and 8
        try memory.write([], at: GuestAddress(15 * 4096))             // nothing
        #expect(try tracker.take(for: consumer).pages == [0, 1, 3, 4, 7, 8])
        #expect(try tracker.take(for: consumer).isEmpty)
    }

    @Test func emulatorStoresMarkTheirPage() throws {
        let memory = try GuestMemory(size: 8 * 4096)
        let tracker = DirtyPageTracker(memory: memory)
        let consumer = tracker.registerSinceCreation()
        memory.storeBigEndianWord(1, atOffset: 4096 + 8)
        memory.storeBigEndianHalfword(1, atOffset: 5 * 4096 + 4094)
        memory.storeByte(1, atOffset: 8 * 4096 - 1)
        _ = memory.loadBigEndianWord(atOffset: 2 * 4096)
        #expect(try tracker.take(for: consumer).pages == [1, 5, 7])
        memory.storeBigEndianWord(1, atOffset: 3 * 4096 - 2)           // unaligned: pages 2 and 3
        memory.storeBigEndianHalfword(1, atOffset: 5 * 4096 - 1)       // pages 4 and 5
        #expect(try tracker.take(for: consumer).pages == [2, 3, 4, 5])
    }

    @Test func anyThirtyTwoBitOffsetCanBeMarkedAndOnlyRAMIsReported() throws {
        let memory = try GuestMemory(size: 4 * 4096)
        let tracker = DirtyPageTracker(memory: memory)
        let consumer = tracker.registerSinceCreation()
        memory.markWritten(atOffset: .max)
        memory.markWritten(atOffset: 4 * 4096)
        memory.markWritten(atOffset: 2 * 4096 + 1)
        #expect(try tracker.take(for: consumer).pages == [2])
    }

    @Test func consumersAreIndependent() throws {
        let memory = try GuestMemory(size: 64 * 4096)
        let tracker = DirtyPageTracker(memory: memory)
        let digest = tracker.registerSinceCreation()
        try memory.write([1], at: GuestAddress(0))            // before the stream registered
        let stream = try tracker.register()
        try memory.write([1], at: GuestAddress(10 * 4096))
        #expect(try tracker.take(for: digest).pages == [0, 10])
        try memory.write([1], at: GuestAddress(20 * 4096))
        #expect(try tracker.take(for: stream).pages == [10, 20])
        #expect(try tracker.take(for: digest).pages == [20])
        tracker.unregister(stream)
        try memory.write([1], at: GuestAddress(30 * 4096))
        #expect(try tracker.take(for: digest).pages == [30])
    }

    @Test func aConsumerSinceCreationSeesWritesBeforeIt() throws {
        let memory = try GuestMemory(size: 8 * 4096)
        try memory.write([1], at: GuestAddress(6 * 4096))      // the loader, before any tracker
        let tracker = DirtyPageTracker(memory: memory)
        let consumer = tracker.registerSinceCreation()
        #expect(try tracker.take(for: consumer).pages == [6])
        #expect(tracker.collections == 1)
    }
}
