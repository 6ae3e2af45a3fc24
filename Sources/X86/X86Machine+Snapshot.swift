import Devices
import Foundation
import KVM
import MachineCore

/// Snapshots of the KVM engine: the vCPU state KVM holds (`VCPUSnapshot`), the engine's own
/// boundary fields, and the devices' `State`s; dirty pages from KVM's dirty log.
extension X86Machine {
    /// The engine's part of a snapshot's processor record (JSON).
    struct ProcessorRecord: Codable {
        /// Everything KVM holds for the vCPU.
        var vcpu: VCPUSnapshot
        /// The RDRAND/RDSEED generator.
        var random: UInt64
        /// The vCPU stopped at an injection point (an interrupt may be injected at the next
        /// entry; `X86Machine.atInjectionPoint`).
        var atDeterministicExit: Bool
        /// Whether the vCPU could take an interrupt at the boundary (see
        /// `interruptWindowAtBoundary`).
        var interruptWindow: Bool
        /// Counter-driven clocks: where the next step starts, when known.
        var stepStart: UInt64?
    }

    /// The most MSRs a snapshot may carry (KVM's index list has about 40 here).
    static let maximumSnapshotMSRs = 1024

    /// The tracker of `memory`, whose guest writes come from KVM's dirty log of slot 0
    /// (`KVM_GET_DIRTY_LOG` resets it, so this tracker is its only reader).
    static func dirtyPageTracker(memory: GuestMemory, vm: VirtualMachine) -> DirtyPageTracker {
        DirtyPageTracker(memory: memory) { pages in
            let log: DirtyBitmap
            do throws(KVMError) { log = try vm.dirtyLog(slot: 0) } catch { throw X86Error.kvm(error) }
            pages.formUnion(words: log.words)
        }
    }

    public func captureState() throws -> MachineState {
        guard finalStop == nil else { throw SnapshotError.unsupported("the guest has stopped") }
        guard epochClock != .performanceCounter else {
            throw SnapshotError.unsupported("the pmu epoch clock's counter cannot be carried to another machine (use exits, single-step or emulation-counter)")
        }
        // (A HLT that completed as a single step left KVM state no ioctl reads or writes: KVM
        // returned from the next interrupt to the HLT itself. The counter-driven clocks never
        // single-step a HLT, so every idle boundary is a HLT exit, which a snapshot carries.)
        try completeLastExit()
        // `run` applies every deferred write before it returns, and completing the exit runs no
        // guest code, so KVM's ring is empty too.
        precondition(deferredWrites.pending.isEmpty, "a deferred write is pending at a boundary")
        let window = interruptWindowAtBoundary ?? vcpu.canInjectInterrupt
        let vcpuState: VCPUSnapshot
        do { vcpuState = try vcpu.snapshot() } catch { throw X86Error.kvm(error) }
        let record = ProcessorRecord(vcpu: vcpuState, random: random.state,
                                     atDeterministicExit: atInjectionPoint, interruptWindow: window,
                                     stepStart: stepStart)
        let clockState = clock.state
        let deviceStates = devices.encodedStates()
        // From the registers and device states just read: KVM is not asked again, nor the
        // devices encoded twice.
        let digest = stateDigest(ram: try memoryDigest.digest(), registers: vcpuState.registers,
                                 sregs: vcpuState.specialRegisters, devices: deviceStates)
        return MachineState(
            architecture: architecture, epochClock: epochClock, progress: progress,
            clockBaseTime: clockState.baseTime, clockBaseProgress: clockState.baseProgress,
            processor: DeviceState.encoding(record),
            devices: deviceStates.map { DeviceState(name: $0.0, bytes: $0.1) },
            digest: digest)
    }

