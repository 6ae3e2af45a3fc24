import Foundation
import Loader
import MachineCore

/// Loading a kernel the way `qemu-system-hppa -kernel` and SeaBIOS-hppa hand it over.
extension PARISCMachine {
    /// Loads `image` and sets up the CPU as SeaBIOS-hppa calls a `-kernel` ELF:
    /// - PT_LOAD segments at physical = virtual & 0x0fffffff (QEMU's `cpu_hppa_to_phys`);
    /// - the command line (with Lockstep's announcements) at 0x4000, NUL-terminated;
    /// - a HALT word at 0x5ff0 as the return address;
    /// - entry at e_entry & 0x0fffffff, PL 0, real mode, PSW system mask Q = 1 (I = 0),
    ///   r26 = mem_free (0x6000), r25 = the command line, r24 = r23 = 0 (no initrd),
    ///   r2 = the HALT word; every other register, IVA and EIEM 0.
    func boot(_ image: ELFImage) throws(PARISCMachineError) {
        guard image.machine == .parisc, !image.is64Bit, image.byteOrder == .big else {
            throw .notPARISC(path: image.path,
                             reason: "it is a \(image.is64Bit ? "64" : "32")-bit "
                                + "\(image.byteOrder == .big ? "big" : "little")-endian \(image.machine) ELF")
        }
        for segment in image.segments where segment.memorySize > 0 {
            let physical = segment.virtualAddress & PARISCPlatform.physicalMask
            if physical < UInt64(PARISCPlatform.memFree) {
                throw .segmentInBootArea(path: image.path, address: physical)
            }
        }
        do {
            try image.load(into: memory) { $0.virtualAddress & PARISCPlatform.physicalMask }
        } catch {
            throw .image(error)
        }
        let entry = image.entry & PARISCPlatform.physicalMask
        guard memory.contains(GuestAddress(entry), count: 4) else {
            throw .entryOutsideRAM(path: image.path, entry: image.entry)
        }
        let commandLine = Array(configuration.effectiveCommandLine.utf8)
        guard commandLine.count < PARISCPlatform.commandLineCapacity else {
            throw .commandLineTooLong(commandLine.count)
        }
        do {
            try memory.write(commandLine + [0], at: GuestAddress(UInt64(PARISCPlatform.commandLineAddress)))
            try memory.store(0xFFFD_EAD0 as UInt32, at: GuestAddress(UInt64(PARISCPlatform.returnStub)),
                             order: .big)
        } catch {
            throw .memory(error)
        }
        var state = PARISCCPUState()
        state.iaoqFront = UInt32(entry)
        state.iaoqBack = UInt32(entry) &+ 4
        state.psw = PSW.q
        state[gr: 26] = PARISCPlatform.memFree
        state[gr: 25] = PARISCPlatform.commandLineAddress
        state[gr: 24] = 0
        state[gr: 23] = 0
        state[gr: 2] = PARISCPlatform.returnStub
        cpu.state = state
        cpu.invalidateTranslations()
    }

    /// A deterministic encoding of a device state for the state digest.
    static func encode<T: Encodable>(_ value: T) -> [UInt8] { DeviceState.encoding(value) }
}

extension PARISCCPU {
    /// The CPU's state as bytes for the machine's state digest: every register, both queues, the
    /// PSW, CR0 as the guest reads it, EIRR, the timer deadline, the progress count and the clock.
    func digestBytes() -> [UInt8] {
        var bytes: [UInt8] = []
        func put(_ value: UInt32) {
            bytes += [UInt8(value >> 24), UInt8(truncatingIfNeeded: value >> 16),
                      UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
        }
        func put64(_ value: UInt64) {
            put(UInt32(truncatingIfNeeded: value >> 32))
            put(UInt32(truncatingIfNeeded: value))
        }
        let s = state
        for i in 0..<32 { put(s[gr: i]) }
        for i in 0..<8 { put(s[sr: i]) }
        for i in 0..<32 { put(i == 0 ? recoveryCounter : s[cr: i]) }
        for i in 0..<7 { put(s[shadow: i]) }
        put(s.iaoqFront); put(s.iaoqBack); put(s.iasqFront); put(s.iasqBack)
        put(s.iiaoqBack); put(s.iiasqBack); put(s.psw)
        put(externalInterruptRequests)
        put64(timerDeadline?.nanoseconds ?? UInt64.max)
        put64(progress)
        put64(clock.state.baseTime.nanoseconds)
        put64(clock.state.baseProgress)
        return bytes
    }
}
