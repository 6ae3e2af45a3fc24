import KVM
import MachineCore

extension X86Machine {
    /// Runs until the counter has advanced to `target` units past the machine's start (the
    /// counter-driven clocks: single-step, emulation-counter, pmu), or the guest stops.
    ///
    /// `CounterConvergence` decides each run; this performs it and reports how it ended. Two
    /// rules keep every replica on the same instruction stream whichever runs it used:
    /// - Interrupts are injected only at exits to user space and at epoch boundaries, never at
    ///   a single-step exit inside an epoch (replicas step over different stretches).
    /// - A HLT is never single-stepped: on the PVM host KVM completes a stepped HLT as a no-op
    ///   but leaves the vCPU halted, and reports a HLT exit later (after the next IRETQ), which
    ///   a replica that ran into the HLT unstepped never sees. The HLT is run unstepped, which
    ///   exits at once, exactly as in a free run.
    func runCounting(until target: UInt64) throws -> MachineStop {
        guard let clock = counterClock else {
            preconditionFailure("a counter-driven epoch clock runs without its counter")
        }
        let source = clock.source
        let capabilities = clock.capabilities
        let end = clock.base &+ target
        var convergence = CounterConvergence(target: end, capabilities: capabilities)
        var count = try kvm { try source.count() }
        var stop = CounterConvergence.Stop.precise
        while true {
            counter.value = count &- clock.base
            var exit: VCPUExit
            switch convergence.next(count: count, stop: stop, boundedRunPossible: try boundedRunPossible()) {
            case .end:
                // The boundary is an injection point like an exit (see above).
                atInjectionPoint = true
                return .epochEnd
            case .overshoot(let reached):
                throw X86Error.counterOvershoot(epochClock, target: target, reached: reached &- clock.base,
                                                after: convergence.lastRun)
            case .runFree(let armAt):
                try setDebug(.disabled)
                try kvm { try source.armOverflow(at: armAt) }
                statistics.freeRuns += 1
                // Where bounded runs exist, the free run is one too as soon as interrupts are
                // enabled again (it runs free because they were disabled): the kick then matters
                // only while they stay disabled.
                let window = capabilities.boundedRun != nil
                vcpu.requestInterruptWindow = window
                defer { vcpu.requestInterruptWindow = false }
                exit = try enterGuest()
                try kvm { try source.disarmOverflow() }
                if exit == .interrupted {
                    statistics.overflows += 1
                    let reached = try kvm { try source.count() }
                    statistics.overflowSkids.record(reached > armAt ? reached - armAt : 0)
                }
            case .runBounded:
                try setDebug(.disabled)
                statistics.boundedRuns += 1
                vcpu.requestInterruptWindow = true
                defer { vcpu.requestInterruptWindow = false }
                exit = try enterGuest()
            case .step:
                // While `steps` single-steps cannot have reached the target (each advances the
                // count by at most `maximumPerStep`), step on without reading the counter.
                var steps: UInt64 = 0
                while true {
                    exit = try stepOnce()
                    if vcpu.guestDebug == .disabled, exit != .hlt, exit != .interrupted {
                        // A HLT ran unstepped and something else stopped it: where is unknown.
                        throw X86Error.counterOvershoot(epochClock, target: target,
                                                        reached: try kvm { try clock.progress() }, after: .step)
                    }
                    guard case .debug(let debug) = exit, debug.isSingleStep else { break }
                    source.noteDeterministicExit()
                    statistics.steps += 1
                    stepStart = debug.pc
                    steps += 1
                    guard steps < 64, count &+ (steps + 1) * capabilities.maximumPerStep < end else { break }
                }
            }
            let before = count
            guard exit.isDeterministic else {
                stop = .imprecise
                stepStart = nil
                stepTranslation = nil
                count = try kvm { try source.count() }
                if convergence.lastRun == .bounded {
                    statistics.largestBoundedRun = max(statistics.largestBoundedRun, count &- before)
                }
                if source.countsOnlyInterpretedCode { try requireCPL0() }
                continue
            }
            stop = .precise
            if case .debug(let debug) = exit, debug.isSingleStep {
                // Counted (and stepStart set) in the stepping loop above.
                count = try kvm { try source.count() }
                continue
            }
            source.noteDeterministicExit()
            stepStart = nil
            stepTranslation = nil
            count = try kvm { try source.count() }
            if convergence.lastRun == .bounded {
                statistics.largestBoundedRun = max(statistics.largestBoundedRun, count &- before)
            }
            // An exit's virtual time (the TSC it may read) is that of the exiting instruction.
            counter.value = count &- clock.base
            if source.countsOnlyInterpretedCode { try requireCPL0() }
            // A deferred write's exit is a precise stop, but not handled here (and not an
            // injection point): the write waits for the next exit or the boundary.
            if deferIfDeferredWrite(exit) { continue }
            applyDeferredWrites()
            if case .stop(let machineStop) = try handle(exit) {
                return machineStop
            }
        }
    }

