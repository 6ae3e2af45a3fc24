import Logging
import MachineCore

/// A National Semiconductor 16550A UART: COM1 on x86 (ports 0x3F8-0x3FF) and the LASI UART on
/// PA-RISC (MMIO 0xffd05800). Eight byte-wide registers at offsets 0-7 of its window.
///
/// Transmission is instantaneous: a byte written to THR goes at once to the `output` sink (or, in
/// loopback mode, into the receive FIFO), so LSR.THRE and LSR.TEMT always read 1 and the THR-empty
/// interrupt re-arms right after each write.
///
/// Reception is flow-controlled by the host, as QEMU's character devices ask `can_receive`:
/// `receiveRoom` says how many bytes the receiver can take now (the free places of the 16-byte
/// FIFO, or the one holding register without FIFOs), and the host hands `receive(_:)` (called by
/// the machine at epoch boundaries) no more than that, keeping the rest until the guest has read
/// some. The room is a function of the device state, so every replica computes the same amount at
/// the same boundary, and the bytes delivered are in the epoch's log. Bytes beyond the room (only
/// a faulty host or primary sends them) are lost to an overrun (LSR.OE), as on the chip. One
/// departure from the 16550 (and QEMU), which clear the receiver whenever FCR changes the FIFO
/// enable: enabling the FIFOs without FCR's clear bit keeps the byte waiting in the holding
/// register, so a driver that turns the FIFOs on does not lose the byte the host gave it before
/// (disabling them, or the clear bit, still clears). The character-timeout interrupt
/// (IIR 0x0C) counts as elapsed as soon as the FIFO holds fewer bytes than the trigger level:
/// input arrives in whole batches at boundaries.
///
/// The interrupt output is driven by level on the injected line: high while IIR reports an
/// interrupt. As in QEMU (and unlike a PC's wiring), MCR.OUT2 does not gate the line, so guests
/// behave the same under Lockstep and under QEMU. Modem inputs read CTS, DSR and DCD asserted
/// (a connected terminal); in loopback mode they follow MCR as the 16550 specifies.
///
/// Accesses wider than a byte are treated as a byte access at their offset and logged.
/// The counterparts are QEMU's `hw/char/serial.c` and vm-superio's `Serial`.
public final class UART16550: BusDevice {
    /// The complete, replicated state of the UART.
    public struct State: Codable, Equatable, Sendable {
        /// IER, bits 0-3 (ERBFI, ETBEI, ELSI, EDSSI).
        public var interruptEnable: UInt8 = 0
        /// LCR; bit 7 is DLAB.
        public var lineControl: UInt8 = 0
        /// MCR, bits 0-4 (DTR, RTS, OUT1, OUT2, LOOP).
        public var modemControl: UInt8 = 0
        /// LSR error bits 1-4 (OE, PE, FE, BI), latched until LSR is read.
        public var lineStatusErrors: UInt8 = 0
        /// MSR delta bits 0-3 (DCTS, DDSR, TERI, DDCD), latched until MSR is read.
        public var modemStatusDeltas: UInt8 = 0
        /// SCR.
        public var scratch: UInt8 = 0
        /// DLL (low byte) and DLM (high byte). Stored only: the baud rate does not affect timing.
        public var divisorLatch: UInt16 = 0
        /// FCR bits that persist: 0 (FIFO enable), 3 (DMA mode), 6-7 (receive trigger level).
        public var fifoControl: UInt8 = 0
        /// The receive FIFO (at most 16 bytes, 1 when FIFOs are disabled), oldest first.
        public var receiveFIFO: [UInt8] = []
        /// The last byte read from RBR, returned again when RBR is read empty without FIFOs.
        public var receiverBuffer: UInt8 = 0
        /// The THR-empty interrupt latch (set when THR empties or ETBEI is enabled; cleared by a
        /// THR write or by reading IIR while it is the interrupt reported).
        public var transmitterEmptyInterrupt: Bool = false
        /// The level this UART last drove on its interrupt line.
        public var interruptLevel: Bool = false

        /// The state after a hardware reset.
        public init() {}
    }

