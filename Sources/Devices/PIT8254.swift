import Logging
import MachineCore

/// An Intel 8254 programmable interval timer: x86 ports 0x40-0x42 (counters 0-2) and 0x43
/// (control word); counter 0's OUT drives IRQ 0, counter 2's gate and OUT appear on port 0x61
/// (`speakerPort`).
///
/// The input clock is 1.193182 MHz of virtual time from the injected `TimeSource`: counter reads
/// are computed from the current virtual time, never from a host clock. The interrupt line is
/// only driven by `update(now:)`, which the machine calls at epoch boundaries: it raises IRQ 0
/// for the rising edges of counter 0's OUT that happened up to `now` (several edges since the
/// last call give one edge on the line, as an edge-triggered 8259 would see them anyway) and then
/// leaves the line at OUT's current level. Edges caused by guest writes (reprogramming a counter)
/// are remembered and delivered by the next `update(now:)` too. `nextDeadline(after:)` gives the
/// next edge, for warping virtual time over an idle guest.
///
/// All six modes, the three access modes, the counter latch command, the read-back command and
/// BCD counting are implemented (see `Channel` for the timing model). The counterpart is QEMU's
/// `hw/timer/i8254.c`.
public final class PIT8254: BusDevice {
    /// The input clock in Hz.
    public static let frequency: UInt64 = 1_193_182

    /// The complete, replicated state of the timer.
    public struct State: Codable, Equatable, Sendable {
        /// Counters 0, 1 and 2.
        public var channels: [Channel]
        /// The clock tick up to which counter 0's edges have been accounted for.
        public var lastEvaluatedTick: UInt64 = 0
        /// A rising edge of counter 0's OUT that `update(now:)` has not delivered yet.
        public var edgePending: Bool = false
        /// The level this PIT last drove on IRQ 0.
        public var interruptLevel: Bool = false
        /// Port 0x61 bit 1: speaker data enable.
        public var speakerDataEnabled: Bool = false

        /// The power-on state: no counter programmed; gates of counters 0 and 1 high.
        public init() {
            channels = [Channel(gate: true), Channel(gate: true), Channel(gate: false)]
        }

        /// The state a PC BIOS leaves (SeaBIOS `timer_setup`): counter 0 in mode 2, lobyte/hibyte,
        /// binary, count 0 (65536, about 18.2 Hz), started at virtual time zero, with IRQ 0 at
        /// OUT's high idle level (the BIOS's programming edge is not replayed to the guest).
        public static func initialized() -> State {
            var state = State()
            state.channels[0].program(modeBits: 2, access: .lowThenHigh, bcd: false, atTick: 0)
            state.channels[0].load(0, atTick: 0)
            state.interruptLevel = true
            return state
        }
    }

    /// One of the four ports.
    public enum Port: Equatable, Sendable {
        /// Offsets 0-2: counter data ports.
        case counter(Int)
        /// Offset 3: the control word register (write-only).
        case control
        case unsupported(UInt64)

        /// The port at `offset` into the 0x40-0x43 window.
        public init(offset: UInt64) {
            switch offset {
            case 0, 1, 2: self = .counter(Int(offset))
            case 3: self = .control
            default: self = .unsupported(offset)
            }
        }
    }

    /// What a guest did wrong, as counted in `misbehaviorCounts`.
    public enum Misbehavior: String, Sendable, CaseIterable {
        case wideAccess = "wide-access"
        case unknownRegister = "unknown-register"
        case readOfControlWord = "read-of-control-word"
        case invalidBCD = "invalid-bcd"
        case illegalCount = "illegal-count"
    }

    private var s: State
    private let line: InterruptLine
    private let clock: any TimeSource
    private var log: MisbehaviorLog<Misbehavior>

    /// Creates the timer in `state` (by default power-on).
    ///
    /// - Parameters:
    ///   - interrupt: the line counter 0 drives (IRQ 0).
    ///   - time: the machine's virtual clock.
    ///   - state: the state to start from; restoring does not drive the line.
    public init(
        interrupt: InterruptLine, time: any TimeSource, state: State = State(),
        logger: Logger = Logger(label: "lockstep.devices.pit8254")
    ) {
        self.line = interrupt
        self.clock = time
        self.s = Self.normalized(state)
        self.log = MisbehaviorLog(logger: logger)
    }

    /// The complete device state, for snapshots and replica comparison.
    public var state: State { s }

    /// Replaces the device state (for example with a snapshot). Does not drive the line.
    public func restore(_ state: State) { s = Self.normalized(state) }

