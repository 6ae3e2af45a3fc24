import Foundation
import Testing
import TestSupport

/// The fast subset of issue 12's fault campaigns (`scripts/campaign-two-host --quick`, the full
/// ones are in docs/fault-campaigns.md): primary kills around the join and after an output, a
/// partition on each arbiter backend between two network namespaces, a SIGSTOP past the
/// timeout, etcd killed during a run. The script checks every promise (status, output up to one
/// repeated whole line, disk, nothing printed by the loser after the partition or by a woken
/// primary) and exits 1 naming the trial that broke one; parts that cannot run here (no root,
/// no etcd, no KVM) are reported as skipped by the script itself.
@Suite struct TwoHostCampaignTests {
    @Test func theQuickCampaignHoldsEveryPromise() throws {
        let executable = try #require(Lockstep.executable, "lockstep is not built")
        let script = Lockstep.root.appendingPathComponent("scripts/campaign-two-host").path
        let result = try Lockstep.runProcess(URL(fileURLWithPath: "/usr/bin/env"),
                                             ["python3", script, "--quick", "--only", "kills,partitions,sigstop,etcd",
                                              "--lockstep", executable.path], timeout: 400)
        print(result.stdout)
        #expect(!result.timedOut, "the campaign hung")
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
    }
}
