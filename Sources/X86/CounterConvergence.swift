/// How a counter-driven epoch clock reaches the exact end of an epoch: a state machine that is
/// told where the vCPU stopped and answers how to run it next (the machine performs the runs).
///
/// The design is rr's (O'Callahan et al., "Engineering Record and Replay for Deployability",
/// USENIX ATC 2017, and rr's PerfCounters.cc): a counter's overflow interrupt arrives late by a
/// "skid", so it is programmed `skid + 1` units before the target, which leaves the vCPU short of
/// the target however late the overflow comes (up to the skid); the rest is covered one
/// instruction at a time with single-steps, checking the count after each. Where the host can
/// also run the vCPU for a bounded number of units (on the PVM host, a run with an interrupt
/// window stops within one emulation batch), that covers the distance down to the bound first.
///
/// The epoch ends at the first *precise* stop whose count reaches the target: a single-step exit
/// or an exit to user space (port I/O, MMIO, HLT...), which every replica reaches however it got
/// there. Stops after an overflow, a kick or a bounded run are at nondeterministic places, so
/// they never end an epoch; one at or past the target is an overshoot, reported, never accepted.
///
/// State diagram (per epoch):
///
///     start --(count < target)--> choose: bounded run | free run (overflow armed) | step
///     any stop --(count < target)--> choose again
///     step that reaches the target (precise) --> end
///     exit during a free or bounded run at exactly the target, counter counts every
///       instruction --> end
///     anything else at or past the target --> overshoot
struct CounterConvergence: Hashable, Sendable {
    /// What the counter offers.
    struct Capabilities: Hashable, Sendable {
        /// How late the overflow may arrive, in units; nil when there is no overflow (the
        /// single-step clock).
        var overflowSkid: UInt64?
        /// The most units a bounded run can execute; nil when the host offers none.
        var boundedRun: UInt64?
        /// Whether every instruction moves the count (an instruction counter), so a precise stop
        /// with the target's count is the target point. A branch counter stays on a count across
        /// the instructions between branches: only the step that reaches the count marks the
        /// point.
        var countsEveryInstruction: Bool
        /// The most a single-step can advance the count (more than 1 where one step can retire
        /// two instructions, as an IRETQ and the next one on the PVM host), so that a run of
        /// steps need not read the counter after each one while it cannot have reached the
        /// target.
        var maximumPerStep: UInt64 = 1
    }

    /// How the vCPU was last run.
    typealias Run = CounterRun

    /// How the last run ended.
    enum Stop: Hashable, Sendable {
        /// A single-step exit or an exit to user space: an instruction boundary every replica
        /// reaches the same way.
        case precise
        /// The overflow, a kick, the end of a bounded run: a nondeterministic place.
        case imprecise
    }

    /// What to do next.
    enum Action: Hashable, Sendable {
        /// Run free with the overflow armed at this count.
        case runFree(armAt: UInt64)
        /// Run for at most `Capabilities.boundedRun` units.
        case runBounded
        /// Execute one instruction.
        case step
        /// The epoch ends here.
        case end
        /// The vCPU went past the point where the epoch had to end; it reached this count.
        case overshoot(reached: UInt64)
    }

    /// The count at which the epoch ends.
    let target: UInt64
    let capabilities: Capabilities
    /// The last run, or nil at the start of the epoch.
    private(set) var lastRun: Run?

    init(target: UInt64, capabilities: Capabilities) {
        self.target = target
        self.capabilities = capabilities
    }

    /// The vCPU stopped (`stop`) with the counter at `count`; `boundedRunPossible` says whether a
    /// bounded run would stop in time (on the PVM host: interrupts are enabled, so the interrupt
    /// window opens). Returns what to do, and remembers the run it asks for.
    mutating func next(count: UInt64, stop: Stop, boundedRunPossible: Bool) -> Action {
        if count >= target {
            return reached(count: count, stop: stop)
        }
        let remaining = target - count
        let action: Action
        if boundedRunPossible, let bound = capabilities.boundedRun, remaining > bound {
            action = .runBounded
            lastRun = .bounded
        } else if let skid = capabilities.overflowSkid, remaining > skid &+ 1 {
            let armAt = target - skid - 1
            action = .runFree(armAt: armAt)
            lastRun = .free(armedAt: armAt)
        } else {
            action = .step
            lastRun = .step
        }
        return action
    }

    /// The count reached the target: the end, or an overshoot.
    private func reached(count: UInt64, stop: Stop) -> Action {
        switch (lastRun, stop) {
        case (nil, _):
            // Nothing ran yet: the epoch is empty (a budget of zero).
            return count == target ? .end : .overshoot(reached: count)
        case (.step, .precise):
            // The step that reached the target. A step can retire more than one count (on the
            // PVM host an IRETQ and the instruction after it are one step): it still ends at the
            // first precise stop at or after the target, where every replica's stepping ends.
            return .end
        case (.free, .precise), (.bounded, .precise):
            return count == target && capabilities.countsEveryInstruction ? .end : .overshoot(reached: count)
        case (_, .imprecise):
            return .overshoot(reached: count)
        }
    }
}

/// How a counter-driven clock ran the vCPU (the last run before an overshoot is part of its
/// error).
public enum CounterRun: Hashable, Sendable, CustomStringConvertible {
    /// Free, with the overflow armed at this count.
    case free(armedAt: UInt64)
    /// Free, for at most the counter's bounded-run length.
    case bounded
    /// One instruction (a single-step, or a HLT run unstepped).
    case step

    public var description: String {
        switch self {
        case .free(let armedAt): "a free run with the overflow armed at \(armedAt)"
        case .bounded: "a bounded run (interrupt window)"
        case .step: "a single-step"
        }
    }
}
