import MachineCore
import NIOCore
import Testing

@testable import Replication

/// Live state transfer (a backup joining a running primary): its messages, the joining backup's
/// rules, each backup's own state machine at the primary, and the primary's way back from alone.
@Suite struct StateTransferTests {
    static func memory() throws -> GuestMemory {
        let memory = try GuestMemory(size: 1 << 20)
        for page in [0, 3, 255] {
            memory.writePage(page, from: [UInt8](repeating: UInt8(page & 0xFF) | 1, count: Int(GuestMemory.pageSize))[...])
        }
        return memory
    }

    static func pagesMessage(_ pages: [Int], of memory: GuestMemory) -> [UInt8] {
        var writer = MessageWriter()
        writer.transferPages(pages, of: memory)
        return Array(writer.take().readableBytesView)
    }

    static let state = TransferState(epoch: 12, nextOutput: 5, consoleBytesDelivered: 77,
                                     partialLine: Array("half a li".utf8), ramDigest: digestA, machine: [1, 2, 3, 4])

    @Test func transferMessagesRoundTrip() throws {
        let memory = try Self.memory()
        let messages = try parse(Self.pagesMessage([0, 3, 255], of: memory) + stream([.transferState(Self.state)]))
        #expect(messages.count == 2)
        guard case .transferPages(let pages) = messages[0] else {
            Issue.record("not pages: \(messages[0])")
            return
        }
        #expect(pages.pageNumbers == [0, 3, 255])
        var seen = 0
        pages.forEach { page, data in
            #expect(data.count == Int(GuestMemory.pageSize))
            #expect(data.allSatisfy { $0 == UInt8(page & 0xFF) | 1 })
            seen += 1
        }
        #expect(seen == 3)
        #expect(messages[1] == .transferState(Self.state))
        // A message written from another message is the same bytes.
        #expect(stream([messages[0]]) == Self.pagesMessage([0, 3, 255], of: memory))
    }

    @Test func hostileTransferMessagesAreRefused() throws {
        let memory = try Self.memory()
        let good = Self.pagesMessage([3], of: memory)
        let stateBytes = stream([.transferState(Self.state)])
        var wrongCount = good
        wrongCount[6] = 2  // claims 2 pages, carries 1
        let entry = [UInt8](repeating: 0, count: TransferPages.entrySize)
        let cases: [(String, [UInt8])] = [
            ("no pages", rawMessage(type: 7, payload: [0, 0, 0, 0])),
            ("257 pages", rawMessage(type: 7, payload: [1, 1, 0, 0] + [UInt8](repeating: 0, count: 257 * TransferPages.entrySize))),
            ("a count the bytes do not hold", wrongCount),
            ("a page cut short", rawMessage(type: 7, payload: [1, 0, 0, 0] + entry.dropLast())),
            ("pages at the primary", rawMessage(type: 7, payload: [1, 0, 0, 0] + entry)),
            // The header's length says where it ends: a payload short of its fields is malformed.
            ("a truncated state", rawMessage(type: 8, payload: Array(stateBytes.dropFirst(MessageLimits.headerSize).dropLast(2)))),
            ("a partial line longer than 4 KiB",
             rawMessage(type: 8, payload: [UInt8](repeating: 1, count: 24) + [0x01, 0x10, 0, 0] + [UInt8](repeating: 0x41, count: 4097)
                        + [UInt8](repeating: 0, count: 32) + [0, 0, 0, 0])),
            ("next output 0",
             rawMessage(type: 8, payload: [UInt8](repeating: 1, count: 8) + [UInt8](repeating: 0, count: 16) + [0, 0, 0, 0]
                        + [UInt8](repeating: 0, count: 32) + [0, 0, 0, 0])),
            ("epoch 2^64-1",
             rawMessage(type: 8, payload: [UInt8](repeating: 0xFF, count: 8) + [1] + [UInt8](repeating: 0, count: 15) + [0, 0, 0, 0]
                        + [UInt8](repeating: 0, count: 32) + [0, 0, 0, 0])),
            ("a machine state longer than the message",
             rawMessage(type: 8, payload: [UInt8](repeating: 1, count: 24) + [0, 0, 0, 0] + [UInt8](repeating: 0, count: 32)
                        + [0xFF, 0xFF, 0xFF, 0x7F])),
        ]
        for (name, bytes) in cases {
            let receiver: ReplicaRole = name == "pages at the primary" ? .primary : .backup
            #expect(throws: WireError.self, "\(name)") { _ = try parse(bytes, receiver: receiver) }
        }
    }

