/// The XSAVE area of a vCPU (x87, SSE, AVX, ... in the host's XSAVE layout).
///
/// The corresponding C struct is `struct kvm_xsave` (`KVM_GET_XSAVE2` / `KVM_SET_XSAVE`); its
/// size is `KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2)` (at least 4096 bytes).
public struct XSAVEState: Hashable, Sendable, Codable {
    /// The raw area.
    public var bytes: [UInt8]

    /// An area from raw bytes (`VCPU.xsaveSize` long).
    public init(bytes: [UInt8]) { self.bytes = bytes }

    private enum CodingKeys: String, CodingKey { case bytes }

    /// `{"bytes": "<hexadecimal>"}` (see `HexCoding`).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeHex(bytes, forKey: .bytes)
    }

    public init(from decoder: any Decoder) throws {
        bytes = try decoder.container(keyedBy: CodingKeys.self).decodeHex(forKey: .bytes)
    }

    /// Byte offset of XMM0 in the legacy FXSAVE region.
    public static let xmmOffset = 160

    /// XMM register `index` (0...15), 16 bytes little-endian.
    public func xmm(_ index: Int) -> [UInt8] {
        precondition((0..<16).contains(index), "XMM index \(index) out of range")
        let start = Self.xmmOffset + index * 16
        return Array(bytes[start ..< start + 16])
    }

    /// MXCSR, at byte 24 of the legacy region.
    public var mxcsr: UInt32 {
        bytes[24..<28].reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }
}

/// An extended control register (XCR0 is the XSAVE feature mask).
///
/// The corresponding C struct is `struct kvm_xcr` (`KVM_GET_XCRS` / `KVM_SET_XCRS`).
public struct ExtendedControlRegister: Hashable, Sendable, Codable {
    /// The XCR number (0 for XCR0).
    public var index: UInt32
    /// The value.
    public var value: UInt64

    /// An entry for `index` with `value`.
    public init(index: UInt32, value: UInt64) {
        self.index = index
        self.value = value
    }
}

/// One model-specific register and its value.
///
/// The corresponding C struct is `struct kvm_msr_entry` (`KVM_GET_MSRS` / `KVM_SET_MSRS`).
public struct MSREntry: Hashable, Sendable, Codable {
    /// The MSR number (ECX of RDMSR/WRMSR).
    public var index: UInt32
    /// The value.
    public var value: UInt64

    /// An entry for `index` with `value`.
    public init(index: UInt32, value: UInt64) {
        self.index = index
        self.value = value
    }
}
