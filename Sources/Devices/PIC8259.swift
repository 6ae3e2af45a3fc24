/// One Intel 8259A programmable interrupt controller: its registers and its logic as a plain
/// value. `PIC8259Pair` wires two of them as the PC's master and slave.
///
/// The model follows the 8259A data sheet as QEMU's `hw/intc/i8259.c` does: edge-triggered
/// inputs latch a request in IRR on a rising edge (lowering the input does not withdraw it),
/// level-triggered inputs (ELCR, or ICW1.LTIM) keep IRR equal to the input; fully nested and
/// rotating priorities, specific and non-specific EOI, automatic EOI, special mask mode, special
/// fully nested mode and the poll command are supported. Buffered mode and MCS-80/85 mode are
/// accepted and ignored.
public struct PIC8259: Codable, Equatable, Sendable {
    /// Where the chip is in its initialization sequence (ICW1 starts it).
    public enum InitializationStep: String, Codable, Equatable, Sendable {
        /// Initialized: data-port writes are OCW1 (IMR).
        case ready
        case expectingICW2
        case expectingICW3
        case expectingICW4
    }

    /// Whether this is the master (IRQ 0-7, the cascade on IR2) or the slave (IRQ 8-15).
    public var isMaster: Bool
    /// Interrupt request register.
    public var irr: UInt8 = 0
    /// In-service register.
    public var isr: UInt8 = 0
    /// Interrupt mask register (OCW1).
    public var imr: UInt8 = 0
    /// The current levels of the eight IR inputs (for edge detection).
    public var inputLevels: UInt8 = 0
    /// Edge/level control register (ports 0x4D0/0x4D1): 1 = level-triggered.
    public var elcr: UInt8 = 0
    /// ICW1.LTIM: all inputs level-triggered.
    public var levelTriggeredMode: Bool = false
    /// ICW2: the vector of IR0 (bits 3-7).
    public var vectorBase: UInt8 = 0
    /// ICW3 as written (master: which inputs have slaves; slave: its cascade identity).
    public var cascadeConfiguration: UInt8 = 0
    /// The IR input with the highest priority is `priorityBase`; rotation moves it.
    public var priorityBase: UInt8 = 0
    /// The next data-port write's meaning (OCW1 or an ICW).
    public var initializationStep: InitializationStep = .ready
    /// ICW1.IC4: an ICW4 follows.
    public var expectsICW4: Bool = false
    /// ICW1.SNGL: no cascade, so no ICW3.
    public var singleMode: Bool = false
    /// ICW4.AEOI.
    public var automaticEOI: Bool = false
    /// OCW2 "rotate in automatic EOI mode".
    public var rotateOnAutomaticEOI: Bool = false
    /// ICW4.SFNM.
    public var specialFullyNested: Bool = false
    /// OCW3 special mask mode.
    public var specialMask: Bool = false
    /// OCW3 poll command: the next read of either port is a poll.
    public var pollPending: Bool = false
    /// OCW3 RIS: reads of the command port return ISR (true) or IRR (false).
    public var readsISR: Bool = false

    /// A chip in its power-on state.
    public init(isMaster: Bool) { self.isMaster = isMaster }

    /// The ELCR bits that may be set: IRQ 0, 1, 2 (master) and 8, 13 (slave) are always edge.
    public var elcrWritableMask: UInt8 { isMaster ? 0xF8 : 0xDE }

    /// The inputs that are level-triggered.
    public var levelTriggered: UInt8 { levelTriggeredMode ? 0xFF : elcr }

    // MARK: - Inputs and priority

    /// Drives IR input `line` (0-7) to `level`.
    public mutating func setInput(_ level: Bool, line: Int) {
        let mask = UInt8(1) << UInt8(line & 7)
        if levelTriggered & mask != 0 {
            if level { irr |= mask } else { irr &= ~mask }
        } else if level, inputLevels & mask == 0 {
            irr |= mask  // rising edge
        }
        if level { inputLevels |= mask } else { inputLevels &= ~mask }
    }

    /// The priority (0 = highest) of the highest-priority bit of `mask`, or 8 if none.
    private func priority(of mask: UInt8) -> Int {
        guard mask != 0 else { return 8 }
        var priority = 0
        while mask & (1 << ((UInt8(priority) &+ priorityBase) & 7)) == 0 { priority += 1 }
        return priority
    }

    /// The IR input the chip would signal to the CPU now (INT asserted), or nil.
    public func highestRequest() -> Int? {
        let requestPriority = priority(of: irr & ~imr)
        guard requestPriority < 8 else { return nil }
        var inService = isr
        if specialMask { inService &= ~imr }
        // In special fully nested mode the master lets the slave interrupt again while one of
        // its requests is in service.
        if specialFullyNested, isMaster { inService &= ~0x04 }
        guard requestPriority < priority(of: inService) else { return nil }
        return Int((UInt8(requestPriority) &+ priorityBase) & 7)
    }

