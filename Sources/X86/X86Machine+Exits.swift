import KVM
import MachineCore

/// How an exit leaves the run loop.
enum ExitOutcome: Equatable {
    /// Keep running.
    case proceed
    /// Stop the machine with this result.
    case stop(MachineStop)
}

extension VCPUExit {
    /// Whether this exit happens at a point that depends only on the guest's instruction stream
    /// (so it is counted as progress and may carry an interrupt injection). Kicks and interrupt
    /// windows are not.
    var isDeterministic: Bool {
        switch self {
        case .interrupted, .irqWindowOpen: false
        case .unknown, .exception, .ioIn, .ioOut, .hypercall, .debug, .hlt, .mmioRead, .mmioWrite,
             .shutdown, .failEntry, .setTPR, .tprAccess, .nmi, .internalError, .systemEvent,
             .ioapicEOI, .rdmsr, .wrmsr, .dirtyRingFull, .apResetHold, .busLock, .notify,
             .unsupported:
            true
        }
    }
}

extension X86Machine {
    // MARK: - Entering the guest

    /// Injects a pending 8259 interrupt if the vCPU stopped at an injection point (an exit to
    /// user space or an epoch boundary, never a single-step exit inside an epoch) and accepts
    /// one now, then runs the vCPU to its next exit.
    func enterGuest() throws -> VCPUExit {
        let injecting = willInjectInterrupt
        interruptWindowAtBoundary = nil
        if injecting, let vector = devices.pic.acknowledge() {
            do { try vcpu.interrupt(vector: vector) } catch { throw X86Error.kvm(error) }
            statistics.interruptsInjected += 1
        }
        let exit: VCPUExit
        do { exit = try vcpu.run() } catch { throw X86Error.kvm(error) }
        statistics.runs += 1
        if case .debug = exit {
            atInjectionPoint = false
        } else {
            // A deferred write's exit is not one every replica makes (its host may buffer it).
            atInjectionPoint = exit.isDeterministic && deferredWrites.write(in: exit) == nil
        }
        if !exit.isDeterministic { statistics.interrupted += 1 }
        return exit
    }

    /// Whether the next `enterGuest` injects an interrupt: at an injection point, with one
    /// pending at the 8259, where the vCPU accepts one (at a restored or captured boundary, as it
    /// did there: `interruptWindowAtBoundary`).
    var willInjectInterrupt: Bool {
        atInjectionPoint && devices.pic.pendingInterrupt && (interruptWindowAtBoundary ?? vcpu.canInjectInterrupt)
    }

    // MARK: - The exits epoch clock

    /// Runs until `target` deterministic exits have been counted, or the guest stops.
    func runCountingExits(until target: UInt64) throws -> MachineStop {
        while true {
            let exit = try enterGuest()
            guard exit.isDeterministic, !deferIfDeferredWrite(exit) else { continue }
            counter.value += 1
            applyDeferredWrites()
            if case .stop(let stop) = try handle(exit) { return stop }
            if counter.value >= target { return .epochEnd }
        }
    }

    // MARK: - Exit handling

