import Devices
import MachineCore

/// Snapshots of the emulator: the CPU as a flat binary record, the devices as their `State`s.
extension PARISCMachine {
    /// The device names of this machine's states, in capture order.
    var snapshotDeviceNames: Set<String> {
        virtio == nil ? ["lasi", "uart", "debug-exit"] : ["lasi", "uart", "debug-exit", "virtio"]
    }

    public func captureState() throws -> MachineState {
        guard cpu.requestedStop == nil, debugExit.guestStatus == nil else {
            throw SnapshotError.unsupported("the guest has stopped")
        }
        var devices = [
            DeviceState(name: "lasi", bytes: DeviceState.encoding(lasi.state)),
            DeviceState(name: "uart", bytes: DeviceState.encoding(uart.state)),
            DeviceState(name: "debug-exit", bytes: DeviceState.encoding(debugExit.state)),
        ]
        if let virtio { devices.append(DeviceState(name: "virtio", bytes: DeviceState.encoding(virtio.state))) }
        let clockState = cpu.clock.state
        return MachineState(
            architecture: architecture, epochClock: epochClock, progress: cpu.progress,
            clockBaseTime: clockState.baseTime, clockBaseProgress: clockState.baseProgress,
            processor: cpu.snapshotBytes(), devices: devices, digest: try stateDigest())
    }

    public func restoreState(_ state: MachineState) throws {
        guard state.architecture == architecture, state.epochClock == epochClock else {
            throw SnapshotError.foreign("it is of a \(state.architecture) machine with the \(state.epochClock) clock")
        }
        try state.checkDevices(are: snapshotDeviceNames)
        // Decode everything before changing anything.
        let processor = try PARISCCPU.SnapshotRecord(decoding: state.processor)
        let lasiState = try DeviceState.decode(LASIInterruptController.State.self,
                                               from: try state.device("lasi"), what: "LASI")
        let uartState = try DeviceState.decode(UART16550.State.self, from: try state.device("uart"), what: "UART")
        let exitState = try DeviceState.decode(DebugExit.State.self, from: try state.device("debug-exit"),
                                               what: "debug-exit")
        var virtioState: VirtioMMIOBlock.State?
        if virtio != nil {
            virtioState = try DeviceState.decode(VirtioMMIOBlock.State.self, from: try state.device("virtio"),
                                                 what: "virtio block")
        }
        processor.apply(to: cpu, progress: state.progress)
        cpu.clock.restore(baseTime: state.clockBaseTime, baseProgress: state.clockBaseProgress)
        lasi.restore(lasiState)
        uart.restore(uartState)
        debugExit.restore(exitState)
        if let virtioState { virtio?.restore(virtioState) }
        // Guest code in RAM (restored before this) may differ from what was translated.
        cpu.invalidateTranslations()
        let digest = try stateDigest()
        guard digest == state.digest else {
            throw SnapshotError.digestMismatch(what: "machine state", expected: state.digest, actual: digest)
        }
    }
}

extension PARISCCPU {
    /// The CPU's part of a snapshot: the architectural state, EIRR and the timer comparator's
    /// deadline. All values are legal except GR0 (always 0) and the word carry (0 or 1).
    struct SnapshotRecord {
        var state: PARISCCPUState
        var externalInterruptRequests: UInt32
        var timerDeadline: VirtualTime?

        /// Decodes hostile bytes (exactly the layout `snapshotBytes()` writes).
        init(decoding bytes: [UInt8]) throws(SnapshotError) {
            var r = ByteReader(bytes, what: "PA-RISC CPU state")
            var s = PARISCCPUState()
            for i in 0..<32 { s.registers[i] = try r.u32() }
            guard s.registers[0] == 0 else { throw .malformed("PA-RISC GR0 holds \(s.registers[0])") }
            for i in 0..<8 { s.spaceRegisters[i] = try r.u32() }
            for i in 0..<32 { s.controlRegisters[i] = try r.u32() }
            for i in 0..<7 { s.shadowRegisters[i] = try r.u32() }
            s.iaoqFront = try r.u32()
            s.iaoqBack = try r.u32()
            s.iasqFront = try r.u32()
            s.iasqBack = try r.u32()
            s.iiaoqBack = try r.u32()
            s.iiasqBack = try r.u32()
            s.pswOther = try r.u32()
            s.nullifyNext = try r.bool()
            s.divideStepV = try r.bool()
            s.carryVector = try r.u32()
            s.carryOut = try r.u32()
            guard s.carryOut <= 1 else { throw .malformed("PA-RISC carry out is \(s.carryOut)") }
            s.recoveryCounter = try r.u32()
            s.recoveryCounterBase = try r.u64()
            state = s
            externalInterruptRequests = try r.u32()
            timerDeadline = try r.bool() ? VirtualTime(nanoseconds: try r.u64()) : nil
            try r.finish()
        }

        func apply(to cpu: PARISCCPU, progress: UInt64) {
            cpu.state = state
            cpu.progress = progress
            cpu.externalInterruptRequests = externalInterruptRequests
            cpu.restoreTimer(deadline: timerDeadline)
            cpu.requestedStop = nil
        }
    }

    /// The CPU's snapshot record.
    func snapshotBytes() -> [UInt8] {
        var w = ByteWriter()
        let s = state
        for i in 0..<32 { w.u32(s.registers[i]) }
        for i in 0..<8 { w.u32(s.spaceRegisters[i]) }
        for i in 0..<32 { w.u32(s.controlRegisters[i]) }
        for i in 0..<7 { w.u32(s.shadowRegisters[i]) }
        for value in [s.iaoqFront, s.iaoqBack, s.iasqFront, s.iasqBack, s.iiaoqBack, s.iiasqBack, s.pswOther] {
            w.u32(value)
        }
        w.bool(s.nullifyNext)
        w.bool(s.divideStepV)
        w.u32(s.carryVector)
        w.u32(s.carryOut)
        w.u32(s.recoveryCounter)
        w.u64(s.recoveryCounterBase)
        w.u32(externalInterruptRequests)
        w.bool(timerDeadline != nil)
        if let timerDeadline { w.u64(timerDeadline.nanoseconds) }
        return w.bytes
    }
}