    /// The INTA cycle for input `line`: sets ISR (unless automatic EOI) and clears an edge
    /// request from IRR.
    public mutating func acknowledge(_ line: Int) {
        let mask = UInt8(1) << UInt8(line & 7)
        if automaticEOI {
            if rotateOnAutomaticEOI { priorityBase = (UInt8(line & 7) &+ 1) & 7 }
        } else {
            isr |= mask
        }
        if levelTriggered & mask == 0 { irr &= ~mask }
    }

    // MARK: - Ports

    /// What a write to one of the chip's ports did, for the pair's logs.
    public enum WriteEffect: Equatable, Sendable {
        case done
        /// ICW4 selected MCS-80/85 mode, which an x86 never uses.
        case mcs80ModeIgnored
        /// OCW2 with a reserved command (R, SL, EOI = 0, 1, 0: "no operation").
        case noOperation
        /// A non-specific EOI with nothing in service.
        case spuriousEOI
    }

    /// A write to the command port (A0 = 0): ICW1, OCW2 or OCW3.
    public mutating func writeCommand(_ value: UInt8) -> WriteEffect {
        if value & 0x10 != 0 {
            // ICW1: start initialization. The edge detectors are reset, so an input must
            // rise again to request; level requests stay.
            inputLevels = 0
            irr &= levelTriggered
            imr = 0
            isr = 0
            priorityBase = 0
            vectorBase = 0
            readsISR = false
            pollPending = false
            specialMask = false
            automaticEOI = false
            rotateOnAutomaticEOI = false
            specialFullyNested = false
            expectsICW4 = value & 0x01 != 0
            singleMode = value & 0x02 != 0
            levelTriggeredMode = value & 0x08 != 0
            initializationStep = .expectingICW2
            return .done
        }
        if value & 0x08 != 0 {
            // OCW3
            if value & 0x04 != 0 { pollPending = true }
            if value & 0x02 != 0 { readsISR = value & 0x01 != 0 }
            if value & 0x40 != 0 { specialMask = value & 0x20 != 0 }
            return .done
        }
        // OCW2: bits 7-5 are R, SL, EOI; bits 2-0 the level for specific commands.
        let level = Int(value & 7)
        switch value >> 5 {
        case 0: rotateOnAutomaticEOI = false
        case 4: rotateOnAutomaticEOI = true
        case 1, 5:  // non-specific EOI (5: and rotate)
            let highest = priority(of: isr)
            guard highest < 8 else { return .spuriousEOI }
            let line = (UInt8(highest) &+ priorityBase) & 7
            isr &= ~(1 << line)
            if value >> 5 == 5 { priorityBase = (line &+ 1) & 7 }
        case 3:  // specific EOI
            isr &= ~(1 << UInt8(level))
        case 6:  // set priority: `level` becomes the lowest
            priorityBase = (UInt8(level) &+ 1) & 7
        case 7:  // rotate on specific EOI
            isr &= ~(1 << UInt8(level))
            priorityBase = (UInt8(level) &+ 1) & 7
        default:  // 2: no operation
            return .noOperation
        }
        return .done
    }

    /// A write to the data port (A0 = 1): OCW1 (IMR) or ICW2-ICW4 during initialization.
    public mutating func writeData(_ value: UInt8) -> WriteEffect {
        switch initializationStep {
        case .ready:
            imr = value
        case .expectingICW2:
            vectorBase = value & 0xF8
            initializationStep =
                singleMode ? (expectsICW4 ? .expectingICW4 : .ready) : .expectingICW3
        case .expectingICW3:
            cascadeConfiguration = value
            initializationStep = expectsICW4 ? .expectingICW4 : .ready
        case .expectingICW4:
            automaticEOI = value & 0x02 != 0
            specialFullyNested = value & 0x10 != 0
            initializationStep = .ready
            if value & 0x01 == 0 { return .mcs80ModeIgnored }
        }
        return .done
    }

    /// A read after an OCW3 poll command: acknowledges the highest request as INTA would and
    /// returns 0x80 | its input, or 0 if there is none.
    public mutating func poll() -> UInt8 {
        pollPending = false
        guard let line = highestRequest() else { return 0 }
        acknowledge(line)
        return 0x80 | UInt8(line)
    }

    /// A read of the command port: IRR or ISR (OCW3), or a poll.
    public mutating func readCommand() -> UInt8 {
        if pollPending { return poll() }
        return readsISR ? isr : irr
    }

    /// A read of the data port: IMR, or a poll.
    public mutating func readData() -> UInt8 {
        if pollPending { return poll() }
        return imr
    }
}
