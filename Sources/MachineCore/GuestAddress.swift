/// A guest-physical address. Never a bare integer: arithmetic on it is explicit.
///
/// The corresponding type in rust-vmm is `vm_memory::GuestAddress`.
public struct GuestAddress: RawRepresentable, Hashable, Comparable, Sendable, Codable,
    CustomStringConvertible
{
    public var rawValue: UInt64

    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    @inlinable public static func < (lhs: GuestAddress, rhs: GuestAddress) -> Bool {
        lhs.rawValue < rhs.rawValue
    }

    /// The address `offset` bytes further on, or nil if that overflows 64 bits.
    @inlinable public func advanced(by offset: UInt64) -> GuestAddress? {
        let (sum, overflow) = rawValue.addingReportingOverflow(offset)
        return overflow ? nil : GuestAddress(sum)
    }

    /// The number of bytes from `base` up to this address, or nil if this address is below `base`.
    @inlinable public func offset(from base: GuestAddress) -> UInt64? {
        rawValue >= base.rawValue ? rawValue - base.rawValue : nil
    }

    public var description: String { "0x" + String(rawValue, radix: 16) }
}
