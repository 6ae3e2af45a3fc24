extension PIT8254 {
    /// One of the 8254's three 16-bit down-counters, as a plain value.
    ///
    /// Time is counted in ticks of the 1.193182 MHz input clock on a global grid: tick `k` is the
    /// first tick at or after virtual time `k / 1.193182 MHz`. A counter loaded at tick `L` has
    /// seen `d = k - L` clock pulses at tick `k`; its value and output are functions of `d` and of
    /// the period `N` (the count register, with 0 meaning 65536, or 10000 in BCD). A new count
    /// takes effect at once in every mode (the one-clock load delay of the real part is not
    /// modelled). Rising edges of OUT, which are what an edge-triggered IRQ sees, fall at
    /// `d = N` (modes 0, 1), `d = kN` for k >= 1 (modes 2, 3), `d = N + 1` (modes 4, 5).
    public struct Channel: Codable, Equatable, Sendable {
        /// The counter mode (control word bits 3-1; 6 and 7 are modes 2 and 3).
        public enum Mode: UInt8, Codable, Equatable, Sendable, CaseIterable {
            /// Mode 0: OUT goes high at terminal count and stays high.
            case interruptOnTerminalCount = 0
            /// Mode 1: OUT low from the trigger until terminal count.
            case hardwareRetriggerableOneShot = 1
            /// Mode 2: OUT low for one clock every N clocks (the periodic timer).
            case rateGenerator = 2
            /// Mode 3: OUT high for ceil(N/2) clocks, low for floor(N/2).
            case squareWave = 3
            /// Mode 4: OUT low for one clock at terminal count.
            case softwareTriggeredStrobe = 4
            /// Mode 5: as mode 4, started by a gate trigger.
            case hardwareTriggeredStrobe = 5
        }

        /// How the counter's bytes are read and written (control word bits 5-4; 0 is the
        /// counter latch command, not an access mode).
        public enum Access: UInt8, Codable, Equatable, Sendable, CaseIterable {
            case lowByte = 1
            case highByte = 2
            case lowThenHigh = 3
        }

        /// The counter mode from the last control word.
        public var mode: Mode = .interruptOnTerminalCount
        /// Control word bits 3-1 as written (mode 2 may be written as 6), for read-back status.
        public var modeBits: UInt8 = 0
        /// The access mode from the last control word.
        public var access: Access = .lowThenHigh
        /// Counts in BCD (0-9999) instead of binary.
        public var bcd: Bool = false
        /// The count register (CR) as last loaded.
        public var countRegister: UInt16 = 0
        /// Whether a count has been loaded since the last control word.
        public var counting: Bool = false
        /// The clock tick at which the current count started.
        public var loadTick: UInt64 = 0
        /// Clock pulses counted before the gate went low, while it is low (modes 0, 2, 3, 4).
        public var pausedElapsed: UInt64? = nil
        /// Modes 1 and 5 loaded while the gate was low: waiting for a rising gate edge.
        public var awaitingTrigger: Bool = false
        /// Access mode lowThenHigh: the LSB written so far, waiting for the MSB.
        public var pendingLowByte: UInt8? = nil
        /// Access mode lowThenHigh, unlatched reads: the next read returns the MSB.
        public var readsHighByteNext: Bool = false
        /// Bytes of a latched count still to be read, first first.
        public var latchedBytes: [UInt8] = []
        /// A latched status byte (read-back command), read before any latched count.
        public var latchedStatus: UInt8? = nil
        /// Status bit 6: a control word was written and no count has been loaded since.
        public var nullCount: Bool = false
        /// The GATE input (high for channels 0 and 1; port 0x61 bit 0 for channel 2).
        public var gate: Bool
        /// The counter value shown after a control word, until a count is loaded.
        public var frozenCount: UInt16 = 0

        /// An unprogrammed counter with GATE at `gate`.
        public init(gate: Bool) { self.gate = gate }

        /// The period N in clock pulses.
        public var period: UInt64 {
            if bcd {
                let value = Self.decodeBCD(countRegister) % 10000
                return value == 0 ? 10000 : value
            }
            return countRegister == 0 ? 65536 : UInt64(countRegister)
        }

        /// Whether the count register holds digits above 9 while in BCD mode.
        var hasInvalidBCD: Bool {
            bcd && (0..<4).contains { (countRegister >> (4 * UInt16($0))) & 0xF > 9 }
        }

        /// The decimal value of four BCD digits (digits above 9 keep their binary weight).
        static func decodeBCD(_ value: UInt16) -> UInt64 {
            (0..<4).reduce(UInt64(0)) { sum, digit in
                sum + UInt64((value >> (4 * UInt16(digit))) & 0xF) * [1, 10, 100, 1000][digit]
            }
        }

        /// `value` (0-9999) as four BCD digits.
        static func encodeBCD(_ value: UInt64) -> UInt16 {
            var result: UInt16 = 0
            var rest = value % 10000
            for digit in 0..<4 {
                result |= UInt16(rest % 10) << (4 * UInt16(digit))
                rest /= 10
            }
            return result
        }

        /// Whether the counter is running (loaded, triggered, gate not holding it).
        var isRunning: Bool { counting && !awaitingTrigger && pausedElapsed == nil }

        /// Clock pulses counted at tick `tick`, or nil if no count is running or held.
        func elapsed(atTick tick: UInt64) -> UInt64? {
            guard counting, !awaitingTrigger else { return nil }
            if let paused = pausedElapsed { return paused }
            return tick >= loadTick ? tick - loadTick : 0
        }

        /// The OUT pin at tick `tick`.
        public func output(atTick tick: UInt64) -> Bool {
            guard let d = elapsed(atTick: tick) else {
                return mode != .interruptOnTerminalCount  // mode 0 starts low, others high
            }
            if pausedElapsed != nil, mode == .rateGenerator || mode == .squareWave {
                return true  // a low gate forces OUT high in modes 2 and 3
            }
            let n = period
            switch mode {
            case .interruptOnTerminalCount, .hardwareRetriggerableOneShot: return d >= n
            case .rateGenerator: return n < 2 || d % n != n - 1
            case .squareWave: return d % n < (n + 1) / 2
            case .softwareTriggeredStrobe, .hardwareTriggeredStrobe: return d != n
            }
        }

        /// The counter value at tick `tick`, as the guest reads it (binary or BCD).
        public func count(atTick tick: UInt64) -> UInt16 {
            guard counting else { return frozenCount }
            guard let d = elapsed(atTick: tick) else { return countRegister }  // awaiting trigger
            let n = period
            let modulus: UInt64 = bcd ? 10000 : 65536
            let value: UInt64
            switch mode {
            case .interruptOnTerminalCount, .hardwareRetriggerableOneShot,
                .softwareTriggeredStrobe, .hardwareTriggeredStrobe:
                value = (n % modulus + modulus - d % modulus) % modulus
            case .rateGenerator:
                value = n - d % n
            case .squareWave:
                value = Self.squareWaveCount(period: n, phase: d % n)
            }
            return bcd ? Self.encodeBCD(value) : UInt16(truncatingIfNeeded: value)
        }

        /// The mode 3 counter at `phase` clocks into a period of `n` (8254 data sheet: even
        /// counts decrement by two; odd counts load N, decrement by one then two while OUT is
        /// high for (N+1)/2 clocks, and reload N then decrement by three then two while low).
        static func squareWaveCount(period n: UInt64, phase p: UInt64) -> UInt64 {
            if n % 2 == 0 { return n - 2 * (p % (n / 2)) }
            let high = (n + 1) / 2
            if p < high { return p == 0 ? n : n + 1 - 2 * p }
            let q = p - high
            return q == 0 ? n : n - 1 - 2 * q
        }

        /// Whether OUT has a rising edge at some tick in `(from, through]`.
        func hasRisingEdge(after from: UInt64, through to: UInt64) -> Bool {
            guard isRunning, to > from, to >= loadTick else { return false }
            let da = from >= loadTick ? from - loadTick : 0
            let db = to - loadTick
            let n = period
            switch mode {
            case .interruptOnTerminalCount, .hardwareRetriggerableOneShot: return da < n && n <= db
            case .rateGenerator, .squareWave: return n >= 2 && db / n > da / n
            case .softwareTriggeredStrobe, .hardwareTriggeredStrobe: return da <= n && n < db
            }
        }

        /// The first tick after `tick` with a rising edge of OUT, if the counter will make one.
        func nextRisingEdge(after tick: UInt64) -> UInt64? {
            guard isRunning else { return nil }
            let d = tick >= loadTick ? tick - loadTick : 0
            let n = period
            let edge: UInt64
            switch mode {
            case .interruptOnTerminalCount, .hardwareRetriggerableOneShot:
                guard d < n else { return nil }
                edge = n
            case .rateGenerator, .squareWave:
                guard n >= 2 else { return nil }
                let (product, overflow) = (d / n + 1).multipliedReportingOverflow(by: n)
                guard !overflow else { return nil }
                edge = product
            case .softwareTriggeredStrobe, .hardwareTriggeredStrobe:
                guard d <= n else { return nil }
                edge = n + 1
            }
            let (absolute, overflow) = loadTick.addingReportingOverflow(edge)
            return overflow ? nil : absolute
        }

        /// The read-back status byte: OUT, null count, access, mode bits, BCD.
        public func status(atTick tick: UInt64) -> UInt8 {
            (output(atTick: tick) ? 0x80 : 0) | (nullCount ? 0x40 : 0)
                | access.rawValue << 4 | (modeBits & 7) << 1 | (bcd ? 1 : 0)
        }

        /// Latches the count for reading, unless a latched count is still unread.
        mutating func latchCount(atTick tick: UInt64) {
            guard latchedBytes.isEmpty else { return }
            let value = count(atTick: tick)
            let low = UInt8(truncatingIfNeeded: value)
            let high = UInt8(truncatingIfNeeded: value >> 8)
            switch access {
            case .lowByte: latchedBytes = [low]
            case .highByte: latchedBytes = [high]
            case .lowThenHigh: latchedBytes = [low, high]
            }
        }

        /// A control word for this counter (not a latch command).
        mutating func program(modeBits bits: UInt8, access: Access, bcd: Bool, atTick tick: UInt64) {
            frozenCount = count(atTick: tick)
            modeBits = bits & 7
            mode = Mode(rawValue: bits & 7 >= 6 ? bits & 3 : bits & 7) ?? .rateGenerator
            self.access = access
            self.bcd = bcd
            counting = false
            awaitingTrigger = false
            pausedElapsed = nil
            pendingLowByte = nil
            readsHighByteNext = false
            latchedBytes = []
            latchedStatus = nil
            nullCount = true
        }

        /// Starts counting `value` at `tick`.
        mutating func load(_ value: UInt16, atTick tick: UInt64) {
            countRegister = value
            counting = true
            nullCount = false
            loadTick = tick
            pausedElapsed = nil
            awaitingTrigger = false
            if !gate {
                switch mode {
                case .interruptOnTerminalCount, .rateGenerator, .squareWave,
                    .softwareTriggeredStrobe:
                    pausedElapsed = 0
                case .hardwareRetriggerableOneShot, .hardwareTriggeredStrobe:
                    awaitingTrigger = true
                }
            }
        }

        /// Drives the GATE input at `tick`.
        mutating func setGate(_ level: Bool, atTick tick: UInt64) {
            guard level != gate else { return }
            gate = level
            guard counting else { return }
            if level {
                switch mode {
                case .hardwareRetriggerableOneShot, .hardwareTriggeredStrobe, .rateGenerator,
                    .squareWave:
                    // Trigger (modes 1, 5) or restart from the full count (modes 2, 3).
                    loadTick = tick
                    awaitingTrigger = false
                    pausedElapsed = nil
                case .interruptOnTerminalCount, .softwareTriggeredStrobe:
                    if let paused = pausedElapsed {
                        loadTick = tick >= paused ? tick - paused : 0
                        pausedElapsed = nil
                    }
                }
            } else {
                switch mode {
                case .interruptOnTerminalCount, .softwareTriggeredStrobe, .rateGenerator,
                    .squareWave:
                    if !awaitingTrigger, pausedElapsed == nil {
                        pausedElapsed = tick >= loadTick ? tick - loadTick : 0
                    }
                case .hardwareRetriggerableOneShot, .hardwareTriggeredStrobe:
                    break  // the gate only triggers these modes
                }
            }
        }
    }
}
