import Logging
import MachineCore

/// The interrupt controller of HP's LASI chip as QEMU 7.2 models it (`hw/misc/lasi.c`):
/// registers IRR (0x00, read-only), IMR (0x04), IPR (0x08, read or write clears), ICR (0x0C),
/// IAR (0x10) at LASI_HPA, and the power/error/version/reset/arbitration registers at +0xC000.
///
/// When one of its inputs (the UART is input 5) is raised: IPR gets the bit; if IMR has it, IRR
/// gets it too and, unless ICR's bus-error bit (bit 8) is set, LASI stores the 32-bit value
/// `IAR & 31` to the address `IAR & ~31` — normally the CPU's IO_EIR, which sets EIRR bit
/// `IAR & 31`. Lowering an input does nothing (as in QEMU). The RTC (host time in QEMU) is not
/// modelled: it would be nondeterministic.
public final class LASIInterruptController: BusDevice, InterruptController {
    /// The complete, replicated state.
    public struct State: Codable, Equatable, Sendable {
        public var irr: UInt32 = 0
        public var imr: UInt32 = 0
        public var ipr: UInt32 = 0
        public var icr: UInt32 = 0
        /// Reset value: CPU_HPA + 3, as QEMU's `lasi_reset`.
        public var iar: UInt32 = 0xFFFB_0003
        public var errorLog: UInt32 = 0
        public var arbitrationMask: UInt32 = 0
        /// Whether the guest asked for power-off (PCR = 2).
        public var powerOff = false

        public init() {}
    }

    /// A LASI register, by offset from LASI_HPA.
    public enum Register: Equatable, Sendable {
        case irr, imr, ipr, icr, iar
        case powerControl, errorLog, version, ioReset, arbitrationMask
        case unsupported(UInt64)

        public init(offset: UInt64) {
            switch offset {
            case 0x00: self = .irr
            case 0x04: self = .imr
            case 0x08: self = .ipr
            case 0x0C: self = .icr
            case 0x10: self = .iar
            case 0xC000: self = .powerControl
            case 0xC004: self = .errorLog
            case 0xC008: self = .version
            case 0xC00C: self = .ioReset
            case 0xC010: self = .arbitrationMask
            default: self = .unsupported(offset)
            }
        }
    }

    /// ICR bit 8: bus error, which suppresses the IO_EIR store.
    public static let busErrorBit: UInt32 = 1 << 8

    private(set) var s = State()
    /// Performs LASI's store of `value` to `address` (the machine routes it over its bus).
    private let store: (_ address: UInt32, _ value: UInt32) -> Void
    private let logger: Logger

    /// Creates the controller; `store` performs the 32-bit big-endian store LASI makes to signal
    /// an interrupt (QEMU's `stl_be_phys`).
    public init(store: @escaping (_ address: UInt32, _ value: UInt32) -> Void,
                logger: Logger = Logger(label: "lockstep.parisc.lasi"))
    {
        self.store = store
        self.logger = logger
    }

    /// The complete state, for snapshots and replica comparison.
    public var state: State { s }

    /// Replaces the state.
    public func restore(_ state: State) { s = state }

    // MARK: InterruptController

    /// Input `line` (0...26) changes level; a raised line signals the CPU as described above.
    public func setLevel(_ level: Bool, line: Int) {
        guard level, (0..<27).contains(line) else { return }
        let bit: UInt32 = 1 << UInt32(line)
        s.ipr |= bit
        guard s.imr & bit != 0 else { return }
        s.irr |= bit
        if s.icr & Self.busErrorBit == 0 {
            store(s.iar & ~31, s.iar & 31)
        }
    }

    // MARK: BusDevice (offsets from LASI_HPA; the machine maps two windows)

    public func read(offset: UInt64, size: Int) -> UInt64 {
        switch Register(offset: offset) {
        case .irr: return UInt64(s.irr)
        case .imr: return UInt64(s.imr)
        case .ipr:
            let value = s.ipr
            s.ipr = 0                      // any read of IPR clears it
            return UInt64(value)
        case .icr: return UInt64(s.icr & Self.busErrorBit)
        case .iar: return UInt64(s.iar)
        case .powerControl, .version, .ioReset: return 0
        case .errorLog: return UInt64(s.errorLog)
        case .arbitrationMask: return UInt64(s.arbitrationMask)
        case .unsupported(let raw):
            logger.debug("LASI: read of unknown offset 0x\(String(raw, radix: 16)) returns 0")
            return 0
        }
    }

    public func write(offset: UInt64, size: Int, value: UInt64) {
        let word = UInt32(truncatingIfNeeded: value)
        switch Register(offset: offset) {
        case .irr, .version:
            break                          // read-only
        case .imr: s.imr = word
        case .ipr: s.ipr = 0               // any write to IPR clears it
        case .icr: s.icr = word
        case .iar: s.iar = word
        case .powerControl:
            if word == 2 { s.powerOff = true }
        case .errorLog: s.errorLog = word
        case .ioReset: break
        case .arbitrationMask: s.arbitrationMask = word
        case .unsupported(let raw):
            logger.debug("LASI: write of 0x\(String(word, radix: 16)) to unknown offset 0x\(String(raw, radix: 16)) ignored")
        }
    }
}
