/// The byte order of a CPU or of a device's registers.
public enum ByteOrder: Sendable, Hashable, Codable {
    case little
    case big

    /// Converts a `size`-byte value between this order and `other`.
    @inlinable public func convert(_ value: UInt64, size: Int, to other: ByteOrder) -> UInt64 {
        if self == other || size == 1 { return value }
        switch size {
        case 2: return UInt64(UInt16(truncatingIfNeeded: value).byteSwapped)
        case 4: return UInt64(UInt32(truncatingIfNeeded: value).byteSwapped)
        case 8: return value.byteSwapped
        default: preconditionFailure("access size \(size) is not 1, 2, 4 or 8")
        }
    }
}
