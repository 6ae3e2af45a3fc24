import KVM
import MachineCore

extension X86Machine {
    /// Registers the deferred-write zones with KVM's coalesced MMIO/PIO ring where the host
    /// offers it; returns how many it took. A zone KVM does not take still defers its writes:
    /// they exit and are queued (`DeferredWrites`).
    static func registerCoalescedZones(_ zones: [DeferredWrites.Zone], vm: VirtualMachine) -> Int {
        let mmio = vm.checkExtension(.coalescedMMIO) > 0
        let pio = vm.checkExtension(.coalescedPIO) > 0
        var registered = 0
        for zone in zones where zone.isPIO ? pio : mmio {
            do {
                try vm.registerCoalescedMMIO(address: zone.address, size: zone.size, pio: zone.isPIO)
                registered += 1
            } catch {
                // The zone's writes exit instead: slower, the same guest-visible behaviour.
                continue
            }
        }
        return registered
    }

    /// If `exit` is a write to a deferred register (one KVM did not buffer), queues it after the
    /// writes KVM buffered before it and returns true: the caller neither counts nor handles it.
    func deferIfDeferredWrite(_ exit: VCPUExit) -> Bool {
        guard let write = deferredWrites.write(in: exit) else { return false }
        if write.isPIO { statistics.portIO += 1 } else { statistics.mmio += 1 }
        takeCoalescedWrites()
        deferredWrites.append([write])
        return true
    }

    /// Applies every deferred write, oldest first: at an exit to user space before it is
    /// handled, and at the end of every run (so a boundary never has one pending).
    func applyDeferredWrites() {
        takeCoalescedWrites()
        for write in deferredWrites.take() {
            statistics.deferredWrites += 1
            if write.isPIO {
                writePort(UInt16(truncatingIfNeeded: write.address), size: write.data.count, count: 1, data: write.data)
            } else {
                writeMMIO(write.address, data: write.data)
            }
        }
    }

    /// Moves the writes KVM buffered in its ring into the queue.
    private func takeCoalescedWrites() {
        guard coalescedZones > 0 else { return }
        let buffered = vcpu.drainCoalescedAccesses()
        guard !buffered.isEmpty else { return }
        statistics.coalescedWrites += UInt64(buffered.count)
        deferredWrites.append(buffered)
    }
}
