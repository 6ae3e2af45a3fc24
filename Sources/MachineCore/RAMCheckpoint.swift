/// Guest RAM as it was at a checkpoint, kept in memory for a rollback (output comparison's DMR
/// recovery), made cheap by the dirty-page tracker: the first checkpoint copies the pages that
/// are not zero; each later one copies only the pages written since the previous one, and a
/// rollback writes back only the pages written since the last checkpoint. Pages never written
/// and zero at the first checkpoint are not stored.
public final class RAMCheckpoint {
    private let memory: GuestMemory
    private let tracker: DirtyPageTracker
    private let consumer: DirtyPageTracker.Consumer
    /// Page contents at the checkpoint; a missing page was zero.
    private var pages: [Int: [UInt8]] = [:]
    /// Pages copied by the last `save` (for measurements).
    public private(set) var lastCopied = 0

    /// Checkpoints `memory` now.
    public init(memory: GuestMemory, tracker: DirtyPageTracker) throws {
        self.memory = memory
        self.tracker = tracker
        consumer = try tracker.register()
        for page in 0..<memory.pageCount where !memory.pageDigest(page).isZero {
            store(page)
        }
        lastCopied = pages.count
    }

    deinit { tracker.unregister(consumer) }

    /// Moves the checkpoint to now: copies the pages written since the last one.
    public func save() throws {
        let written = try tracker.take(for: consumer).pages
        for page in written { store(page) }
        lastCopied = written.count
    }

    /// Puts RAM back as it was at the checkpoint. Returns the number of pages written back.
    @discardableResult
    public func restore() throws -> Int {
        let written = try tracker.take(for: consumer).pages
        for page in written {
            if let bytes = pages[page] { memory.writePage(page, from: bytes[...]) } else { memory.zeroPage(page) }
        }
        // Writing the pages back marked them written: they hold the checkpoint's contents.
        _ = try tracker.take(for: consumer)
        return written.count
    }

    private func store(_ page: Int) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(GuestMemory.pageSize))
        memory.appendPage(page, to: &bytes)
        pages[page] = bytes
    }
}