    /// Handles one deterministic exit (already counted).
    func handle(_ exit: VCPUExit) throws -> ExitOutcome {
        switch exit {
        case .ioOut(let port, let size, let count, let data):
            statistics.portIO += 1
            if port == X86Platform.trapPort, size == 1, count == 1,
               let rip = try? vcpu.registers().rip, let match = patchSites.site(trappedAt: rip)
            {
                try simulate(match.site, resumingAt: match.next)
                return .proceed
            }
            writePort(port, size: size, count: count, data: data)
            if let status = devices.debugExit.guestStatus {
                return .stop(.exited(status: status))
            }
            return .proceed
        case .ioIn(let port, let size, let count):
            statistics.portIO += 1
            var bytes: [UInt8] = []
            for _ in 0..<count {
                let value = devices.ports.read(UInt64(port), size: size, cpuOrder: .little)
                    ?? unknownRead(bus: devices.ports.name, address: UInt64(port), size: size)
                bytes += littleEndianBytes(value).prefix(size)
            }
            vcpu.completeIOIn(bytes)
            return .proceed
        case .mmioRead(let address, let size):
            statistics.mmio += 1
            let value = devices.mmio.read(address, size: size, cpuOrder: .little)
                ?? unknownRead(bus: devices.mmio.name, address: address, size: size)
            vcpu.completeMMIORead(value: value)
            return .proceed
        case .mmioWrite(let address, let data):
            statistics.mmio += 1
            writeMMIO(address, data: data)
            return .proceed
        case .hlt:
            statistics.halts += 1
            if !vcpu.interruptFlag { return .stop(.exited(status: 0)) }
            return devices.pic.pendingInterrupt ? .proceed : .stop(.idle)
        case .rdmsr(let index, _):
            statistics.msrAccesses += 1
            if index == X86Platform.tscMSR {
                vcpu.completeRDMSR(value: try environmentValue(.timestampCounter, proposed: virtualTSC))
            } else {
                vcpu.failMSRAccess()
            }
            return .proceed
        case .wrmsr(let index, let value, _):
            statistics.msrAccesses += 1
            if index == X86Platform.tscMSR {
                if unknownAccesses.record(bus: "msr-write", address: UInt64(index)) {
                    logger.notice("x86: the guest wrote \(hex(value)) to IA32_TIME_STAMP_COUNTER; the virtual TSC cannot be set, the write is ignored (logged once)")
                }
            } else {
                vcpu.failMSRAccess()
            }
            return .proceed
        case .debug:
            statistics.steps += 1
            return .proceed
        case .shutdown:
            return .stop(.crashed(reason: "triple fault at RIP \(currentRIP)"))
        case .internalError(let kind, let data):
            return .stop(.crashed(reason: internalErrorReason(kind, data)))
        case .failEntry(let reason, _):
            return .stop(.crashed(reason: "KVM could not enter the guest at RIP \(currentRIP) (hardware entry failure reason \(hex(reason)))"))
        case .exception(let vector, let errorCode):
            return .stop(.crashed(reason: "exception \(vector) (error code \(hex(UInt64(errorCode)))) at RIP \(currentRIP) reached KVM's user space"))
        case .systemEvent(let type, _):
            switch type {
            case .shutdown: return .stop(.exited(status: 0))
            case .reset: return .stop(.crashed(reason: "the guest asked for a reset at RIP \(currentRIP)"))
            case .crash, .wakeup, .suspend, .sevTerminate, .unsupported:
                return .stop(.crashed(reason: "unsupported KVM system event \(type) at RIP \(currentRIP)"))
            }
        case .hypercall(let number, _, _):
            return .stop(.crashed(reason: "the guest made hypercall \(number) at RIP \(currentRIP); Lockstep offers none"))
        case .unknown(let reason):
            return .stop(.crashed(reason: "KVM exit with unknown hardware reason \(hex(reason)) at RIP \(currentRIP)"))
        case .setTPR, .tprAccess, .nmi, .ioapicEOI, .dirtyRingFull, .apResetHold, .busLock, .notify,
             .unsupported:
            return .stop(.crashed(reason: "unsupported KVM exit \(exit) at RIP \(currentRIP)"))
        case .interrupted, .irqWindowOpen:
            return .proceed
        }
    }

    /// An OUT of `count` items of `size` bytes to `port`.
    func writePort(_ port: UInt16, size: Int, count: Int, data: [UInt8]) {
        for item in 0..<count {
            let value = littleEndianValue(data, offset: item * size, size: size)
            if !devices.ports.write(UInt64(port), size: size, value: value, cpuOrder: .little) {
                noteUnknown(bus: devices.ports.name, address: UInt64(port), write: true)
            }
        }
    }

