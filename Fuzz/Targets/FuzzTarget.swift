import Devices
import Foundation
import Hypervisor
import MachineCore
import NIOCore
import Replication

/// The fuzz targets: each takes arbitrary bytes, drives one hostile-input path of Lockstep with
/// them, and traps (a finding) only if an invariant breaks. libFuzzer runs them through
/// `lockstep-fuzz` (scripts/fuzz); the corpus is replayed by an ordinary Swift Testing test.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// The frame reader, handshake messages and the primary's handshake state machine: what a
    /// stranger on the network reaches before any authentication.
    case frames
    /// The replication message parser and the backup's state machine: what a peer holding the
    /// key reaches after authentication.
    case messages
    /// The virtio-mmio block device's handling of guest-written descriptors, registers, and
    /// completions (which a backup receives from its primary's log).
    case virtioBlock = "virtio-block"

    public func run(_ data: [UInt8]) {
        switch self {
        case .frames: Self.frames(data)
        case .messages: Self.messages(data)
        case .virtioBlock: Self.virtioBlock(data)
        }
    }

    // MARK: frames

    static let key = ReplicationKey(bytes: Array(repeating: 0x5A, count: ReplicationKey.size))
    static let identity = ReplicaIdentity(imageBytes: [1, 2, 3], options: RunOptionsForFuzzing.options,
                                          engine: .emulator, epochClock: .recoveryCounter, epochLength: 100,
                                          diskSectors: nil)

    /// Fixed, so a run spends its time on the input rather than on making keys.
    static let randomness = HandshakeRandomness.fixed(7)

    static func frames(_ data: [UInt8]) {
        var reader = FrameReader()
        var machine = HandshakeStateMachine(role: .primary, key: key, identity: identity,
                                            session: Array(repeating: 1, count: IdentityMessage.sessionSize),
                                            randomness: randomness)
        // Feed the bytes in pieces whose sizes come from the data itself.
        var offset = 0
        var piece = 1
        while offset < data.count {
            let end = min(data.count, offset + piece)
            reader.append(contentsOf: data[offset..<end])
            offset = end
            piece = Int(data[end - 1] % 61) + 1
            while true {
                let frame: RawFrame
                do {
                    guard let f = try reader.next() else { break }
                    frame = f
                } catch {
                    return
                }
                let limits = Frame.bodyLimits(frame.type)
                precondition(limits.contains(frame.body.readableBytes), "a frame outside its limits was returned")
                if frame.type == .handshake { _ = try? HandshakeMessage(body: frame.body) }
                if frame.type == .identity { _ = try? IdentityMessage(plaintext: frame.body) }
                let step = machine.receive(frame)
                if case .success? = step.outcome {
                    preconditionFailure("a handshake succeeded without the key")
                }
                if machine.isFinished { return }
            }
        }
    }

    // MARK: messages

    static func messages(_ data: [UInt8]) {
        guard let first = data.first else { return }
        let receiver: ReplicaRole = first & 1 == 0 ? .backup : .primary
        var parser = MessageParser(receiver: receiver)
        var rules = BackupStateMachine(epochLength: UInt64(first >> 1) + 1, maximumLag: 8)
        var progress: UInt64 = 0
        var compared = false
        // The primary's side of output comparison, asking about epochs 0 and 1.
        var comparison = ComparisonStateMachine()
        _ = comparison.expect(epoch: 0, progress: 1, stop: .epochEnd,
                              records: [OutputRecord(sequence: 1, epoch: 0, kind: .console, digest: StateDigest.of([1]))],
                              fingerprint: nil)
        _ = comparison.expect(epoch: 1, progress: 2, stop: .ended, records: [], fingerprint: StateDigest.of([2]))
        var offset = 1
        var piece = 7
        while offset < data.count {
            let end = min(data.count, offset + piece)
            parser.append(ByteBufferAllocator().buffer(bytes: data[offset..<end]))
            offset = end
            piece = Int(data[end - 1]) + 1
            while true {
                let message: Message
                do {
                    guard let m = try parser.next() else { break }
                    message = m
                } catch {
                    return
                }
                // Whatever was accepted must encode back to itself.
                var writer = MessageWriter(capacity: 64)
                writer.write(message)
                var again = MessageParser(receiver: receiver)
                again.append(writer.take())
                let decoded = try? again.next()
                precondition(decoded == message || isEmptyValues(message), "a message does not round-trip")
                guard receiver == .backup else {
                    if case .rolledBack(let attempt) = message {
                        precondition((try? comparison.rolledBack(attempt: attempt)) == nil, "a rollback confirmed that was never asked for")
                    }
                    if case .verdict(let verdict) = message {
                        let before = comparison.awaiting.count
                        if (try? comparison.verdictArrived(verdict, currentEpoch: 4)) != nil {
                            precondition(comparison.awaiting.count <= before, "a verdict added a request")
                        }
                    }
                    continue
                }
                switch try? rules.receive(message, progress: progress) {
                case .execute(let record)?:
                    precondition(compared ? record.progress == progress
                                          : record.progress > progress && record.progress - progress <= rules.epochLength,
                                 "an epoch out of range was accepted")
                    progress = record.progress
                    compared = false
                    _ = rules.executed()
                case .compare(let request)?:
                    precondition(!compared && request.progress > progress && request.progress - progress <= rules.epochLength,
                                 "a comparison out of range was accepted")
                    progress = request.progress
                    compared = true
                case .finish?, nil:
                    return
                case .rollBack(let request)?:
                    precondition(request.epoch <= rules.epoch, "a rollback beyond the epoch was accepted")
                case .writePages?, .restore?:
                    preconditionFailure("a state transfer was accepted by a backup that follows")
                case .log?, .announce?, .performed?:
                    break
                case .member(let generation)?:
                    precondition(generation == rules.membership && generation > 0, "a membership generation that does not grow was accepted")
                }
            }
        }
    }

    private static func isEmptyValues(_ message: Message) -> Bool {
        if case .environmentValues(let v) = message { v.count == 0 } else { false }
    }

    // MARK: virtio-block

    /// Register offsets (virtio 1.2, 4.2.2).
    enum Register {
        static let status: UInt64 = 0x070, deviceFeaturesSel: UInt64 = 0x014, deviceFeatures: UInt64 = 0x010
        static let driverFeaturesSel: UInt64 = 0x024, driverFeatures: UInt64 = 0x020
        static let queueSel: UInt64 = 0x030, queueNum: UInt64 = 0x038, queueReady: UInt64 = 0x044
        static let queueNotify: UInt64 = 0x050
        static let queueDescLow: UInt64 = 0x080, queueDriverLow: UInt64 = 0x090, queueDeviceLow: UInt64 = 0x0a0
    }

    final class Lines: InterruptController {
        func setLevel(_ level: Bool, line: Int) {}
    }

    final class Requests {
        var submitted: [BlockRequest] = []
    }

    static let memorySize = 0x8000

    static func virtioBlock(_ data: [UInt8]) {
        guard data.count >= 2, let memory = try? GuestMemory(size: UInt64(memorySize)) else { return }
        let requests = Requests()
        let lines = Lines()
        let device = VirtioMMIOBlock(configuration: .init(capacity: 64), memory: memory,
                                     interrupt: InterruptLine(controller: lines, number: 5),
                                     submit: { requests.submitted.append($0) })
        func set(_ offset: UInt64, _ value: UInt32) { device.write(offset: offset, size: 4, value: UInt64(value)) }
        // A driver's initialization, then guest memory from the data: descriptors, rings, buffers.
        set(Register.status, 0)
        set(Register.status, 3)
        set(Register.deviceFeaturesSel, 1)
        let high = UInt32(truncatingIfNeeded: device.read(offset: Register.deviceFeatures, size: 4))
        set(Register.driverFeaturesSel, 1)
        set(Register.driverFeatures, high)
        set(Register.deviceFeaturesSel, 0)
        set(Register.driverFeaturesSel, 0)
        set(Register.driverFeatures, UInt32(truncatingIfNeeded: device.read(offset: Register.deviceFeatures, size: 4)))
        set(Register.status, 0x0B)
        set(Register.queueSel, 0)
        set(Register.queueNum, UInt32(data[0] % 20))
        set(Register.queueDescLow, 0x1000)
        set(Register.queueDriverLow, 0x2000)
        set(Register.queueDeviceLow, 0x3000)
        set(Register.queueReady, 1)
        set(Register.status, 0x0F)
        let image = Array(data.dropFirst(1).prefix(0x3000))
        try? memory.write(image, at: GuestAddress(0x1000))
        set(Register.queueNotify, 0)
        // Then operations: register writes and reads, completions, memory changes.
        var index = 1 + image.count
        while index + 7 <= data.count {
            let op = data[index]
            let offset = UInt64(data[index + 1]) | UInt64(data[index + 2]) << 8
            let value = UInt32(data[index + 3]) | UInt32(data[index + 4]) << 8 | UInt32(data[index + 5]) << 16
                | UInt32(data[index + 6]) << 24
            index += 7
            switch op % 5 {
            case 0:
                device.write(offset: offset % 0x200, size: [1, 2, 4, 8][Int(op >> 3) % 4], value: UInt64(value))
            case 1:
                _ = device.read(offset: offset % 0x200, size: [1, 2, 4, 8][Int(op >> 3) % 4])
            case 2:
                // A completion as a primary's log could carry it: any id, status and length.
                let id: BlockRequestID = op & 0x80 != 0 ? UInt64(value) : (requests.submitted.first?.id ?? 0)
                if !requests.submitted.isEmpty { requests.submitted.removeFirst() }
                let status = BlockStatus(rawValue: UInt8(offset % 3)) ?? .ok
                device.complete(BlockCompletion(id: id, status: status, data: Array(repeating: 0xC3, count: Int(value % 9000))))
            case 3:
                try? memory.write([UInt8(truncatingIfNeeded: value)], at: GuestAddress(UInt64(offset) % UInt64(memorySize)))
            default:
                set(Register.queueNotify, value % 2)
            }
            precondition(device.state.outstanding.count <= 256, "unbounded outstanding requests")
        }
    }
}

/// Options for the fuzz targets' replica identity.
enum RunOptionsForFuzzing {
    static let options = RunOptions(guestPath: "/fuzz")
}
