/// A set of guest RAM pages: one bit per 4 KiB page, bit `i % 64` of word `i / 64` for page `i`
/// (the layout of KVM's `kvm_dirty_log` bitmap, so a dirty log's words can be merged as they are).
public struct PageBitmap: Hashable, Sendable {
    /// The number of pages the set ranges over.
    public let pageCount: Int
    /// The bitmap words; bits at and above `pageCount` are always clear.
    public private(set) var words: [UInt64]

    /// An empty set over `pageCount` pages.
    public init(pageCount: Int) {
        precondition(pageCount >= 0, "a negative page count")
        self.pageCount = pageCount
        words = [UInt64](repeating: 0, count: (pageCount + 63) / 64)
    }

    /// The set of all `pageCount` pages.
    public static func all(pageCount: Int) -> PageBitmap {
        var bitmap = PageBitmap(pageCount: pageCount)
        for w in bitmap.words.indices { bitmap.words[w] = ~0 }
        bitmap.clearBitsPastEnd()
        return bitmap
    }

    /// Whether `page` is in the set.
    public subscript(page: Int) -> Bool {
        precondition(page >= 0 && page < pageCount, "page \(page) outside \(pageCount) pages")
        return words[page >> 6] >> UInt64(page & 63) & 1 == 1
    }

    /// Adds `page`.
    public mutating func insert(_ page: Int) {
        precondition(page >= 0 && page < pageCount, "page \(page) outside \(pageCount) pages")
        words[page >> 6] |= 1 << UInt64(page & 63)
    }

    /// Removes `page`.
    public mutating func remove(_ page: Int) {
        precondition(page >= 0 && page < pageCount, "page \(page) outside \(pageCount) pages")
        words[page >> 6] &= ~(1 << UInt64(page & 63))
    }

    /// Adds every page of `other`.
    public mutating func formUnion(_ other: PageBitmap) {
        formUnion(words: other.words)
    }

    /// Adds the pages set in `other` (words in this layout, for example a KVM dirty log of the
    /// same number of pages; bits past `pageCount` are ignored).
    public mutating func formUnion(words other: [UInt64]) {
        precondition(other.count == words.count, "\(other.count) bitmap words for \(words.count)")
        for w in words.indices { words[w] |= other[w] }
        clearBitsPastEnd()
    }

    /// Removes every page.
    public mutating func removeAll() {
        for w in words.indices { words[w] = 0 }
    }

    /// The pages in ascending order.
    public var pages: [Int] {
        var result: [Int] = []
        for (w, word) in words.enumerated() where word != 0 {
            var bits = word
            while bits != 0 {
                result.append(w << 6 + bits.trailingZeroBitCount)
                bits &= bits - 1
            }
        }
        return result
    }

    /// The number of pages in the set.
    public var count: Int { words.reduce(0) { $0 + $1.nonzeroBitCount } }

    /// Whether the set is empty.
    public var isEmpty: Bool { words.allSatisfy { $0 == 0 } }

    private mutating func clearBitsPastEnd() {
        let tail = pageCount & 63
        if tail != 0 { words[words.count - 1] &= (1 << UInt64(tail)) - 1 }
    }
}