    @Test func aJoiningBackupTakesOnlyTheTransferUntilItsState() throws {
        var rules = BackupStateMachine.joining(epochLength: 100, maximumLag: 8)
        let memory = try Self.memory()
        let pages = try parse(Self.pagesMessage([3], of: memory))[0]
        #expect(throws: ReplicationError.self) { _ = try rules.receive(.outputDone(1), progress: 0) }
        var joining = BackupStateMachine.joining(epochLength: 100, maximumLag: 8)
        #expect(throws: ReplicationError.self) {
            _ = try joining.receive(.epochEnd(EpochRecord(epoch: 0, progress: 10, stop: .epochEnd, time: .zero, events: [],
                                                          environmentCount: 0, outputCount: 0, stateDigest: nil)),
                                    progress: 0)
        }
        guard case .writePages = try rules.receive(pages, progress: 0) else {
            Issue.record("pages were not written")
            return
        }
        #expect(try rules.receive(.transferState(Self.state), progress: 0) == .restore(Self.state))
        #expect(rules.phase == .replaying)
        #expect(rules.epoch == 12)
        #expect(rules.announcedThrough == 4 && rules.performedThrough == 4)
        // It follows from the transfer's epoch and output numbers on.
        #expect(try rules.receive(.output(OutputRecord(sequence: 5, epoch: 12, kind: .console, digest: digestA)),
                                  progress: 1000) == .announce(OutputRecord(sequence: 5, epoch: 12, kind: .console, digest: digestA)))
        #expect(throws: ReplicationError.self) { _ = try rules.receive(pages, progress: 1000) }
        #expect(throws: ReplicationError.self) { _ = try rules.receive(.transferState(Self.state), progress: 1000) }
    }

    @Test func aJoiningBackupThatLosesItsPrimaryNeverTakesOver() {
        for reason in [CloseReason.peerClosed, .timeout(milliseconds: 300), .ioError("reset"), .closedLocally] {
            var rules = BackupStateMachine.joining(epochLength: 100, maximumLag: 8)
            rules.connectionEnded(reason)
            #expect(rules.phase == .failed(reason))
        }
    }

    @Test func preCopyRoundsConvergeOrStopAtTheLastRound() {
        var peer = BackupPeerStateMachine.joining(pages: Array(0..<600), finalCopyPages: 100, maximumRounds: 3)
        #expect(!peer.isFollowing && peer.rounds == 1)
        #expect(peer.nextPages(limit: 256) == Array(0..<256)[...])
        #expect(!peer.roundSent)
        _ = peer.nextPages(limit: 256)
        #expect(peer.nextPages(limit: 256).count == 88)
        #expect(peer.roundSent)
        // Many pages written meanwhile: another round.
        #expect(peer.roundEnded(dirty: Array(0..<300)) == .nextRound)
        #expect(peer.rounds == 2)
        _ = peer.nextPages(limit: 1000)
        // Few enough: the final copy.
        #expect(peer.roundEnded(dirty: Array(0..<100)) == .finalCopy)
        peer.transferred(finalPages: 100, epoch: 40)
        #expect(peer.isFollowing && peer.executedEpochs == 40 && peer.pagesSent == 1000)
        #expect(peer.executed(39) == 40)
        #expect(peer.executed(45) == 45)

        // A guest that writes faster than the transfer: the final copy after the last round.
        var busy = BackupPeerStateMachine.joining(pages: Array(0..<10), finalCopyPages: 1, maximumRounds: 2)
        _ = busy.nextPages(limit: 256)
        #expect(busy.roundEnded(dirty: Array(0..<10)) == .nextRound)
        _ = busy.nextPages(limit: 256)
        #expect(busy.roundEnded(dirty: Array(0..<10)) == .finalCopy)

        busy.lost(.peerClosed)
        #expect(busy.state == .gone(.peerClosed))
        #expect(busy.nextPages(limit: 10).isEmpty)
    }

    @Test func aPrimaryAloneLogsAgainOnceABackupJoined() {
        var rules = PrimaryStateMachine(timeoutMilliseconds: 1000, maximumLag: 8, peer: .alone(.peerClosed))
        #expect(!rules.logs)
        #expect(rules.commit(record1) == .perform)
        rules.backupJoined(at: 30)
        #expect(rules.logs && rules.backupExecuted == 30)
        #expect(rules.commit(record1) == .log(record1))
        #expect(rules.lagTarget(epoch: 38) == nil)
        #expect(rules.lagTarget(epoch: 39) == 31)
        // A deposed primary never logs again.
        var deposed = PrimaryStateMachine(timeoutMilliseconds: 1000, maximumLag: 8, peer: .deposed(holder: "b"))
        deposed.backupJoined(at: 3)
        #expect(deposed.peer == .deposed(holder: "b"))
    }
}
