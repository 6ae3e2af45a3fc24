import ArgumentParser
import Foundation
import Hypervisor
import X86

/// `lockstep doctor`: what this host's KVM can do, each item probed with a tiny VM.
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Probe this host's KVM: API version, CPL0/CPL3 execution, single-step, breakpoints, PMU, dirty logging, epoch clocks.",
        discussion: "The KVM device is $LOCKSTEP_KVM_DEVICE, else /dev/kvm. Exits 68 if it cannot be used.")

    @OptionGroup var log: LogOptions

    func run() throws {
        let probe = DedicatedThread.run(name: "lockstep-doctor") { () -> Result<HostProbe, CLIFailure> in
            Result { () throws(X86Error) in try HostProbe.run() }.mapError { CLIFailure($0) }
        }
        let report = try probe.get()
        print("lockstep doctor: what this host's KVM can do (each item probed)")
        for line in report.lines { print(line) }
    }
}