    /// Executes one instruction: a single-step, or, for a HLT that no interrupt injection will
    /// precede, an unstepped run that the HLT ends at once (see `runCounting`).
    func stepOnce() throws -> VCPUExit {
        let start: UInt64
        if let stepStart {
            start = stepStart
        } else {
            start = try linearRIP()
            stepStart = start
        }
        let injecting = willInjectInterrupt
        // The page tables as of the last stop that was not a step (re-read only to confirm a HLT).
        let translation: AddressTranslation
        if let stepTranslation {
            translation = stepTranslation
        } else {
            translation = AddressTranslation(try kvm { try vcpu.specialRegisters() }, memory: memory)
            stepTranslation = translation
        }
        guard !injecting, translation.read(at: start, count: 1) == [0xF4],
              try readGuestLinear(at: start, count: 1) == [0xF4]
        else {
            try setDebug(.singleStep)
            return try enterGuest()
        }
        try setDebug(.disabled)
        return try enterGuest()
    }

    /// Whether a bounded run (an interrupt window) would stop within its bound: interrupts are
    /// enabled and none is about to be injected (a handler runs with interrupts disabled, and
    /// KVM opens the window only at an emulation-batch boundary where they are enabled).
    func boundedRunPossible() throws -> Bool {
        guard counterClock?.capabilities.boundedRun != nil else { return false }
        let interruptsEnabled: Bool
        if vcpu.lastExit == nil {
            interruptsEnabled = try kvm { try vcpu.registers() }.rflags & 0x200 != 0
        } else {
            interruptsEnabled = vcpu.interruptFlag
        }
        let injecting = willInjectInterrupt
        return interruptsEnabled && !injecting
    }

    /// Sets the guest-debug configuration unless it is already set.
    func setDebug(_ debug: GuestDebug) throws {
        guard vcpu.guestDebug != debug else { return }
        try kvm { try vcpu.setGuestDebug(debug) }
    }

    /// The linear address of the next instruction (CS base + RIP).
    func linearRIP() throws -> UInt64 {
        let registers = try kvm { try vcpu.registers() }
        let special = try kvm { try vcpu.specialRegisters() }
        return special.cs.base &+ registers.rip
    }

    /// Stops with one line if the guest runs at CPL3, where the clock's counter does not count
    /// (KVM runs CPL3 code natively on the PVM host: no `insn_emulation`, no single-step).
    func requireCPL0() throws {
        let special = try kvm { try vcpu.specialRegisters() }
        if special.cs.dpl == 3 || special.cs.selector & 3 == 3 {
            throw X86Error.needsCPL0(epochClock, rip: (try? vcpu.registers().rip) ?? 0)
        }
    }

    /// Runs KVM calls, wrapping a `KVMError` as a running machine's `X86Error.kvm`.
    func kvm<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as KVMError { throw X86Error.kvm(error) }
    }
}
