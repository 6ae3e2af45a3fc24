import Foundation
import Testing

@testable import Replication

@Suite struct LagBoundTests {
    @Test func durationsAndEpochCountsAreParsed() {
        #expect(LagBound(parsing: "256") == .epochs(256))
        #expect(LagBound(parsing: "50ms") == .duration(nanoseconds: 50_000_000))
        #expect(LagBound(parsing: "0.2s") == .duration(nanoseconds: 200_000_000))
        #expect(LagBound(parsing: "500us") == .duration(nanoseconds: 500_000))
        #expect(LagBound(parsing: "500µs") == .duration(nanoseconds: 500_000))
        // The default prints as what parses back to it.
        #expect(LagBound(parsing: LagBound.defaultBound.description) == LagBound.defaultBound)
        #expect(LagBound(parsing: LagBound.duration(nanoseconds: 1_500).description) == .duration(nanoseconds: 1_500))
    }

    @Test(arguments: ["0", "-1", "", "ms", "50", "50 ms", "50m", "1e400s", "nanms", "-5ms", "0ms", "3601s", "0.0001us", "18446744073709551616"])
    func nonsenseIsRefused(_ text: String) {
        if text == "50" { #expect(LagBound(parsing: text) == .epochs(50)); return }
        #expect(LagBound(parsing: text) == nil, "\(text)")
    }

    @Test func aDurationBoundLeavesTheEpochLimitToTheMetersRing() {
        #expect(LagBound.epochs(8).epochLimit == 8)
        #expect(LagBound.duration(nanoseconds: 1).epochLimit == LagBound.durationEpochLimit - 1)
    }

    @Test func theMeterSumsTheGuestTimeOfTheEpochsNotExecuted() {
        var meter = LagMeter()
        // Epochs 0, 1, 2 took 10, 20 and 30 ns of guest time.
        meter.ended(count: 1, ran: 10)
        meter.ended(count: 2, ran: 20)
        meter.ended(count: 3, ran: 30)
        #expect(meter.lag(count: 3, executed: 0) == 60)
        #expect(meter.lag(count: 3, executed: 1) == 50)
        #expect(meter.lag(count: 3, executed: 2) == 30)
        #expect(meter.lag(count: 3, executed: 3) == 0)
        // A report ahead of the count (the final epoch) is no lag.
        #expect(meter.lag(count: 3, executed: 4) == 0)
    }

    @Test func batchesAreHeldForAQuarterOfADurationBoundAtMost() {
        let byDefault = BatchTiming(LagBound.defaultBound)
        #expect(byDefault.age == 12_500_000, "a quarter of 50 ms")
        #expect(byDefault.reportDelay > byDefault.age, "a primary that runs sends more before a caught-up backup reports")
        #expect(byDefault.reportEvery == 12_500_000, "periodic reports: a quarter of the bound too")
        #expect(BatchTiming(.duration(nanoseconds: 10_000_000_000)).reportEvery == 2_500_000_000)
        #expect(BatchTiming(.epochs(256)).reportEvery == nil, "an epoch count is reported by count")
        #expect(BatchTiming(.duration(nanoseconds: 10_000_000_000)).age == BatchTiming.longestAge)
        #expect(BatchTiming(.epochs(100_000_000)).age == BatchTiming.longestAge)
        let tiny = BatchTiming(.duration(nanoseconds: 1))
        #expect(tiny.age == 1 && tiny.reportDelay == 1, "never zero: a batch is sent at the next boundary")
    }

    @Test func aBackupFurtherBehindThanTheRingIsOverAnyBound() {
        var meter = LagMeter()
        let n = LagBound.durationEpochLimit + 5
        for count in 1...n { meter.ended(count: count, ran: 1) }
        #expect(meter.lag(count: n, executed: n - 100) == 100)
        #expect(meter.lag(count: n, executed: 0) == .max)
    }
}

@Suite struct TakeoverClaimTests {
    @Test func theWatcherClaimsOnlyWhileTheGuestRunsAtTheHeadOfTheLog() {
        let claim = TakeoverClaim()
        #expect(!claim.begin(.watcher), "the machine thread has not started the guest")
        claim.setAtHead(true)
        claim.setAtHead(false)
        #expect(!claim.begin(.watcher), "the machine thread is taking messages")
        claim.setAtHead(true)
        #expect(claim.begin(.watcher))
        // One claim only: the machine thread takes the watcher's verdict.
        #expect(!claim.begin(.machineThread))
        claim.decide(.success(.won))
        guard case (.watcher, .success(.won))? = claim.verdict() else { Issue.record("\(String(describing: claim.verdict()))"); return }
    }

    @Test func theMachineThreadClaimsWhenItNoticesTheEndItself() {
        let claim = TakeoverClaim()
        #expect(claim.begin(.machineThread))
        #expect(!claim.begin(.watcher))
        claim.decide(.success(.lost(holder: "primary pid 1")))
        guard case (.machineThread, .success(.lost(let holder)))? = claim.verdict() else { Issue.record("no verdict"); return }
        #expect(holder == "primary pid 1")
    }

    @Test func afterTheRunEndedNobodyClaims() {
        let claim = TakeoverClaim()
        claim.setAtHead(true)
        claim.end()
        #expect(!claim.begin(.watcher))
        #expect(!claim.begin(.machineThread))
        #expect(claim.verdict() == nil)
    }

    @Test func theVerdictWaitsForAClaimUnderWay() async {
        let claim = TakeoverClaim()
        claim.setAtHead(true)
        #expect(claim.begin(.watcher))
        let waiter = Task.detached { claim.verdict() }
        try? await Task.sleep(nanoseconds: 20_000_000)
        claim.decide(.success(.won))
        guard case (.watcher, .success(.won))? = await waiter.value else { Issue.record("no verdict"); return }
    }
}
