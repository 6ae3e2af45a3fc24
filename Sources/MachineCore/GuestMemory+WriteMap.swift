/// The write map: which pages of RAM were written since it was last collected.
///
/// Marking is one byte store (no read-modify-write, no bounds check for a 32-bit offset), cheap
/// enough for an emulator's every store. Collecting it is the job of the memory's
/// `DirtyPageTracker`, which folds the marked pages into each of its consumers' bitmaps.
extension GuestMemory {
    /// Records that the byte at `offset` of RAM was written: one store into the write map.
    ///
    /// For an engine that writes RAM by its own means (a block cache or JIT emitting stores
    /// through `hostAddress`); the emulator accessors (`storeBigEndianWord` & co.) already call
    /// it. A naturally aligned access of up to a page lies in one page, so marking its first byte
    /// covers it; an unaligned one marks its last byte too. Any 32-bit offset is inside the map,
    /// so this never checks bounds.
    @inlinable @inline(__always)
    public func markWritten(atOffset offset: UInt32) {
        // SAFETY: the write map has at least 2^20 entries (`minimumWriteMapPages`) and a 32-bit
        // offset's page is below 2^20.
        writeMap[Int(truncatingIfNeeded: offset >> UInt32(Self.pageShift))] = 1
    }

    /// The host address of the write map (one byte per page, indexed by `offset >> pageShift`,
    /// at least 2^20 entries so every 32-bit offset's page is inside): for generated code that
    /// marks its own stores (the PA-RISC JIT). Valid while the memory is alive.
    public var writeMapHostAddress: UInt64 { UInt64(UInt(bitPattern: writeMap)) }

    /// Records that `count` bytes from byte `offset` of RAM were written (host writes, already
    /// bounds-checked by the caller).
    @usableFromInline func markWritten(offset: Int, count: Int) {
        guard count > 0 else { return }
        let first = offset >> Int(Self.pageShift)
        let last = (offset + count - 1) >> Int(Self.pageShift)
        precondition(first >= 0 && last < pageCount, "write map marking outside guest RAM")
        // SAFETY: [first, last] lies within pageCount <= writeMapCount entries.
        (writeMap + first).update(repeating: 1, count: last - first + 1)
    }

    /// Adds every page marked in the write map to `pages` and clears the map. Only the memory's
    /// `DirtyPageTracker` calls this: a second collector would take pages from the first.
    func collectWrittenPages(into pages: inout PageBitmap) {
        precondition(pages.pageCount == pageCount, "a \(pages.pageCount)-page bitmap for \(pageCount) pages of RAM")
        let count = pageCount
        let raw = UnsafeMutableRawPointer(writeMap)
        var page = 0
        // Eight entries at a time: most of the map is zero.
        while page + 8 <= count {
            // SAFETY: [page, page+8) < count <= writeMapCount; loadUnaligned has no alignment
            // requirement.
            let word = raw.loadUnaligned(fromByteOffset: page, as: UInt64.self)
            if word != 0 {
                for k in 0..<8 where (word >> UInt64(8 * k)) & 0xFF != 0 { pages.insert(page + k) }
                // SAFETY: as above.
                raw.storeBytes(of: 0, toByteOffset: page, as: UInt64.self)
            }
            page += 8
        }
        while page < count {
            // SAFETY: page < count <= writeMapCount.
            if writeMap[page] != 0 {
                pages.insert(page)
                writeMap[page] = 0
            }
            page += 1
        }
    }
}
