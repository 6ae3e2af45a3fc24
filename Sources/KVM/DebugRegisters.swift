import CKVM

/// The guest's own debug registers (not the host's guest-debug breakpoints).
///
/// The corresponding C struct is `struct kvm_debugregs` (`KVM_GET_DEBUGREGS` /
/// `KVM_SET_DEBUGREGS`).
public struct DebugRegisters: Hashable, Sendable, Codable {
    /// DR0–DR3.
    public var db: [UInt64] = [0, 0, 0, 0]
    /// DR6, the debug status register.
    public var dr6: UInt64 = 0xFFFF_0FF0
    /// DR7, the debug control register.
    public var dr7: UInt64 = 0x400
    /// `kvm_debugregs.flags`.
    public var flags: UInt64 = 0

    /// The reset state: DR0–DR3 zero, DR6 0xFFFF0FF0, DR7 0x400.
    public init() {}

    init(_ c: kvm_debugregs) {
        db = [c.db.0, c.db.1, c.db.2, c.db.3]
        dr6 = c.dr6; dr7 = c.dr7; flags = c.flags
    }

    var c: kvm_debugregs {
        var c = kvm_debugregs()
        let d = db + [UInt64](repeating: 0, count: max(0, 4 - db.count))
        c.db = (d[0], d[1], d[2], d[3])
        c.dr6 = dr6; c.dr7 = dr7; c.flags = flags
        return c
    }
}