    /// An MMIO write of `data` (1, 2, 4 or 8 bytes reach a device) at `address`.
    func writeMMIO(_ address: UInt64, data: [UInt8]) {
        let size = data.count
        if [1, 2, 4, 8].contains(size) {
            let value = littleEndianValue(data, offset: 0, size: size)
            if !devices.mmio.write(address, size: size, value: value, cpuOrder: .little) {
                noteUnknown(bus: devices.mmio.name, address: address, write: true)
            }
        } else if unknownAccesses.record(bus: devices.mmio.name, address: address) {
            logger.warning("x86: the guest wrote \(size) bytes at once to \(devices.mmio.name) \(hex(address)); only 1, 2, 4 or 8-byte accesses reach a device, so it is ignored (logged once per address)")
        }
    }

    /// The virtual TSC: virtual nanoseconds (1 GHz).
    var virtualTSC: UInt64 { clock.now.nanoseconds }

    /// Asks the environment for the value of an environment read. Its error (at a backup:
    /// divergence from the primary's log) propagates unchanged, as `Machine` requires.
    func environmentValue(_ read: EnvironmentRead, proposed: UInt64) throws(EnvironmentError) -> UInt64 {
        try environment.environmentValue(read, proposed: proposed)
    }

    /// A read from an address no device claims: all ones, logged the first time.
    func unknownRead(bus: String, address: UInt64, size: Int) -> UInt64 {
        noteUnknown(bus: bus, address: address, write: false)
        return allOnes(size)
    }

    func noteUnknown(bus: String, address: UInt64, write: Bool) {
        if unknownAccesses.record(bus: bus, address: address) {
            logger.warning("x86: the guest \(write ? "wrote to" : "read from") \(bus) \(hex(address)), where there is no device; reads return all ones, writes are ignored (logged once per address)")
        }
    }

    var currentRIP: String {
        guard let rip = try? vcpu.registers().rip else { return "(unknown)" }
        return hex(rip)
    }

    /// One line for an internal-error exit. For emulation failures the instruction bytes come
    /// from the exit (`KVM_CAP_EXIT_ON_EMULATION_FAILURE`) or else from guest memory at RIP.
    func internalErrorReason(_ kind: InternalErrorKind, _ data: [UInt64]) -> String {
        switch kind {
        case .emulation:
            var bytes: [UInt8] = []
            if data.count >= 3, data[0] & 1 != 0 {
                let raw = littleEndianBytes(data[1]) + littleEndianBytes(data[2])
                bytes = Array(raw[1..<(1 + min(Int(raw[0]), 15))])
            } else if let rip = try? vcpu.registers().rip {
                bytes = (try? readGuestCode(at: rip, count: 15)) ?? []
            }
            let shown = bytes.isEmpty ? "unreadable" : bytes.map { hexByte($0) }.joined(separator: " ")
            return "KVM cannot emulate the instruction at RIP \(currentRIP) (bytes \(shown))"
        case .simultaneousException:
            return "an exception while delivering an exception at RIP \(currentRIP) (KVM internal error)"
        case .deliveryEvent:
            return "KVM could not deliver an event at RIP \(currentRIP) (internal error, data \(data.map { hex($0) }))"
        case .unexpectedExitReason:
            return "KVM met an unexpected exit reason at RIP \(currentRIP) (internal error)"
        case .unsupported(let raw):
            return "KVM internal error \(raw) at RIP \(currentRIP)"
        }
    }
}

/// The `size`-byte little-endian integer at `offset` in `bytes` (missing bytes read as zero).
func littleEndianValue(_ bytes: [UInt8], offset: Int, size: Int) -> UInt64 {
    var value: UInt64 = 0
    for i in 0..<min(size, 8) where offset + i < bytes.count {
        value |= UInt64(bytes[offset + i]) << (8 * UInt64(i))
    }
    return value
}

func hexByte(_ byte: UInt8) -> String {
    (byte < 16 ? "0" : "") + String(byte, radix: 16)
}
