import Foundation
import KVM

/// The `emulation-counter` clock's counter: the vCPU statistic `insn_emulation`, which on the PVM
/// host goes up by exactly one for every instruction KVM's emulator interprets, and KVM
/// interprets all CPL0 code there (docs/kvm-platform.md, items 0 and 9). It does not move for
/// CPL3 code, which runs natively.
///
/// It has no overflow interrupt, so a `KickTimer` plays that part: a thread that watches the
/// statistic and kicks the vCPU once it reaches the armed value. The kick lands late (the
/// timer's polling interval, the signal's latency, the rest of the emulation batch, and whole
/// milliseconds when the host is busy), which is the skid: it is armed `kickSkid` instructions
/// early. KVM also offers a bounded run here: with `request_interrupt_window` set and interrupts
/// enabled, `KVM_RUN` returns at the end of the current emulation batch (`pvm_emul_batch`, 1024
/// instructions), so a run started more than a batch before the target always stops short of it.
final class EmulationCounter: CounterSource {
    /// How far before the target the kick timer is armed. The kick lands within about 200
    /// instructions on an idle host and a few thousand on a loaded one (`lockstep doctor`
    /// measures it); the clock prefers bounded runs wherever interrupts are enabled, so this
    /// margin matters only in long stretches with interrupts disabled.
    static let kickSkid: UInt64 = 8192

    /// The most instructions a run with an interrupt window executes: KVM's emulation batch
    /// (the `kvm_pvm` module's `pvm_emul_batch`, 1024 when it cannot be read) plus a margin for
    /// the instruction that completes an exit.
    static let boundedRun: UInt64 = {
        let parameter = try? String(contentsOfFile: "/sys/module/kvm_pvm/parameters/pvm_emul_batch", encoding: .utf8)
        let batch = parameter.flatMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 1024
        return batch + 64
    }()

    /// The statistic's name in the vCPU's binary statistics.
    static let statisticName = "insn_emulation"

    let statistics: BinaryStatistics
    let descriptor: BinaryStatistics.Descriptor
    let kicker: VCPUKicker
    private var timer: KickTimer?

    /// Opens the vCPU's statistics; nil if it has no `insn_emulation`.
    init?(vcpu: VCPU) throws(KVMError) {
        let statistics = try vcpu.statistics()
        guard let descriptor = statistics.descriptor(named: Self.statisticName) else { return nil }
        self.statistics = statistics
        self.descriptor = descriptor
        self.kicker = vcpu.kicker
    }

    deinit {
        timer?.stop()
    }

    var capabilities: CounterConvergence.Capabilities {
        // A step retires two instructions at most here (IRETQ and the next one, or a faulting
        // instruction and its handler's first); 4 leaves a margin.
        .init(overflowSkid: Self.kickSkid, boundedRun: Self.boundedRun, countsEveryInstruction: true,
              maximumPerStep: 4)
    }
    var countsOnlyInterpretedCode: Bool { true }

    func count() throws(KVMError) -> UInt64 {
        try statistics.values(of: descriptor).first ?? 0
    }

    func noteDeterministicExit() {}

    func armOverflow(at value: UInt64) throws(KVMError) {
        if timer == nil {
            timer = KickTimer(statistics: statistics, descriptor: descriptor, kicker: kicker)
        }
        timer?.arm(at: value)
    }

    func disarmOverflow() throws(KVMError) {
        timer?.disarm()
    }
}

/// A thread that kicks a vCPU once its `insn_emulation` statistic reaches an armed value: the
/// emulation counter's overflow. It sleeps in proportion to the distance left (at least 20 µs,
/// at most 2 ms between reads), so an armed timer costs a few wake-ups per epoch, and a disarmed
/// one none.
final class KickTimer: @unchecked Sendable {
    // Every field below is guarded by `condition` (the timer thread and the vCPU thread share it).
    private let condition = NSCondition()
    private var armedAt: UInt64?
    private var stopped = false

    private let statistics: BinaryStatistics
    private let descriptor: BinaryStatistics.Descriptor
    private let kicker: VCPUKicker

    init(statistics: BinaryStatistics, descriptor: BinaryStatistics.Descriptor, kicker: VCPUKicker) {
        self.statistics = statistics
        self.descriptor = descriptor
        self.kicker = kicker
        let thread = Thread { [self] in loop() }
        thread.name = "lockstep-kick-timer"
        thread.start()
    }

    func arm(at value: UInt64) {
        condition.withLock {
            armedAt = value
            condition.signal()
        }
    }

    func disarm() {
        condition.withLock { armedAt = nil }
    }

    func stop() {
        condition.withLock {
            stopped = true
            condition.signal()
        }
    }

    private func loop() {
        condition.lock()
        defer { condition.unlock() }
        while !stopped {
            guard let target = armedAt else {
                condition.wait()
                continue
            }
            condition.unlock()
            let now = (try? statistics.values(of: descriptor).first) ?? nil
            condition.lock()
            guard armedAt == target, !stopped else { continue }
            guard let now else {
                // The statistic cannot be read: kick at once rather than let the vCPU run on.
                armedAt = nil
                kicker.kick()
                continue
            }
            if now >= target {
                armedAt = nil
                kicker.kick()
            } else {
                // About 650 ns per interpreted instruction; sleep a third of the estimate.
                let nanoseconds = min(max((target - now) * 200, 20_000), 2_000_000)
                _ = condition.wait(until: Date(timeIntervalSinceNow: Double(nanoseconds) / 1e9))
            }
        }
    }
}
