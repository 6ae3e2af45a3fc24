import Hypervisor
import MachineCore
import NIOCore
import Replication

extension FuzzTarget {
    /// Valid inputs to start from: every kind of frame and message, and a well-formed virtio
    /// request, so the fuzzer begins past the first checks.
    public func seeds() -> [[UInt8]] {
        switch self {
        case .frames: Self.frameSeeds()
        case .messages: Self.messageSeeds()
        case .virtioBlock: Self.virtioSeeds()
        }
    }

    static func frameSeeds() -> [[UInt8]] {
        var backup = HandshakeStateMachine(role: .backup, key: key, identity: identity, randomness: .fixed(9))
        let offer = backup.start().send
        var primary = HandshakeStateMachine(role: .primary, key: key, identity: identity,
                                            session: Array(repeating: 1, count: IdentityMessage.sessionSize),
                                            randomness: randomness)
        var reader = FrameReader()
        reader.append(contentsOf: offer)
        let answer = (try? reader.next()).flatMap { $0 }.map { primary.receive($0).send } ?? []
        var answerReader = FrameReader()
        answerReader.append(contentsOf: answer)
        let identityFrame = (try? answerReader.next()).flatMap { $0 }.map { backup.receive($0).send } ?? []
        let alert = HandshakeStateMachine.clearFrame(HandshakeMessage.alert(.busy).encoded())
        return [offer, offer + identityFrame, alert, Array("GET / HTTP/1.1\r\n\r\n".utf8)]
    }

    static func messageSeeds() -> [[UInt8]] {
        let digest = StateDigest.of([1])
        let primaryMessages: [Message] = [
            .environmentValues(LoggedValues([LoggedValue(read: .intervalTimer, value: 7), LoggedValue(read: .randomNumber, value: 9)])),
            .output(OutputRecord(sequence: 1, epoch: 0, kind: .console, digest: digest)),
            .outputDone(1),
            .epochEnd(EpochRecord(epoch: 0, progress: 50, stop: .epochEnd, time: VirtualTime(nanoseconds: 5),
                                  events: [.consoleInput([0x41, 0x0A]), .blockCompletion(BlockCompletion(id: 1, status: .ok, data: [1, 2]))],
                                  environmentCount: 2, outputCount: 1, stateDigest: digest)),
            .finished(FinishedRecord(epoch: 1, progress: 60, status: 3, ending: .exited, stateDigest: digest)),
        ]
        var writer = MessageWriter()
        for m in primaryMessages { writer.write(m) }
        let stream = Array(writer.take().readableBytesView)
        writer.executed(4)
        let reports = Array(writer.take().readableBytesView)
        // Output comparison: an epoch compared, then ended; the run's last epoch compared, then finished.
        let comparing: [Message] = [
            .output(OutputRecord(sequence: 1, epoch: 0, kind: .console, digest: digest)),
            .compare(CompareRequest(epoch: 0, progress: 50, stop: .epochEnd, wantsFingerprint: false)),
            .epochEnd(EpochRecord(epoch: 0, progress: 50, stop: .epochEnd, time: VirtualTime(nanoseconds: 5),
                                  events: [], environmentCount: 0, outputCount: 1, stateDigest: nil)),
            .compare(CompareRequest(epoch: 1, progress: 60, stop: .ended, wantsFingerprint: true)),
            .rollback(RollbackRequest(epoch: 1, attempt: 1)),
            .finished(FinishedRecord(epoch: 1, progress: 60, status: 3, ending: .exited, stateDigest: digest)),
        ]
        for m in comparing { writer.write(m) }
        let comparisons = Array(writer.take().readableBytesView)
        writer.verdict(Verdict(epoch: 0, outcome: .executed, outputCount: 1,
                               outputs: OutputDigest.of([OutputRecord(sequence: 1, epoch: 0, kind: .console, digest: digest)]),
                               firstDifference: 0, fingerprint: nil))
        writer.verdict(Verdict(epoch: 1, outcome: .executed, outputCount: 0, outputs: OutputDigest.of([]),
                               firstDifference: 0, fingerprint: StateDigest.of([2])))
        writer.verdict(.diverged(epoch: 3))
        writer.rolledBack(attempt: 1)
        let verdicts = Array(writer.take().readableBytesView)
        // The first byte picks the receiver (even: backup) and the epoch length.
        return [[200] + stream, [1] + reports, [200] + comparisons, [1] + verdicts]
    }

    static func virtioSeeds() -> [[UInt8]] {
        var image = [UInt8](repeating: 0, count: 0x3000)
        func put16(_ v: UInt16, _ at: Int) { image[at] = UInt8(v & 0xFF); image[at + 1] = UInt8(v >> 8) }
        func put32(_ v: UInt32, _ at: Int) { for i in 0..<4 { image[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
        func put64(_ v: UInt64, _ at: Int) { for i in 0..<8 { image[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
        // Guest-physical = image offset + 0x1000. Descriptors at 0x1000, available ring at 0x2000.
        func descriptor(_ index: Int, address: UInt64, length: UInt32, flags: UInt16, next: UInt16) {
            put64(address, index * 16)
            put32(length, index * 16 + 8)
            put16(flags, index * 16 + 12)
            put16(next, index * 16 + 14)
        }
        descriptor(0, address: 0x3800, length: 16, flags: 1, next: 1)      // header
        descriptor(1, address: 0x3A00, length: 512, flags: 1 | 2, next: 2) // data, device writes
        descriptor(2, address: 0x3E00, length: 1, flags: 2, next: 0)       // status
        put32(0, 0x2800)        // VIRTIO_BLK_T_IN
        put64(3, 0x2808)        // sector 3
        put16(1, 0x1002)        // available index 1
        put16(0, 0x1004)        // ring[0] = descriptor 0
        // Then: complete it, notify again, read the interrupt status.
        let ops: [UInt8] = [2, 0, 0, 0, 0, 0, 0] + [4, 0, 0, 0, 0, 0, 0] + [1, 0x60, 0, 0, 0, 0, 0]
        return [[16] + image + ops]
    }
}