    /// One of the eight register offsets (the meaning of 0 and 1 also depends on LCR.DLAB).
    public enum Register: Equatable, Sendable {
        /// Offset 0: RBR (read), THR (write), or DLL when DLAB=1.
        case data
        /// Offset 1: IER, or DLM when DLAB=1.
        case interruptEnable
        /// Offset 2: IIR (read), FCR (write).
        case interruptIdentification
        /// Offset 3: LCR.
        case lineControl
        /// Offset 4: MCR.
        case modemControl
        /// Offset 5: LSR (read-only).
        case lineStatus
        /// Offset 6: MSR (read-only).
        case modemStatus
        /// Offset 7: SCR.
        case scratch
        /// An offset outside the eight registers.
        case unsupported(UInt64)

        /// The register at `offset` into the UART's window.
        public init(offset: UInt64) {
            switch offset {
            case 0: self = .data
            case 1: self = .interruptEnable
            case 2: self = .interruptIdentification
            case 3: self = .lineControl
            case 4: self = .modemControl
            case 5: self = .lineStatus
            case 6: self = .modemStatus
            case 7: self = .scratch
            default: self = .unsupported(offset)
            }
        }
    }

    /// The interrupt sources, highest priority first, with their IIR bits 1-3 codes.
    public enum InterruptSource: UInt8, Equatable, Sendable, CaseIterable {
        /// Overrun, parity, framing error or break (LSR bits 1-4). Cleared by reading LSR.
        case receiverLineStatus = 0x06
        /// The receive FIFO reached the trigger level (or holds a byte, without FIFOs).
        /// Cleared when RBR reads take it below the trigger level.
        case receivedDataAvailable = 0x04
        /// The receive FIFO holds fewer bytes than the trigger level. Cleared by reading RBR.
        case characterTimeout = 0x0C
        /// THR is empty. Cleared by writing THR or by reading IIR while this is reported.
        case transmitterHoldingRegisterEmpty = 0x02
        /// A modem status input changed (MSR bits 0-3). Cleared by reading MSR.
        case modemStatus = 0x00
    }

    /// What a guest did wrong (or, for an overrun, the host), as counted in `misbehaviorCounts`.
    public enum Misbehavior: String, Sendable, CaseIterable {
        case wideAccess = "wide-access"
        case unknownRegister = "unknown-register"
        case readOnlyRegister = "read-only-register"
        case receiverOverrun = "receiver-overrun"
    }

    /// The size of the receive FIFO in FIFO mode.
    public static let fifoCapacity = 16

    private var s: State
    private let line: InterruptLine
    private let output: ([UInt8]) -> Void
    private var log: MisbehaviorLog<Misbehavior>

    /// Creates a UART in `state` (by default the reset state).
    ///
    /// - Parameters:
    ///   - interrupt: the line the UART drives (IRQ 4 on x86).
    ///   - output: receives each transmitted byte, in order, as soon as the guest writes THR.
    ///     The machine passes `GuestEnvironment.consoleOutput`.
    ///   - state: the state to start from; restoring does not drive the line (the interrupt
    ///     controller restores its own input levels).
    public init(
        interrupt: InterruptLine, output: @escaping ([UInt8]) -> Void, state: State = State(),
        logger: Logger = Logger(label: "lockstep.devices.uart16550")
    ) {
        self.line = interrupt
        self.output = output
        self.s = state
        self.log = MisbehaviorLog(logger: logger)
    }

    /// The complete device state, for snapshots and replica comparison.
    public var state: State { s }

    /// Replaces the device state (for example with a snapshot). Does not drive the line.
    public func restore(_ state: State) { s = state }

    /// How often the guest misbehaved, by kind. Diagnostics only: not part of `state`.
    public var misbehaviorCounts: [Misbehavior: Int] { log.counts }

    /// How many bytes of host input `receive(_:)` can take now (QEMU's `serial_can_receive`): the
    /// free places in the receive FIFO (16 in FIFO mode, the holding register without FIFOs),
    /// and 0 in loopback mode (the serial input is disconnected).
    public var receiveRoom: Int {
        loopback ? 0 : max(0, receiveCapacity - s.receiveFIFO.count)
    }

    /// Host input for the receiver, applied at an epoch boundary: at most `receiveRoom` bytes,
    /// which enter the receive FIFO. Bytes beyond the room are lost to an overrun (LSR.OE).
    public func receive(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        let taken = min(bytes.count, receiveRoom)
        s.receiveFIFO.append(contentsOf: bytes.prefix(taken))
        if taken < bytes.count {
            s.lineStatusErrors |= 0x02  // OE
            log.report(.receiverOverrun, "UART: \(bytes.count - taken) bytes of host input beyond the receiver's room lost to an overrun")
        }
        updateInterrupt()
    }

