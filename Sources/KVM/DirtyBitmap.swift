/// Which pages of a memory slot the guest wrote: one bit per 4 KiB page.
///
/// The corresponding kernel data is the `dirty_bitmap` of `struct kvm_dirty_log`: 64-bit words,
/// bit `i % 64` of word `i / 64` for page `i` of the slot.
public struct DirtyBitmap: Hashable, Sendable {
    /// The number of pages in the slot.
    public let pageCount: Int
    /// The bitmap words.
    public var words: [UInt64]

    /// An empty bitmap for `pageCount` pages.
    public init(pageCount: Int) {
        self.pageCount = pageCount
        self.words = [UInt64](repeating: 0, count: (pageCount + 63) / 64)
    }

    /// A bitmap for `pageCount` pages with `pages` set.
    public init(pageCount: Int, dirtyPages pages: some Sequence<Int>) {
        self.init(pageCount: pageCount)
        for page in pages { self[page] = true }
    }

    /// Whether page `page` (0-based within the slot) is dirty.
    public subscript(page: Int) -> Bool {
        get {
            precondition(page >= 0 && page < pageCount, "page \(page) outside a \(pageCount)-page slot")
            return words[page / 64] >> UInt64(page % 64) & 1 == 1
        }
        set {
            precondition(page >= 0 && page < pageCount, "page \(page) outside a \(pageCount)-page slot")
            if newValue { words[page / 64] |= 1 << UInt64(page % 64) }
            else { words[page / 64] &= ~(1 << UInt64(page % 64)) }
        }
    }

    /// The dirty page numbers in ascending order.
    public var dirtyPages: [Int] {
        var pages: [Int] = []
        for (w, word) in words.enumerated() where word != 0 {
            var bits = word
            while bits != 0 {
                let bit = bits.trailingZeroBitCount
                pages.append(w * 64 + bit)
                bits &= bits - 1
            }
        }
        return pages
    }

    /// The number of dirty pages.
    public var dirtyCount: Int { words.reduce(0) { $0 + $1.nonzeroBitCount } }

    /// Whether no page is dirty.
    public var isEmpty: Bool { words.allSatisfy { $0 == 0 } }
}
