import Foundation
import KVM
import Synchronization
import Testing

@Suite("kicking a running vCPU", .serialized, .enabled(if: KVMHost.available, "needs a usable /dev/kvm"))
struct KickTests {
    /// 1: inc %bx; jmp 1b   (runs forever)
    static let spin: [UInt8] = [0x43, 0xEB, 0xFD]

    @Test("a kick from another thread makes a running KVM_RUN return .interrupted")
    func kickFromAnotherThread() throws {
        let guest = try RealModeGuest(code: Self.spin)
        let kicker = guest.vcpu.kicker
        let done = Atomic<Bool>(false)
        let kicks = Atomic<Int>(0)
        let thread = Thread {
            // Kick every 10 ms until the vCPU thread has been stopped inside the guest.
            while !done.load(ordering: .acquiring) {
                usleep(10_000)
                kicker.kick()
                kicks.add(1, ordering: .relaxed)
            }
        }
        thread.start()
        defer { done.store(true, ordering: .releasing) }
        var progress: UInt64 = 0
        var runs = 0
        // A kick that lands before KVM_RUN is entered returns at once without progress; retry
        // until one interrupts the guest mid-loop.
        while progress == 0 && runs < 50 {
            #expect(try guest.vcpu.run() == .interrupted)
            progress = try guest.vcpu.registers().rbx
            runs += 1
        }
        done.store(true, ordering: .releasing)
        #expect(progress > 0)
        print("KVMTests: stopped by a kick after \(progress) loop iterations (\(runs) runs, \(kicks.load(ordering: .relaxed)) kicks)")
        let rip = try guest.vcpu.registers().rip
        #expect(rip == UInt64(RealModeGuest.codeAddress) || rip == UInt64(RealModeGuest.codeAddress + 1))
        #expect(!guest.vcpu.immediateExit)
    }

    @Test("a kick while the vCPU is not running makes the next run return at once")
    func pendingKick() throws {
        let guest = try RealModeGuest(code: Self.spin)
        let before = try guest.vcpu.registers()
        guest.vcpu.kicker.kick()
        guest.vcpu.kicker.kick()  // kicks coalesce
        #expect(try guest.vcpu.run() == .interrupted)
        #expect(try guest.vcpu.registers() == before)
        #expect(guest.vcpu.lastExit == .interrupted)
    }
}
