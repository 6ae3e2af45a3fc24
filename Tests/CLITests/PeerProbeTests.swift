@testable import Bench
import Foundation
import Testing

/// The QEMU peer probe (`scripts/qemu-run-guest --probe`, read by `PeerProbe`): its verdict on
/// the answers it can get, then real probes of the installed QEMU, including models that fail.
@Suite struct PeerProbeTests {
    static let script = Lockstep.root.appendingPathComponent("scripts/qemu-run-guest").path

    static func probe(_ json: String) throws -> PeerProbe { try PeerProbe.decode(json) }

    @Test func theChosenModelRunsWithItsArgument() throws {
        let probe = try Self.probe("""
            {"peer": "qemu-system-x86_64 KVM microvm", "qemu": "/usr/bin/qemu-system-x86_64", "cpu": "qemu64",
             "cpuArgument": "qemu64,-apic", "skipped": null, "tried": [
              {"cpu": "host", "ok": false, "reason": "killed by signal 6: failed to set MSR 0x10a", "seconds": 0.2},
              {"cpu": "max", "ok": false, "reason": "killed by signal 6: failed to set MSR 0x10a", "seconds": 0.2},
              {"cpu": "qemu64", "ok": true, "reason": null, "seconds": 0.3}]}
            """)
        #expect(probe.verdict == .runs(model: "qemu64", cpuArgument: "qemu64,-apic"))
        #expect(probe.summary == "qemu-system-x86_64 KVM microvm: -cpu qemu64,-apic (host failed: killed by signal 6: failed to set MSR 0x10a; max failed: killed by signal 6: failed to set MSR 0x10a)")
    }

    @Test func aPeerWithoutAModelIsSkippedWithTheReason() throws {
        let probe = try Self.probe("""
            {"peer": "qemu-system-x86_64 KVM pc", "qemu": "/usr/bin/qemu-system-x86_64", "cpu": null, "cpuArgument": null,
             "skipped": "no CPU model runs here: host: exit status 1: no", "tried": [
              {"cpu": "host", "ok": false, "reason": "exit status 1: no", "seconds": 0.1}]}
            """)
        #expect(probe.verdict == .cannotRun("no CPU model runs here: host: exit status 1: no"))
        #expect(probe.summary == "qemu-system-x86_64 KVM pc: skipped: no CPU model runs here: host: exit status 1: no")
    }

    @Test func aModelThatNeverBootedIsNotTrusted() throws {
        let probe = try Self.probe("""
            {"peer": "p", "qemu": "/q", "cpu": "host", "cpuArgument": "host", "skipped": null,
             "tried": [{"cpu": "host", "ok": false, "reason": "exit status 1: x", "seconds": 0.1}]}
            """)
        #expect(probe.verdict == .cannotRun("the probe named no CPU model that booted"))
        #expect(throws: (any Error).self) { try Self.probe("qemu-system-x86_64: unable to find CPU model") }
    }

    @Test func aMissingProbeOrQEMUIsASkippedPeer() {
        let noScript = PeerProbe.run(script: "/nonexistent/qemu-run-guest", arch: "x86", qemu: "qemu-system-x86_64")
        guard case .cannotRun(let why) = noScript.verdict else {
            Issue.record("a missing probe script gave \(noScript)")
            return
        }
        #expect(why.contains("/nonexistent/qemu-run-guest"))
        let noQEMU = PeerProbe.run(script: Self.script, arch: "x86", qemu: "/nonexistent/qemu-system-x86_64")
        #expect(noQEMU.verdict == .cannotRun("/nonexistent/qemu-system-x86_64 is not an executable"))
        #expect(noQEMU.tried.isEmpty)
    }

    /// The installed QEMU, if the probe can be asked at all (else the reason to skip).
    static func installedQEMU() throws -> String {
        guard let qemu = HostTools.which("qemu-system-x86_64") else {
            try Test.cancel("qemu-system-x86_64 is not installed (qemu-system-x86; scripts/install-deps)")
        }
        guard Lockstep.hasGuest("x86", "hello") else {
            try Test.cancel("the x86 hello guest is not built (scripts/build-guests): the probe boots it")
        }
        return qemu
    }

    @Test("a model QEMU does not know fails with QEMU's reason; the next one is taken")
    func failingModelThenWorkingOne() throws {
        let qemu = try Self.installedQEMU()
        let probe = PeerProbe.run(script: Self.script, arch: "x86", qemu: qemu,
                                  candidates: ["lockstep-no-such-cpu", "qemu64"])
        #expect(probe.verdict == .runs(model: "qemu64", cpuArgument: "qemu64"), "\(probe)")
        #expect(probe.tried.map(\.cpu) == ["lockstep-no-such-cpu", "qemu64"])
        #expect(probe.tried.first?.ok == false)
        #expect(probe.tried.first?.reason?.contains("lockstep-no-such-cpu") == true, "\(probe.tried)")
    }

    @Test("when no model runs, the peer is skipped and every failure is in the reason")
    func noModelRuns() throws {
        let qemu = try Self.installedQEMU()
        let probe = PeerProbe.run(script: Self.script, arch: "x86", microvm: true, qemu: qemu,
                                  candidates: ["lockstep-no-such-cpu", "lockstep-other-cpu"])
        guard case .cannotRun(let why) = probe.verdict else {
            Issue.record("two unknown models gave \(probe)")
            return
        }
        #expect(why.contains("lockstep-no-such-cpu") && why.contains("lockstep-other-cpu"), "\(why)")
        #expect(probe.tried.allSatisfy { !$0.ok && $0.reason != nil })
    }

    @Test("on this host's KVM: host, then max, then qemu64, stopping at the first that boots")
    func defaultOrderOnKVM() throws {
        let qemu = try Self.installedQEMU()
        guard Lockstep.hasKVM else { try Test.cancel("/dev/kvm is not usable here: no KVM models to probe") }
        let probe = PeerProbe.run(script: Self.script, arch: "x86", kvm: true, microvm: true, qemu: qemu)
        let order = ["host", "max", "qemu64"]
        let tried = probe.tried.map(\.cpu)
        #expect(!tried.isEmpty && tried == Array(order.prefix(tried.count)), "\(tried)")
        #expect(probe.tried.dropLast().allSatisfy { !$0.ok && !($0.reason ?? "").isEmpty }, "\(probe.tried)")
        switch probe.verdict {
        case .runs(let model, let argument):
            #expect(model == tried.last)
            #expect(argument == "\(model),-apic")
        case .cannotRun(let why):
            #expect(tried == order, "gave up before trying every model: \(why)")
        }
        print("PeerProbeTests: \(probe.summary)")
    }
}
