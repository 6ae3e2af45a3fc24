/// Which pages of a machine's RAM were written, for several independent consumers (the
/// incremental state digest, a pre-copy stream of a live state transfer, ...).
///
/// Each source of writes is read by one collector only, because reading resets it: the
/// memory's write map (host writes and emulator stores) and, on KVM, the VM's dirty log
/// (`KVM_GET_DIRTY_LOG` clears it). `collect()` reads every source once and ORs what it found
/// into each consumer's bitmap; `take(for:)` collects and hands one consumer its pages, leaving
/// the others' untouched. A consumer sees every page written after it registered.
///
/// A machine owns one tracker, created with its memory; all calls come from the machine's
/// thread.
public final class DirtyPageTracker {
    /// A registered consumer.
    public struct Consumer: Hashable, Sendable {
        fileprivate let id: Int
    }

    /// The memory whose pages are tracked.
    public let memory: GuestMemory
    /// Guest writes the memory's write map does not see (the KVM dirty log), OR'ed into the
    /// bitmap passed in; nil when the engine's every store marks the write map.
    private let guestWrites: ((inout PageBitmap) throws -> Void)?
    private var pending: [Int: PageBitmap] = [:]
    private var nextID = 0
    /// How many times the sources were read.
    public private(set) var collections = 0

    /// A tracker for `memory`. `guestWrites` adds the pages the guest wrote since its previous
    /// call (and resets its source); the memory's own write map is always collected too.
    public init(memory: GuestMemory, guestWrites: ((inout PageBitmap) throws -> Void)? = nil) {
        self.memory = memory
        self.guestWrites = guestWrites
    }

    /// A new consumer; its first `take` returns (at least) the pages written from now on.
    public func register() throws -> Consumer {
        // Writes before now belong to the consumers already registered.
        if !pending.isEmpty { try collectSources() }
        return addConsumer()
    }

    /// A new consumer that also sees every page written since the memory was created (the write
    /// map and a KVM dirty log both start with them): only before the first collection. With
    /// fresh RAM all zero, every page it is never given is a zero page.
    public func registerSinceCreation() -> Consumer {
        precondition(collections == 0, "pages were already collected: the writes since creation are gone")
        return addConsumer()
    }

    private func addConsumer() -> Consumer {
        let consumer = Consumer(id: nextID)
        nextID += 1
        pending[consumer.id] = PageBitmap(pageCount: memory.pageCount)
        return consumer
    }

    /// Forgets `consumer`.
    public func unregister(_ consumer: Consumer) {
        pending[consumer.id] = nil
    }

    /// The pages written since `consumer` last took its pages (or registered); the consumer's
    /// set is then empty. Other consumers keep theirs.
    public func take(for consumer: Consumer) throws -> PageBitmap {
        precondition(pending[consumer.id] != nil, "a consumer that is not registered")
        try collect()
        let pages = pending[consumer.id]!
        pending[consumer.id] = PageBitmap(pageCount: memory.pageCount)
        return pages
    }

    /// Reads every source once and adds what it found to every consumer's set.
    public func collect() throws {
        try collectSources()
    }

    private func collectSources() throws {
        var found = PageBitmap(pageCount: memory.pageCount)
        memory.collectWrittenPages(into: &found)
        // If the guest source fails, what the write map gave is still delivered.
        defer {
            collections += 1
            if !found.isEmpty {
                for id in pending.keys { pending[id]!.formUnion(found) }
            }
        }
        try guestWrites?(&found)
    }
}
