import ArgumentParser
import Foundation
import Hypervisor
import X86

/// `lockstep doctor`: what this host's KVM can do, each item probed with a tiny VM, what each
/// epoch clock costs here and which to choose.
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Probe this host's KVM and recommend an epoch clock: CPU, CPL0/CPL3 execution, single-step, breakpoints, counters (PMU, insn_emulation, kick-timer skid), dirty logging, what each epoch clock costs.",
        discussion: "The KVM device is $LOCKSTEP_KVM_DEVICE, else /dev/kvm. Takes about a second. Exits 68 if KVM cannot be used.")

    @Flag(name: .customLong("json"), help: "Print the report as JSON (the same items, machine-readable).")
    var json = false

    @OptionGroup var log: LogOptions

    func run() throws {
        let probe = DedicatedThread.run(name: "lockstep-doctor") { () -> Result<HostProbe, CLIFailure> in
            Result { () throws(X86Error) in try HostProbe.run() }.mapError { CLIFailure($0) }
        }
        let report = HostReport(try probe.get(), defaultEpochLength: \.defaultEpochLength)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let data: Data
            do { data = try encoder.encode(report) } catch {
                throw CLIFailure("cannot encode the report as JSON: \(error)", status: ExitStatus.internalError)
            }
            print(String(decoding: data, as: UTF8.self))
        } else {
            for line in report.lines { print(line) }
        }
    }
}
