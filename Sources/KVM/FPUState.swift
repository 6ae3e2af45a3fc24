import CKVM

/// The x87 and SSE state of a vCPU in FXSAVE layout.
///
/// The corresponding C struct is `struct kvm_fpu` (`KVM_GET_FPU` / `KVM_SET_FPU`). XSAVE
/// (`XSAVEState`) is a superset; a snapshot restores that instead.
public struct FPUState: Hashable, Sendable, Codable {
    /// ST0–ST7 / MM0–MM7, 16 bytes each (an 80-bit value and padding).
    public var fpr: [[UInt8]] = Array(repeating: Array(repeating: 0, count: 16), count: 8)
    /// x87 control word.
    public var fcw: UInt16 = 0x37F
    /// x87 status word.
    public var fsw: UInt16 = 0
    /// Abridged x87 tag word (FXSAVE format).
    public var ftwx: UInt8 = 0
    /// The last x87 opcode (FOP).
    public var lastOpcode: UInt16 = 0
    /// The last x87 instruction pointer.
    public var lastIP: UInt64 = 0
    /// The last x87 data pointer.
    public var lastDP: UInt64 = 0
    /// XMM0–XMM15, 16 bytes each, little-endian.
    public var xmm: [[UInt8]] = Array(repeating: Array(repeating: 0, count: 16), count: 16)
    /// The SSE control and status register.
    public var mxcsr: UInt32 = 0x1F80

    /// The reset state (FCW 0x37F, MXCSR 0x1F80, registers zero).
    public init() {}

    private enum CodingKeys: String, CodingKey { case fpr, fcw, fsw, ftwx, lastOpcode, lastIP, lastDP, xmm, mxcsr }

    /// The registers as hexadecimal strings (see `HexCoding`), the rest as numbers.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeHex(rows: fpr, forKey: .fpr)
        try c.encode(fcw, forKey: .fcw)
        try c.encode(fsw, forKey: .fsw)
        try c.encode(ftwx, forKey: .ftwx)
        try c.encode(lastOpcode, forKey: .lastOpcode)
        try c.encode(lastIP, forKey: .lastIP)
        try c.encode(lastDP, forKey: .lastDP)
        try c.encodeHex(rows: xmm, forKey: .xmm)
        try c.encode(mxcsr, forKey: .mxcsr)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        fpr = try c.decodeHexRows(forKey: .fpr)
        fcw = try c.decode(UInt16.self, forKey: .fcw)
        fsw = try c.decode(UInt16.self, forKey: .fsw)
        ftwx = try c.decode(UInt8.self, forKey: .ftwx)
        lastOpcode = try c.decode(UInt16.self, forKey: .lastOpcode)
        lastIP = try c.decode(UInt64.self, forKey: .lastIP)
        lastDP = try c.decode(UInt64.self, forKey: .lastDP)
        xmm = try c.decodeHexRows(forKey: .xmm)
        mxcsr = try c.decode(UInt32.self, forKey: .mxcsr)
    }

    init(_ c: kvm_fpu) {
        var c = c
        // SAFETY: fpr is 8 × 16 bytes and xmm 16 × 16 bytes (C arrays imported as tuples);
        // the slices stay inside them.
        fpr = withUnsafeBytes(of: &c.fpr) { bytes in (0..<8).map { Array(bytes[$0 * 16 ..< $0 * 16 + 16]) } }
        xmm = withUnsafeBytes(of: &c.xmm) { bytes in (0..<16).map { Array(bytes[$0 * 16 ..< $0 * 16 + 16]) } }
        fcw = c.fcw; fsw = c.fsw; ftwx = c.ftwx; lastOpcode = c.last_opcode
        lastIP = c.last_ip; lastDP = c.last_dp; mxcsr = c.mxcsr
    }

    var c: kvm_fpu {
        var c = kvm_fpu()
        // SAFETY: at most 8 × 16 bytes into fpr and 16 × 16 into xmm, their exact sizes.
        withUnsafeMutableBytes(of: &c.fpr) { bytes in
            for (i, register) in fpr.prefix(8).enumerated() {
                for (j, byte) in register.prefix(16).enumerated() { bytes[i * 16 + j] = byte }
            }
        }
        withUnsafeMutableBytes(of: &c.xmm) { bytes in
            for (i, register) in xmm.prefix(16).enumerated() {
                for (j, byte) in register.prefix(16).enumerated() { bytes[i * 16 + j] = byte }
            }
        }
        c.fcw = fcw; c.fsw = fsw; c.ftwx = ftwx; c.last_opcode = lastOpcode
        c.last_ip = lastIP; c.last_dp = lastDP; c.mxcsr = mxcsr
        return c
    }
}