    // MARK: - BusDevice

    /// Reads a register (16550: RBR/DLL, IER/DLM, IIR, LCR, MCR, LSR, MSR, SCR).
    public func read(offset: UInt64, size: Int) -> UInt64 {
        if size != 1 {
            log.report(.wideAccess, "UART: \(size)-byte read at offset \(offset) treated as a byte read")
        }
        let value: UInt8
        switch Register(offset: offset) {
        case .data: value = divisorLatchAccess ? UInt8(truncatingIfNeeded: s.divisorLatch) : readReceiverBuffer()
        case .interruptEnable: value = divisorLatchAccess ? UInt8(truncatingIfNeeded: s.divisorLatch >> 8) : s.interruptEnable
        case .interruptIdentification: value = readInterruptIdentification()
        case .lineControl: value = s.lineControl
        case .modemControl: value = s.modemControl
        case .lineStatus: value = readLineStatus()
        case .modemStatus: value = readModemStatus()
        case .scratch: value = s.scratch
        case .unsupported(let raw):
            log.report(.unknownRegister, "UART: read of unknown register offset \(raw)")
            value = 0xFF
        }
        return UInt64(value)
    }

    /// Writes a register (16550: THR/DLL, IER/DLM, FCR, LCR, MCR, SCR; LSR and MSR are read-only).
    public func write(offset: UInt64, size: Int, value: UInt64) {
        if size != 1 {
            log.report(.wideAccess, "UART: \(size)-byte write at offset \(offset) treated as a byte write")
        }
        let byte = UInt8(truncatingIfNeeded: value)
        switch Register(offset: offset) {
        case .data:
            if divisorLatchAccess {
                s.divisorLatch = (s.divisorLatch & 0xFF00) | UInt16(byte)
            } else {
                transmit(byte)
            }
        case .interruptEnable:
            if divisorLatchAccess {
                s.divisorLatch = (s.divisorLatch & 0x00FF) | UInt16(byte) << 8
            } else {
                writeInterruptEnable(byte)
            }
        case .interruptIdentification: writeFIFOControl(byte)
        case .lineControl: s.lineControl = byte
        case .modemControl: writeModemControl(byte)
        case .lineStatus:
            log.report(.readOnlyRegister, "UART: write of 0x\(String(byte, radix: 16)) to read-only LSR ignored")
        case .modemStatus:
            log.report(.readOnlyRegister, "UART: write of 0x\(String(byte, radix: 16)) to read-only MSR ignored")
        case .scratch: s.scratch = byte
        case .unsupported(let raw):
            log.report(.unknownRegister, "UART: write to unknown register offset \(raw) ignored")
        }
    }

    // MARK: - Derived register values

    /// Whether LCR.DLAB selects the divisor latch at offsets 0 and 1.
    private var divisorLatchAccess: Bool { s.lineControl & 0x80 != 0 }
    private var fifosEnabled: Bool { s.fifoControl & 0x01 != 0 }
    private var loopback: Bool { s.modemControl & 0x10 != 0 }
    private var receiveCapacity: Int { fifosEnabled ? Self.fifoCapacity : 1 }

    /// The receive FIFO trigger level selected by FCR bits 6-7 (1, 4, 8 or 14 bytes).
    public var triggerLevel: Int {
        switch s.fifoControl >> 6 {
        case 0: 1
        case 1: 4
        case 2: 8
        default: 14
        }
    }

    /// The highest-priority interrupt that is pending and enabled, if any (what IIR reports).
    public var pendingInterrupt: InterruptSource? {
        let enable = s.interruptEnable
        if enable & 0x04 != 0, s.lineStatusErrors != 0 { return .receiverLineStatus }
        if enable & 0x01 != 0, !s.receiveFIFO.isEmpty {
            if fifosEnabled, s.receiveFIFO.count < triggerLevel { return .characterTimeout }
            return .receivedDataAvailable
        }
        if enable & 0x02 != 0, s.transmitterEmptyInterrupt { return .transmitterHoldingRegisterEmpty }
        if enable & 0x08 != 0, s.modemStatusDeltas != 0 { return .modemStatus }
        return nil
    }

