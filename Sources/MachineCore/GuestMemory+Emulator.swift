/// Fast accessors for an interpreter (the PA-RISC emulator) that has already decided an access
/// lies in RAM.
///
/// The interpreter checks `offset < size` (and alignment) itself on its hot path, so these
/// accessors take a byte offset into RAM and check it once more with a single predictable
/// comparison; an out-of-range offset is a programmer error and traps with a reason instead of
/// touching memory outside the mapping. Values are big-endian, as the PA-RISC CPU sees memory.
/// Every store marks the pages it wrote in the write map: the page of its first and of its last
/// byte (the same page for an aligned access, which is all the interpreter makes).
extension GuestMemory {
    /// The size of RAM as a 32-bit bound for a 32-bit guest (RAM larger than 4 GiB saturates).
    @inlinable public var emulatorLimit: UInt32 {
        size >= 1 << 32 ? UInt32.max : UInt32(truncatingIfNeeded: size)
    }

    /// Reads the big-endian 32-bit word at byte `offset` of RAM.
    @inlinable @inline(__always)
    public func loadBigEndianWord(atOffset offset: UInt32) -> UInt32 {
        precondition(UInt64(offset) &+ 4 <= size, "emulator word load outside guest RAM")
        // SAFETY: the precondition proved [offset, offset+4) lies inside the mapping, which is
        // alive while self is; loadUnaligned has no alignment requirement.
        return UInt32(bigEndian: host.loadUnaligned(fromByteOffset: Int(offset), as: UInt32.self))
    }

    /// Reads the big-endian 16-bit halfword at byte `offset` of RAM.
    @inlinable @inline(__always)
    public func loadBigEndianHalfword(atOffset offset: UInt32) -> UInt16 {
        precondition(UInt64(offset) &+ 2 <= size, "emulator halfword load outside guest RAM")
        // SAFETY: the precondition proved [offset, offset+2) lies inside the mapping.
        return UInt16(bigEndian: host.loadUnaligned(fromByteOffset: Int(offset), as: UInt16.self))
    }

    /// Reads the byte at `offset` of RAM.
    @inlinable @inline(__always)
    public func loadByte(atOffset offset: UInt32) -> UInt8 {
        precondition(UInt64(offset) < size, "emulator byte load outside guest RAM")
        // SAFETY: the precondition proved the byte lies inside the mapping.
        return host.load(fromByteOffset: Int(offset), as: UInt8.self)
    }

    /// Writes `value` big-endian as the 32-bit word at byte `offset` of RAM.
    @inlinable @inline(__always)
    public func storeBigEndianWord(_ value: UInt32, atOffset offset: UInt32) {
        precondition(UInt64(offset) &+ 4 <= size, "emulator word store outside guest RAM")
        // SAFETY: the precondition proved [offset, offset+4) lies inside the mapping.
        host.storeBytes(of: value.bigEndian, toByteOffset: Int(offset), as: UInt32.self)
        markWritten(atOffset: offset)
        markWritten(atOffset: offset &+ 3)
    }

    /// Writes `value` big-endian as the 16-bit halfword at byte `offset` of RAM.
    @inlinable @inline(__always)
    public func storeBigEndianHalfword(_ value: UInt16, atOffset offset: UInt32) {
        precondition(UInt64(offset) &+ 2 <= size, "emulator halfword store outside guest RAM")
        // SAFETY: the precondition proved [offset, offset+2) lies inside the mapping.
        host.storeBytes(of: value.bigEndian, toByteOffset: Int(offset), as: UInt16.self)
        markWritten(atOffset: offset)
        markWritten(atOffset: offset &+ 1)
    }

    /// Writes the byte `value` at `offset` of RAM.
    @inlinable @inline(__always)
    public func storeByte(_ value: UInt8, atOffset offset: UInt32) {
        precondition(UInt64(offset) < size, "emulator byte store outside guest RAM")
        // SAFETY: the precondition proved the byte lies inside the mapping.
        host.storeBytes(of: value, toByteOffset: Int(offset), as: UInt8.self)
        markWritten(atOffset: offset)
    }
}
