import Crypto

#if canImport(Glibc)
import Glibc
#endif

/// Whole-page access for the RAM digest and snapshots.
extension GuestMemory {
    /// SHA-256 of a page of zero bytes.
    public static let zeroPageDigest = StateDigest.of([UInt8](repeating: 0, count: Int(pageSize)))

    /// SHA-256 of page `page` and whether the page is all zero (then the digest is
    /// `zeroPageDigest`, found without hashing).
    public func pageDigest(_ page: Int) -> (digest: StateDigest, isZero: Bool) {
        let start = pageStart(page)
        // SAFETY: pageStart proved the page lies inside the mapping.
        let bytes = UnsafeRawBufferPointer(start: host + start, count: Int(Self.pageSize))
        // SAFETY: both pointers address a whole page (`zeroPage` is one read-only page).
        if memcmp(bytes.baseAddress!, zeroPage, Int(Self.pageSize)) == 0 { return (Self.zeroPageDigest, true) }
        var hasher = SHA256()
        hasher.update(bufferPointer: bytes)
        return (StateDigest(hasher.finalize()), false)
    }

    /// Appends the 4096 bytes of page `page` to `bytes`.
    public func appendPage(_ page: Int, to bytes: inout [UInt8]) {
        let start = pageStart(page)
        // SAFETY: pageStart proved the page lies inside the mapping.
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: host + start, count: Int(Self.pageSize)))
    }

    /// Calls `body` with the 4096 bytes of page `page` (valid only during the call).
    public func withPage<R>(_ page: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let start = pageStart(page)
        // SAFETY: pageStart proved the page lies inside the mapping; the pointer does not escape.
        return try body(UnsafeRawBufferPointer(start: host + start, count: Int(Self.pageSize)))
    }

    /// Replaces page `page` with `bytes` (exactly a page) and marks it written.
    public func writePage(_ page: Int, from bytes: ArraySlice<UInt8>) {
        precondition(bytes.count == Int(Self.pageSize), "a page is \(Self.pageSize) bytes, not \(bytes.count)")
        let start = pageStart(page)
        // SAFETY: pageStart proved the page lies inside the mapping; the source has a page.
        UnsafeMutableRawBufferPointer(start: host + start, count: Int(Self.pageSize)).copyBytes(from: bytes)
        markWritten(offset: start, count: Int(Self.pageSize))
    }

    /// Sets page `page` to zero and marks it written.
    public func zeroPage(_ page: Int) {
        let start = pageStart(page)
        // SAFETY: pageStart proved the page lies inside the mapping.
        memset(host + start, 0, Int(Self.pageSize))
        markWritten(offset: start, count: Int(Self.pageSize))
    }

    /// The byte offset of page `page`, which must be a page of RAM (a programmer error otherwise).
    private func pageStart(_ page: Int) -> Int {
        precondition(page >= 0 && page < pageCount, "page \(page) outside \(pageCount) pages of RAM")
        return page << Int(Self.pageShift)
    }
}
