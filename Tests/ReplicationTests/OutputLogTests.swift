import MachineCore
import Testing
import TestSupport

@testable import Replication

@Suite struct OutputLogTests {
    func consoleText(_ outputs: [PendingOutput]) -> [String] {
        outputs.map {
            if case .console(let bytes) = $0.action { String(decoding: bytes, as: UTF8.self) } else { "<disk>" }
        }
    }

    @Test func consoleOutputIsCutIntoLines() {
        var log = OutputLog()
        log.console(Array("one\ntw".utf8), epoch: 0)
        log.console(Array("o\nthree".utf8), epoch: 0)
        let first = log.take()
        #expect(first.map(\.action) == [.console(Array("one\n".utf8)), .console(Array("two\n".utf8))])
        #expect(first.map(\.record.sequence) == [1, 2])
        log.endEpoch(0, idle: true)
        let rest = log.take()
        #expect(rest.map(\.action) == [.console(Array("three".utf8))])
        #expect(rest[0].record.sequence == 3)
        #expect(rest[0].record.digest == StateDigest.of(Array("three".utf8)))
    }

    /// The x86 exits clock ends an epoch every 16 exits, two per printed character: a line of
    /// 60 characters spans several epochs and must still be one record.
    @Test func aPartialLineIsHeldAcrossAnyNumberOfEpochsUntilItsNewline() {
        var log = OutputLog()
        let line = "ticks count=60 first=1000 last=60000 delta=59000 per_tick=1000\n"
        for (epoch, byte) in line.utf8.enumerated() {
            log.console([byte], epoch: UInt64(epoch))
            log.endEpoch(UInt64(epoch), idle: false)
            if byte != UInt8(ascii: "\n") { #expect(log.take().isEmpty) }
        }
        let records = log.take()
        #expect(consoleText(records) == [line])
        #expect(records[0].record.epoch == UInt64(line.utf8.count - 1))
    }

    @Test func anIdleGuestLetsItsPromptOut() {
        var log = OutputLog()
        log.console(Array("login: ".utf8), epoch: 3)
        log.endEpoch(3, idle: false)
        #expect(log.take().isEmpty)
        log.endEpoch(4, idle: true)
        #expect(consoleText(log.take()) == ["login: "])
        // Nothing is held any more: another idle boundary produces nothing.
        log.endEpoch(5, idle: true)
        #expect(log.take().isEmpty)
    }

    @Test func aLineWithoutNewlineIsCutAtTheBoundAndNothingMoreIsHeld() {
        var log = OutputLog()
        let bound = OutputLog.partialLineBytes
        log.console([UInt8](repeating: 0x2E, count: 2 * bound + 100), epoch: 0)
        let records = log.take()
        #expect(records.count == 2)
        #expect(records.allSatisfy { $0.action == .console([UInt8](repeating: 0x2E, count: bound)) })
        log.finish(0)
        #expect(log.take().map(\.action) == [.console([UInt8](repeating: 0x2E, count: 100))])
    }

    @Test func diskRequestsAreRecordsOfTheirOwnInOrder() {
        var log = OutputLog()
        log.console(Array("partial".utf8), epoch: 1)
        let write = BlockRequest(id: 1, kind: .write, sector: 8, length: 3, data: [1, 2, 3])
        log.disk(write, epoch: 1)
        log.disk(BlockRequest(id: 2, kind: .flush, sector: 0, length: 0), epoch: 1)
        let records = log.take()
        #expect(records.map(\.record.kind) == [.console, .diskWrite, .diskFlush])
        #expect(records[1].action == .disk(write))
        #expect(records[1].record.digest == StateDigest.of(littleEndianBytes(8) + [1, 2, 3]))
    }

    /// The primary and the backup see the guest's bytes in different pieces (the backup replays
    /// them); the records must come out alike.
    @Test func twoReplicasNumberTheSameStreamAlike() {
        var a = OutputLog(), b = OutputLog()
        let text = Array("line 1\nline 2\nline".utf8) + [UInt8](repeating: 0x41, count: OutputLog.partialLineBytes + 5)
        a.console(text, epoch: 0)
        for byte in text { b.console([byte], epoch: 0) }
        a.endEpoch(0, idle: false); b.endEpoch(0, idle: false)
        #expect(a.take() == b.take())
        a.finish(1); b.finish(1)
        #expect(a.take() == b.take())
        #expect(a.nextSequence == b.nextSequence)
    }
}

@Suite struct OneRepeatedLineTests {
    @Test func aRepeatedWholeLineIsAccepted() {
        let expected = "a\nbb\nccc\n"
        #expect(OutputComparison.equalUpToOneRepeatedLine(expected, expected))
        #expect(OutputComparison.equalUpToOneRepeatedLine("a\nbb\nbb\nccc\n", expected))
        #expect(OutputComparison.equalUpToOneRepeatedLine("a\na\nbb\nccc\n", expected))
        // A prompt at the very end.
        #expect(OutputComparison.equalUpToOneRepeatedLine("x\n> > ", "x\n> "))
    }

    @Test func aRepeatedFragmentOrTwoRepeatsAreRefused() {
        let expected = "ticks count=60 first=1\nend\n"
        #expect(!OutputComparison.equalUpToOneRepeatedLine("ticks count=60 count=60 first=1\nend\n", expected))
        #expect(OutputComparison.equalUpToOneRepeatedRecord("ticks count=60 count=60 first=1\nend\n", expected))
        #expect(!OutputComparison.equalUpToOneRepeatedLine("ticks count=60 first=1\nend\nend\nend\n", expected))
        #expect(!OutputComparison.equalUpToOneRepeatedLine("ticks count=60 first=1\n", expected))
    }
}