    /// KVM finishes an IN, MMIO read or MSR read (stores the value, advances RIP) only when the
    /// vCPU is entered again: this enters it with `immediate_exit` set, which completes the exit
    /// without running guest code. The entry rewrites `kvm_run`'s interrupt window, so the
    /// boundary's is kept for the next entry (`interruptWindowAtBoundary`).
    func completeLastExit() throws {
        interruptWindowAtBoundary = interruptWindowAtBoundary ?? vcpu.canInjectInterrupt
        vcpu.immediateExit = true
        let exit: VCPUExit
        do { exit = try vcpu.run() } catch { throw X86Error.kvm(error) }
        guard case .interrupted = exit else {
            throw SnapshotError.unsupported("KVM ran the guest (\(exit)) when asked to complete the last exit only")
        }
    }

    public func restoreState(_ state: MachineState) throws {
        guard state.architecture == architecture, state.epochClock == epochClock else {
            throw SnapshotError.foreign("it is of an \(state.architecture) machine with the \(state.epochClock) clock, this one has the \(epochClock) clock")
        }
        try state.checkDevices(are: Set(devices.encodedStates().map(\.0)))
        // Decode and check everything before changing anything.
        let record = try DeviceState.decode(ProcessorRecord.self, from: state.processor, what: "x86 vCPU")
        if let xsave = record.vcpu.xsave, xsave.bytes.count != vcpu.xsaveSize {
            throw SnapshotError.foreign("its XSAVE area has \(xsave.bytes.count) bytes, this host's KVM uses \(vcpu.xsaveSize)")
        }
        guard record.vcpu.msrs.count <= Self.maximumSnapshotMSRs else {
            throw SnapshotError.malformed("\(record.vcpu.msrs.count) MSRs (at most \(Self.maximumSnapshotMSRs))")
        }
        let picState = try DeviceState.decode(PIC8259Pair.State.self, from: try state.device("pic"), what: "8259")
        let uartState = try DeviceState.decode(UART16550.State.self, from: try state.device("uart"), what: "UART")
        let pitState = try DeviceState.decode(PIT8254.State.self, from: try state.device("pit"), what: "8254")
        let exitState = try DeviceState.decode(DebugExit.State.self, from: try state.device("debug-exit"),
                                               what: "debug-exit")
        var virtioState: VirtioMMIOBlock.State?
        if devices.virtio != nil {
            virtioState = try DeviceState.decode(VirtioMMIOBlock.State.self, from: try state.device("virtio-blk"),
                                                 what: "virtio block")
        }

        // A machine that has run (a rollback) may hold an exit KVM has not completed (an IN or
        // MMIO read): completing it on the next entry would write the old value into the
        // restored registers and move RIP on. Complete it first, into the state about to be
        // replaced. (After a shutdown the entry may fail: there is nothing to complete then.)
        if progress > 0 { try? completeLastExit() }
        let refused: [UInt32]
        do {
            refused = try vcpu.restore(record.vcpu)
        } catch { throw X86Error.kvm(error) }
        if !refused.isEmpty {
            logger.debug("x86 restore: KVM refused MSRs \(refused.map { hex(UInt64($0)) })")
        }
        counter.value = state.progress
        clock.restore(baseTime: state.clockBaseTime, baseProgress: state.clockBaseProgress)
        random.state = record.random
        atInjectionPoint = record.atDeterministicExit
        interruptWindowAtBoundary = record.interruptWindow
        stepStart = record.stepStart
        stepTranslation = nil
        // A counter-driven clock counts on from the restored progress (this vCPU's counter
        // started from its own zero).
        do { try counterClock?.rebase(progress: state.progress) } catch { throw X86Error.kvm(error) }
        devices.pic.restore(picState)
        devices.uart.restore(uartState)
        devices.pit.restore(pitState)
        devices.debugExit.restore(exitState)
        if let virtioState { devices.virtio?.restore(virtioState) }
        // A machine whose guest had stopped runs again from the restored state (a rollback).
        finalStop = nil
        let digest = try stateDigest()
        guard digest == state.digest else {
            throw SnapshotError.digestMismatch(what: "machine state", expected: state.digest, actual: digest)
        }
    }
}
