import Logging
import MachineCore

/// The PC's two cascaded 8259A interrupt controllers: the master (IRQ 0-7, ports 0x20-0x21)
/// and the slave (IRQ 8-15, ports 0xA0-0xA1), whose INT output drives the master's IR2.
///
/// Devices drive lines 0-15 through `InterruptController.setLevel`; line 2 is the cascade and
/// cannot be driven from outside. The engine asks `pendingInterrupt` (the master's INT output)
/// when the guest can take an interrupt and then runs the INTA cycle with `acknowledge()`, which
/// returns the vector to inject.
///
/// The pair has three register windows, each a `BusDevice` view on this one object (register
/// each on the port bus): `masterPorts` (2 bytes at 0x20), `slavePorts` (2 bytes at 0xA0) and
/// `elcrPorts` (2 bytes at 0x4D0, the PIIX edge/level control registers).
/// The counterpart is QEMU's `hw/intc/i8259.c`.
public final class PIC8259Pair: InterruptController {
    /// The complete, replicated state of the pair.
    public struct State: Codable, Equatable, Sendable {
        /// IRQ 0-7, ports 0x20-0x21.
        public var master: PIC8259
        /// IRQ 8-15, ports 0xA0-0xA1, cascaded on the master's IR2.
        public var slave: PIC8259

        /// Both chips in their power-on state (uninitialized, vector base 0, nothing masked).
        public init() {
            master = PIC8259(isMaster: true)
            slave = PIC8259(isMaster: false)
        }

        /// Both chips initialized the way a PC BIOS leaves them (ICW1 0x11, ICW3 0x04/0x02,
        /// ICW4 0x01): master vectors at `masterVectorBase`, slave at `slaveVectorBase`, with
        /// the given masks.
        public static func initialized(
            masterVectorBase: UInt8 = 0x08, slaveVectorBase: UInt8 = 0x70,
            masterMask: UInt8 = 0xFB, slaveMask: UInt8 = 0xFF
        ) -> State {
            var state = State()
            for (chip, base, icw3, mask) in [
                (\State.master, masterVectorBase, UInt8(0x04), masterMask),
                (\State.slave, slaveVectorBase, UInt8(0x02), slaveMask),
            ] {
                _ = state[keyPath: chip].writeCommand(0x11)
                _ = state[keyPath: chip].writeData(base)
                _ = state[keyPath: chip].writeData(icw3)
                _ = state[keyPath: chip].writeData(0x01)
                _ = state[keyPath: chip].writeData(mask)
            }
            return state
        }
    }

    /// Which chip a register window belongs to.
    public enum Chip: String, Sendable, Equatable {
        case master, slave
    }

    /// What a guest (or a misconfigured device) did wrong, as counted in `misbehaviorCounts`.
    public enum Misbehavior: String, Sendable, CaseIterable {
        case unknownRegister = "unknown-register"
        case wideAccess = "wide-access"
        case invalidLine = "invalid-line"
        case mcs80Mode = "mcs80-mode"
        case noOperation = "ocw2-no-operation"
        case spuriousEOI = "spurious-eoi"
    }

    private var s: State
    private var log: MisbehaviorLog<Misbehavior>

    /// Creates the pair in `state` (by default power-on; the engine or a guest BIOS programs it).
    public init(state: State = State(), logger: Logger = Logger(label: "lockstep.devices.pic8259")) {
        self.s = state
        self.log = MisbehaviorLog(logger: logger)
    }

    /// The complete device state, for snapshots and replica comparison.
    public var state: State { s }

    /// Replaces the device state (for example with a snapshot).
    public func restore(_ state: State) { s = state }

    /// How often the guest misbehaved, by kind. Diagnostics only: not part of `state`.
    public var misbehaviorCounts: [Misbehavior: Int] { log.counts }

    // MARK: - Engine interface

    /// Whether the master's INT output is asserted: an unmasked request outranks everything in
    /// service. The engine injects only when this is true and the guest accepts interrupts.
    public var pendingInterrupt: Bool { s.master.highestRequest() != nil }

    /// The INTA cycle: returns the vector to inject and moves the request from IRR to ISR
    /// (on the slave too, for IRQ 8-15). Returns nil, and changes nothing, when INT is not
    /// asserted. When the master's request on the cascade input no longer has a slave request
    /// behind it (it was masked or withdrawn after the master latched it), the slave answers
    /// with its spurious vector (IRQ 15: slave base + 7) and only the master's IR2 goes in
    /// service, as on the 8259A; the guest must then EOI the master only.
    public func acknowledge() -> UInt8? {
        guard let line = s.master.highestRequest() else { return nil }
        let vector: UInt8
        if line == 2, !s.master.singleMode {
            if let slaveLine = s.slave.highestRequest() {
                s.slave.acknowledge(slaveLine)
                vector = s.slave.vectorBase | UInt8(slaveLine)
            } else {
                vector = s.slave.vectorBase | 7  // spurious IRQ 15
            }
        } else {
            vector = s.master.vectorBase | UInt8(line)
        }
        s.master.acknowledge(line)
        propagateCascade()
        return vector
    }

