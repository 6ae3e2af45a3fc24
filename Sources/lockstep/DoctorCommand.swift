import ArgumentParser
import Foundation
import Hypervisor
import X86

/// `lockstep doctor`: what this host's KVM can do, each item probed with a tiny VM.
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Probe this host's KVM: API version, CPL0/CPL3 execution, single-step, breakpoints, PMU, dirty logging, epoch clocks.",
        discussion: "The KVM device is $LOCKSTEP_KVM_DEVICE, else /dev/kvm. Exits 69 if it cannot be used.")

    func run() throws {
        let probe = DedicatedThread.run(name: "lockstep-doctor") { () -> Result<HostProbe, CLIFailure> in
            Result { () throws(X86Error) in try HostProbe.run() }.mapError { error in
                switch error {
                case .kvmUnavailable:
                    CLIFailure(error.description, status: ExitStatus.unavailable)
                case .kvm, .image, .memory, .layout, .disassembler, .epochClockUnavailable,
                     .singleStepAtCPL3, .performanceCounterOvershoot, .environment:
                    CLIFailure(error.description, status: ExitStatus.internalError)
                }
            }
        }
        let report = try probe.get()
        print("lockstep doctor: what this host's KVM can do (each item probed)")
        for line in report.lines { print(line) }
    }
}