    /// How often the guest misbehaved, by kind. Diagnostics only: not part of `state`.
    public var misbehaviorCounts: [Misbehavior: Int] { log.counts }

    /// A state with exactly three channels, whatever a snapshot held.
    private static func normalized(_ state: State) -> State {
        var state = state
        while state.channels.count < 3 { state.channels.append(Channel(gate: state.channels.count < 2)) }
        if state.channels.count > 3 { state.channels.removeLast(state.channels.count - 3) }
        return state
    }

    // MARK: - Virtual time

    /// The number of input clock ticks from time zero to `time` (rounded down).
    public static func tick(at time: VirtualTime) -> UInt64 {
        let product = time.nanoseconds.multipliedFullWidth(by: frequency)
        return UInt64(1_000_000_000).dividingFullWidth(product).quotient
    }

    /// The earliest virtual time at which `tick` ticks have elapsed (saturating).
    public static func time(ofTick tick: UInt64) -> VirtualTime {
        let product = tick.multipliedFullWidth(by: 1_000_000_000)
        guard product.high < frequency else { return VirtualTime(nanoseconds: .max) }
        let (quotient, remainder) = frequency.dividingFullWidth(product)
        let (rounded, overflow) = quotient.addingReportingOverflow(remainder == 0 ? 0 : 1)
        return VirtualTime(nanoseconds: overflow ? .max : rounded)
    }

    private var currentTick: UInt64 { Self.tick(at: clock.now) }

    // MARK: - Machine interface

    /// At an epoch boundary: raises IRQ 0 for counter 0's rising edges up to `now` (one edge on
    /// the line however many happened) and leaves the line at OUT's level at `now`.
    public func update(now: VirtualTime) {
        accountEdges(through: Self.tick(at: now))
        let level = s.channels[0].output(atTick: s.lastEvaluatedTick)
        if s.edgePending {
            s.edgePending = false
            line.set(false)
            line.set(true)
            s.interruptLevel = true
        }
        if level != s.interruptLevel {
            s.interruptLevel = level
            line.set(level)
        }
    }

    /// The virtual time of counter 0's next rising edge after `time` (or `time` itself if an
    /// edge is waiting for `update(now:)`), or nil if counter 0 will not fire again.
    public func nextDeadline(after time: VirtualTime) -> VirtualTime? {
        if s.edgePending { return time }
        let tick = Self.tick(at: time)
        if s.channels[0].hasRisingEdge(after: s.lastEvaluatedTick, through: tick) { return time }
        guard let edge = s.channels[0].nextRisingEdge(after: max(tick, s.lastEvaluatedTick))
        else { return nil }
        return Self.time(ofTick: edge)
    }

    /// The OUT pin of counter `channel` (0-2) now.
    public func output(channel: Int) -> Bool {
        guard s.channels.indices.contains(channel) else { return false }
        return s.channels[channel].output(atTick: currentTick)
    }

    /// Notes counter 0's edges in `(lastEvaluatedTick, tick]` and advances to `tick`.
    private func accountEdges(through tick: UInt64) {
        guard tick > s.lastEvaluatedTick else { return }
        if s.channels[0].hasRisingEdge(after: s.lastEvaluatedTick, through: tick) {
            s.edgePending = true
        }
        s.lastEvaluatedTick = tick
    }

    /// Applies a guest-caused change to counter `channel` at the current time, remembering the
    /// edge if counter 0's OUT rises because of it.
    private func change(channel: Int, _ body: (inout Channel, UInt64) -> Void) {
        accountEdges(through: currentTick)
        let tick = s.lastEvaluatedTick
        let before = s.channels[0].output(atTick: tick)
        body(&s.channels[channel], tick)
        if channel == 0, !before, s.channels[0].output(atTick: tick) { s.edgePending = true }
    }

    // MARK: - BusDevice

    /// Reads a counter (status latch, latched count, or the live count per access mode).
    public func read(offset: UInt64, size: Int) -> UInt64 {
        if size != 1 { log.report(.wideAccess, "PIT: \(size)-byte read treated as a byte read") }
        switch Port(offset: offset) {
        case .counter(let index):
            return UInt64(readCounter(index))
        case .control:
            log.report(.readOfControlWord, "PIT: read of the write-only control word register")
            return 0
        case .unsupported(let raw):
            log.report(.unknownRegister, "PIT: read of unknown offset \(raw)")
            return 0xFF
        }
    }

