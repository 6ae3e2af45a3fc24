import Crypto

/// The digest of guest RAM, kept up to date by rehashing only the pages written since it was
/// last asked for.
///
/// The digest is a two-level hash tree: each page's SHA-256 (a zero page's is known without
/// hashing); each group of `pagesPerGroup` pages hashed from its page digests; the root hashed
/// from RAM's size and the group digests. `digest()` takes the pages written since its previous
/// call from the memory's `DirtyPageTracker` and rehashes those pages, their groups and the root;
/// `MemoryDigest.recomputed(_:)` hashes every page again and gives the same value for the same
/// contents (a test proves it on every bundled guest).
///
/// Created with its machine's memory, before the guest runs: it starts from "every page is
/// zero" (fresh RAM) and learns every write since the memory was created from the tracker.
public final class MemoryDigest {
    /// Pages per group: 64 page digests, 2 KiB hashed per changed group.
    public static let pagesPerGroup = 64

    public let memory: GuestMemory
    private let tracker: DirtyPageTracker
    private let consumer: DirtyPageTracker.Consumer
    /// 32 bytes per page.
    private var pageDigests: [UInt8]
    /// 32 bytes per group.
    private var groupDigests: [UInt8]
    /// The pages that are not all zero.
    private var nonZero: PageBitmap
    private var root: StateDigest?

    /// The digest of `tracker`'s memory, which must not have been collected yet (so that the
    /// tracker still holds every write since the memory was created).
    public init(tracker: DirtyPageTracker) {
        self.tracker = tracker
        memory = tracker.memory
        consumer = tracker.registerSinceCreation()
        let pages = memory.pageCount
        let zero = GuestMemory.zeroPageDigest.bytes
        pageDigests = []
        pageDigests.reserveCapacity(32 * pages)
        for _ in 0..<pages { pageDigests += zero }
        nonZero = PageBitmap(pageCount: pages)
        // Every full group of zero pages has the same digest.
        let fullGroup = Array(SHA256.hash(data: pageDigests.prefix(32 * min(pages, Self.pagesPerGroup))))
        groupDigests = []
        groupDigests.reserveCapacity(32 * Self.groupCount(pages))
        for _ in 0..<Self.groupCount(pages) { groupDigests += fullGroup }
        if pages % Self.pagesPerGroup != 0 { rehashGroup(Self.groupCount(pages) - 1) }
    }

    /// The digest of RAM now.
    public func digest() throws -> StateDigest {
        try update()
        if let root { return root }
        let value = Self.root(size: memory.size, groups: groupDigests)
        root = value
        return value
    }

    /// The pages that are not all zero now, ascending: what a snapshot must carry.
    public func nonZeroPages() throws -> [Int] {
        try update()
        return nonZero.pages
    }

    /// The digest of `memory`'s contents, hashing every page again (no cache): equal to
    /// `digest()` of a `MemoryDigest` of the same memory.
    public static func recomputed(_ memory: GuestMemory) -> StateDigest {
        let pages = memory.pageCount
        var groups: [UInt8] = []
        groups.reserveCapacity(32 * groupCount(pages))
        var page = 0
        while page < pages {
            var hasher = SHA256()
            for p in page..<min(page + pagesPerGroup, pages) {
                hasher.update(data: memory.pageDigest(p).digest.bytes)
            }
            groups += hasher.finalize()
            page += pagesPerGroup
        }
        return root(size: memory.size, groups: groups)
    }

    // MARK: Private

    private static func groupCount(_ pages: Int) -> Int { (pages + pagesPerGroup - 1) / pagesPerGroup }

    private static func root(size: UInt64, groups: [UInt8]) -> StateDigest {
        var hasher = SHA256()
        hasher.update(data: littleEndianBytes(size))
        hasher.update(data: littleEndianBytes(GuestMemory.pageSize))
        hasher.update(data: groups)
        return StateDigest(hasher.finalize())
    }

    /// Rehashes the pages written since the last update, and their groups.
    private func update() throws {
        let written = try tracker.take(for: consumer)
        guard !written.isEmpty else { return }
        var lastGroup = -1
        for page in written.pages {
            let (digest, isZero) = memory.pageDigest(page)
            var k = 32 * page
            for byte in digest.bytes {
                pageDigests[k] = byte
                k += 1
            }
            if isZero { nonZero.remove(page) } else { nonZero.insert(page) }
            let group = page / Self.pagesPerGroup
            if group != lastGroup {
                if lastGroup >= 0 { rehashGroup(lastGroup) }
                lastGroup = group
            }
        }
        rehashGroup(lastGroup)
        root = nil
    }

    private func rehashGroup(_ group: Int) {
        let first = group * Self.pagesPerGroup
        let end = min(first + Self.pagesPerGroup, memory.pageCount)
        let digest = SHA256.hash(data: pageDigests[32 * first ..< 32 * end])
        var k = 32 * group
        for byte in digest {
            groupDigests[k] = byte
            k += 1
        }
    }
}
