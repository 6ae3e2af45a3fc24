import Foundation
import KVM
import MachineCore
import Synchronization

/// The `pmu` epoch clock: a retired-instruction performance counter of the vCPU thread
/// (guest mode only), a watcher that kicks the vCPU shortly before the epoch's target, and
/// single-stepping over the rest so the epoch ends at exactly the target count.
///
/// UNTESTED: the development host has no PMU (perf_event_open fails with ENOENT for every hardware
/// event), so `X86Machine` refuses this clock there, and this code has never run. It is written
/// for a host with a PMU and working single-step at every CPL. Known limits: the KVM module has no
/// overflow-signal support (`perf_event_attr.sample_period` + `F_SETSIG`), so the watcher polls
/// the counter every 20 µs instead of taking an overflow interrupt; if the vCPU thread retires
/// more than `margin` instructions between the watcher's read and the kick, the epoch overshoots
/// and the run stops with an error. Instructions KVM emulates (the exiting OUT, CPUID, HLT) are
/// not counted by the hardware, which is the same on every replica.
final class PerformanceCounterClock {
    /// Instructions before the target at which the vCPU is kicked; the rest is single-stepped.
    static let margin: UInt64 = 8192

    let counter: PerformanceCounter
    let base: UInt64
    let watcher: Watcher

    /// Opens the counter on the calling thread, which must be the vCPU's thread.
    init(vcpu: VCPU) throws(KVMError) {
        counter = try PerformanceCounter.open(.instructions, excluding: [.host])
        base = try counter.read()
        watcher = Watcher(counter: CounterHandle(counter: counter), kicker: vcpu.kicker)
        watcher.start()
    }

    deinit { watcher.stop() }

    /// Guest instructions retired since the machine was created.
    func instructions() throws -> UInt64 {
        do { return try counter.read() &- base } catch { throw X86Error.kvm(error) }
    }

    /// A perf counter read from the watcher thread. `read(2)` on a perf event fd is safe from
    /// any thread, and the counter outlives the watcher (the clock stops it in deinit).
    final class CounterHandle: @unchecked Sendable {
        let counter: PerformanceCounter
        init(counter: PerformanceCounter) { self.counter = counter }
        func read() -> UInt64? { try? counter.read() }
    }

    /// The thread that kicks the vCPU once the raw count reaches `kickAt`.
    final class Watcher: Sendable {
        let counter: CounterHandle
        let kicker: VCPUKicker
        /// The raw count at which to kick; `UInt64.max` when disarmed.
        let kickAt = Atomic<UInt64>(.max)
        let running = Atomic<Bool>(true)

        init(counter: CounterHandle, kicker: VCPUKicker) {
            self.counter = counter
            self.kicker = kicker
        }

        func start() {
            let thread = Thread { [self] in
                while running.load(ordering: .acquiring) {
                    let at = kickAt.load(ordering: .acquiring)
                    if at != .max, let count = counter.read(), count >= at {
                        kickAt.store(.max, ordering: .releasing)
                        kicker.kick()
                    }
                    usleep(at == .max ? 1000 : 20)
                }
            }
            thread.name = "lockstep-pmu-watcher"
            thread.start()
        }

        func stop() { running.store(false, ordering: .releasing) }
        func arm(at raw: UInt64) { kickAt.store(raw, ordering: .releasing) }
        func disarm() { kickAt.store(.max, ordering: .releasing) }
    }
}

extension X86Machine {
    /// Runs until the guest has retired exactly `target` instructions (`pmu` clock).
    func runCountingInstructions(until target: UInt64) throws -> MachineStop {
        guard let pmu = performanceCounterClock else {
            preconditionFailure("the pmu epoch clock runs without its counter")
        }
        defer { pmu.watcher.disarm() }
        while true {
            let done = try pmu.instructions()
            counter.value = done
            if done >= target {
                guard done == target else { throw X86Error.performanceCounterOvershoot(by: done - target) }
                return .epochEnd
            }
            let stepping = target - done <= PerformanceCounterClock.margin
            do {
                if stepping, vcpu.guestDebug != .singleStep {
                    try vcpu.setGuestDebug(.singleStep)
                    noteStepStart()
                } else if !stepping, vcpu.guestDebug != .disabled {
                    try vcpu.setGuestDebug(.disabled)
                }
            } catch { throw X86Error.kvm(error) }
            if !stepping { pmu.watcher.arm(at: pmu.base &+ target - PerformanceCounterClock.margin) }
            let exit = try enterGuest()
            pmu.watcher.disarm()
            counter.value = try pmu.instructions()
            guard exit.isDeterministic else { continue }
            if case .debug(let debug) = exit, debug.isSingleStep {
                // The last instructions of the epoch are stepped: a HLT among them must still
                // idle or exit (see steppedHalt).
                if let stop = try steppedHalt(to: debug.pc) { return stop }
                continue
            }
            stepStart = nil
            if case .stop(let stop) = try handle(exit) { return stop }
            if stepping { noteStepStart() }
        }
    }
}