    /// The modem input lines in MSR bits 4-7 (CTS, DSR, RI, DCD).
    private var modemInputs: UInt8 {
        guard loopback else { return 0xB0 }  // CTS, DSR and DCD asserted
        let mcr = s.modemControl
        return (mcr & 0x02) << 3  // RTS -> CTS
            | (mcr & 0x01) << 5  // DTR -> DSR
            | (mcr & 0x04) << 4  // OUT1 -> RI
            | (mcr & 0x08) << 4  // OUT2 -> DCD
    }

    // MARK: - Register behaviour

    private func readReceiverBuffer() -> UInt8 {
        guard !s.receiveFIFO.isEmpty else { return fifosEnabled ? 0 : s.receiverBuffer }
        let byte = s.receiveFIFO.removeFirst()
        s.receiverBuffer = byte
        updateInterrupt()
        return byte
    }

    private func readInterruptIdentification() -> UInt8 {
        let source = pendingInterrupt
        let fifoBits: UInt8 = fifosEnabled ? 0xC0 : 0
        guard let source else { return fifoBits | 0x01 }
        if source == .transmitterHoldingRegisterEmpty {
            s.transmitterEmptyInterrupt = false
            updateInterrupt()
        }
        return fifoBits | source.rawValue
    }

    private func readLineStatus() -> UInt8 {
        var value: UInt8 = 0x60  // THRE, TEMT: transmission is instantaneous
        if !s.receiveFIFO.isEmpty { value |= 0x01 }
        value |= s.lineStatusErrors & 0x1E
        // Bit 7 flags a parity/framing/break error inside the FIFO; none is ever queued.
        if s.lineStatusErrors != 0 {
            s.lineStatusErrors = 0
            updateInterrupt()
        }
        return value
    }

    private func readModemStatus() -> UInt8 {
        let value = modemInputs | (s.modemStatusDeltas & 0x0F)
        if s.modemStatusDeltas != 0 {
            s.modemStatusDeltas = 0
            updateInterrupt()
        }
        return value
    }

    private func transmit(_ byte: UInt8) {
        s.transmitterEmptyInterrupt = false
        updateInterrupt()
        if loopback {
            if s.receiveFIFO.count < receiveCapacity {
                s.receiveFIFO.append(byte)
            } else {
                s.lineStatusErrors |= 0x02  // OE: the byte in the shift register is lost
                log.report(.receiverOverrun, "UART: loopback byte lost to a receiver overrun")
            }
        } else {
            output([byte])
        }
        // The byte left THR at once: THR is empty again.
        s.transmitterEmptyInterrupt = true
        updateInterrupt()
    }

    private func writeInterruptEnable(_ value: UInt8) {
        let old = s.interruptEnable
        s.interruptEnable = value & 0x0F
        if (old ^ s.interruptEnable) & 0x02 != 0 {
            // Enabling ETBEI while THR is empty (always) raises the THR-empty interrupt.
            s.transmitterEmptyInterrupt = s.interruptEnable & 0x02 != 0
        }
        updateInterrupt()
    }

    private func writeFIFOControl(_ value: UInt8) {
        var clearReceiver = value & 0x02 != 0
        if s.fifoControl & 0x01 != 0, value & 0x01 == 0 {
            clearReceiver = true  // disabling the FIFOs resets them
        }
        // Enabling them keeps the byte in the holding register (see the type's documentation).
        // With bit 0 clear the other FCR bits are not programmed.
        s.fifoControl = value & 0x01 != 0 ? value & 0xC9 : 0
        if clearReceiver { s.receiveFIFO.removeAll() }
        // Clearing the transmit FIFO (bit 2) has no effect: it is always empty.
        updateInterrupt()
    }

    private func writeModemControl(_ value: UInt8) {
        let oldInputs = modemInputs
        s.modemControl = value & 0x1F
        let newInputs = modemInputs
        let changed = oldInputs ^ newInputs
        var deltas: UInt8 = 0
        if changed & 0x10 != 0 { deltas |= 0x01 }  // DCTS
        if changed & 0x20 != 0 { deltas |= 0x02 }  // DDSR
        if oldInputs & 0x40 != 0, newInputs & 0x40 == 0 { deltas |= 0x04 }  // TERI
        if changed & 0x80 != 0 { deltas |= 0x08 }  // DDCD
        s.modemStatusDeltas |= deltas
        updateInterrupt()
    }

    private func updateInterrupt() {
        let level = pendingInterrupt != nil
        guard level != s.interruptLevel else { return }
        s.interruptLevel = level
        line.set(level)
    }
}