    /// Drives IRQ `line` (0-15) to `level`. Line 2 is the internal cascade and is ignored.
    public func setLevel(_ level: Bool, line: Int) {
        switch line {
        case 0, 1, 3...7:
            s.master.setInput(level, line: line)
        case 8...15:
            s.slave.setInput(level, line: line - 8)
            propagateCascade()
        default:
            log.report(.invalidLine, "PIC: a device drove IRQ \(line), which is not an input; ignored")
        }
    }

    /// The slave's INT output is the master's IR2 input.
    private func propagateCascade() {
        s.master.setInput(s.slave.highestRequest() != nil, line: 2)
    }

    // MARK: - Register windows

    /// The master's two ports (0x20 command, 0x21 data).
    public var masterPorts: Ports { Ports(pair: self, chip: .master) }
    /// The slave's two ports (0xA0 command, 0xA1 data).
    public var slavePorts: Ports { Ports(pair: self, chip: .slave) }
    /// The ELCR pair (0x4D0 master, 0x4D1 slave).
    public var elcrPorts: ELCRPorts { ELCRPorts(pair: self) }

    /// One chip's two-port register window: offset 0 is the command port (ICW1, OCW2, OCW3;
    /// reads IRR/ISR), offset 1 the data port (ICW2-4, OCW1; reads IMR).
    public final class Ports: BusDevice {
        /// The chip this window belongs to.
        public let chip: Chip
        private let pair: PIC8259Pair

        init(pair: PIC8259Pair, chip: Chip) {
            self.pair = pair
            self.chip = chip
        }

        /// Reads IRR/ISR (offset 0) or IMR (offset 1), or a poll result.
        public func read(offset: UInt64, size: Int) -> UInt64 {
            UInt64(pair.readPort(chip, offset: offset, size: size))
        }

        /// Writes ICW1/OCW2/OCW3 (offset 0) or ICW2-4/OCW1 (offset 1).
        public func write(offset: UInt64, size: Int, value: UInt64) {
            pair.writePort(chip, offset: offset, size: size, value: UInt8(truncatingIfNeeded: value))
        }
    }

    /// The edge/level control registers (PIIX ELCR1/ELCR2): offset 0 master, offset 1 slave.
    public final class ELCRPorts: BusDevice {
        private let pair: PIC8259Pair

        init(pair: PIC8259Pair) { self.pair = pair }

        /// Reads ELCR1 (offset 0) or ELCR2 (offset 1).
        public func read(offset: UInt64, size: Int) -> UInt64 {
            switch offset {
            case 0: UInt64(pair.s.master.elcr)
            case 1: UInt64(pair.s.slave.elcr)
            default: 0xFF
            }
        }

        /// Writes ELCR1 or ELCR2; bits for always-edge IRQs (0, 1, 2, 8, 13) stay clear.
        public func write(offset: UInt64, size: Int, value: UInt64) {
            let byte = UInt8(truncatingIfNeeded: value)
            switch offset {
            case 0: pair.s.master.elcr = byte & pair.s.master.elcrWritableMask
            case 1:
                pair.s.slave.elcr = byte & pair.s.slave.elcrWritableMask
            default:
                pair.log.report(.unknownRegister, "PIC: write to ELCR offset \(offset) ignored")
            }
        }
    }

    private func readPort(_ chip: Chip, offset: UInt64, size: Int) -> UInt8 {
        if size != 1 { log.report(.wideAccess, "PIC: \(size)-byte read treated as a byte read") }
        let value: UInt8
        switch (chip, offset) {
        case (.master, 0): value = s.master.readCommand()
        case (.master, 1): value = s.master.readData()
        case (.slave, 0): value = s.slave.readCommand()
        case (.slave, 1): value = s.slave.readData()
        default:
            log.report(.unknownRegister, "PIC: read of \(chip) offset \(offset)")
            return 0xFF
        }
        // A poll may have acknowledged a slave request.
        if chip == .slave { propagateCascade() }
        return value
    }

    private func writePort(_ chip: Chip, offset: UInt64, size: Int, value: UInt8) {
        if size != 1 { log.report(.wideAccess, "PIC: \(size)-byte write treated as a byte write") }
        let effect: PIC8259.WriteEffect
        switch (chip, offset) {
        case (.master, 0): effect = s.master.writeCommand(value)
        case (.master, 1): effect = s.master.writeData(value)
        case (.slave, 0): effect = s.slave.writeCommand(value)
        case (.slave, 1): effect = s.slave.writeData(value)
        default:
            log.report(.unknownRegister, "PIC: write to \(chip) offset \(offset) ignored")
            return
        }
        if chip == .slave { propagateCascade() }
        switch effect {
        case .done: break
        case .mcs80ModeIgnored:
            log.report(.mcs80Mode, "PIC: ICW4 selects MCS-80/85 mode on the \(chip); treated as 8086 mode")
        case .noOperation:
            log.report(.noOperation, "PIC: OCW2 0x\(String(value, radix: 16)) is a no-operation")
        case .spuriousEOI:
            log.report(.spuriousEOI, "PIC: EOI to the \(chip) with nothing in service")
        }
    }
}