    /// Writes a counter's count, or a control word (mode, latch or read-back command).
    public func write(offset: UInt64, size: Int, value: UInt64) {
        if size != 1 { log.report(.wideAccess, "PIT: \(size)-byte write treated as a byte write") }
        let byte = UInt8(truncatingIfNeeded: value)
        switch Port(offset: offset) {
        case .counter(let index): writeCounter(index, byte)
        case .control: writeControl(byte)
        case .unsupported(let raw):
            log.report(.unknownRegister, "PIT: write to unknown offset \(raw) ignored")
        }
    }

    private func readCounter(_ index: Int) -> UInt8 {
        var channel = s.channels[index]
        defer { s.channels[index] = channel }
        if let status = channel.latchedStatus {
            channel.latchedStatus = nil
            return status
        }
        if !channel.latchedBytes.isEmpty { return channel.latchedBytes.removeFirst() }
        let value = channel.count(atTick: currentTick)
        switch channel.access {
        case .lowByte: return UInt8(truncatingIfNeeded: value)
        case .highByte: return UInt8(truncatingIfNeeded: value >> 8)
        case .lowThenHigh:
            channel.readsHighByteNext.toggle()
            return UInt8(truncatingIfNeeded: channel.readsHighByteNext ? value : value >> 8)
        }
    }

    private func writeCounter(_ index: Int, _ byte: UInt8) {
        let value: UInt16
        switch s.channels[index].access {
        case .lowByte: value = UInt16(byte)
        case .highByte: value = UInt16(byte) << 8
        case .lowThenHigh:
            guard let low = s.channels[index].pendingLowByte else {
                s.channels[index].pendingLowByte = byte
                return
            }
            s.channels[index].pendingLowByte = nil
            value = UInt16(low) | UInt16(byte) << 8
        }
        change(channel: index) { channel, tick in channel.load(value, atTick: tick) }
        let channel = s.channels[index]
        if channel.hasInvalidBCD {
            log.report(.invalidBCD, "PIT: counter \(index) loaded with 0x\(String(value, radix: 16)), not a BCD number")
        }
        if value == 1, channel.mode == .rateGenerator || channel.mode == .squareWave {
            log.report(.illegalCount, "PIT: count 1 is illegal in mode \(channel.mode.rawValue); OUT stays high")
        }
    }

    private func writeControl(_ value: UInt8) {
        let select = Int(value >> 6)
        guard select != 3 else {
            readBack(value)
            return
        }
        let tick = currentTick
        guard let access = Channel.Access(rawValue: (value >> 4) & 3) else {
            s.channels[select].latchCount(atTick: tick)  // counter latch command
            return
        }
        change(channel: select) { channel, tick in
            channel.program(modeBits: (value >> 1) & 7, access: access, bcd: value & 1 != 0, atTick: tick)
        }
    }

    /// The read-back command: bit 5 clear latches counts, bit 4 clear latches status, bits 3-1
    /// select counters 2-0.
    private func readBack(_ value: UInt8) {
        let tick = currentTick
        for index in 0..<3 where value & (2 << UInt8(index)) != 0 {
            if value & 0x20 == 0 { s.channels[index].latchCount(atTick: tick) }
            if value & 0x10 == 0, s.channels[index].latchedStatus == nil {
                s.channels[index].latchedStatus = s.channels[index].status(atTick: tick)
            }
        }
    }

    // MARK: - Port 0x61

    /// Port 0x61 (PC system control port B), which carries counter 2's gate and output.
    public var speakerPort: SpeakerPort { SpeakerPort(pit: self) }

    /// Port 0x61: bit 0 counter 2 gate, bit 1 speaker data enable (read/write); bit 4 the
    /// memory-refresh toggle (flips every 15.085 us of virtual time) and bit 5 counter 2's OUT
    /// (read-only). A one-byte window.
    public final class SpeakerPort: BusDevice {
        private let pit: PIT8254

        init(pit: PIT8254) { self.pit = pit }

        /// Reads gate 2, speaker enable, the refresh toggle and OUT2.
        public func read(offset: UInt64, size: Int) -> UInt64 {
            let now = pit.clock.now
            let channel = pit.s.channels[2]
            var value: UInt8 = 0
            if channel.gate { value |= 0x01 }
            if pit.s.speakerDataEnabled { value |= 0x02 }
            if (now.nanoseconds / 15_085) & 1 != 0 { value |= 0x10 }
            if channel.output(atTick: PIT8254.tick(at: now)) { value |= 0x20 }
            return UInt64(value)
        }

        /// Writes gate 2 (bit 0) and speaker enable (bit 1).
        public func write(offset: UInt64, size: Int, value: UInt64) {
            pit.s.speakerDataEnabled = value & 0x02 != 0
            pit.change(channel: 2) { channel, tick in channel.setGate(value & 0x01 != 0, atTick: tick) }
        }
    }
}
