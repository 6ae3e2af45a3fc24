import MachineCore

/// The message types of protocol version 1. 0 is never valid.
public enum MessageType: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    case invalid = 0
    /// Both directions, first: who I am, what I run (guest image and configuration digests).
    case hello = 1
    /// Both directions: the handshake failed; the text says why. The sender then closes.
    case refuse = 2
    /// Primary to backup: results of environment instructions, in execution order (rule P0).
    case environmentValues = 3
    /// Primary to backup: an epoch ended; its length, boundary time and events (rules P1, P2).
    case epochEnd = 4
    /// Primary to backup: an output is about to become visible (output commit, step 1).
    case output = 5
    /// Primary to backup: an output has been performed (output commit, step 3).
    case outputDone = 6
    /// Backup to primary: every frame up to a sequence number has been received, and the backup
    /// has executed epochs up to a number.
    case ack = 7
    /// Both directions: I am alive (sent when nothing else has been sent for a while).
    case heartbeat = 8
    /// Primary to backup: the guest stopped; its status and final state digest.
    case finished = 9

    public var description: String {
        switch self {
        case .invalid: "invalid"
        case .hello: "hello"
        case .refuse: "refuse"
        case .environmentValues: "environment-values"
        case .epochEnd: "epoch-end"
        case .output: "output"
        case .outputDone: "output-done"
        case .ack: "ack"
        case .heartbeat: "heartbeat"
        case .finished: "finished"
        }
    }
}

/// Which side of a replicated pair a process is.
public enum ReplicaRole: UInt8, Sendable, CustomStringConvertible {
    case primary = 1
    case backup = 2
    public var description: String { self == .primary ? "primary" : "backup" }
}

/// The first message in each direction.
public struct Hello: Equatable, Sendable {
    public var role: ReplicaRole
    /// SHA-256 of the guest ELF file.
    public var imageDigest: StateDigest
    /// SHA-256 of the canonical configuration text (`configuration`).
    public var configurationDigest: StateDigest
    /// The canonical configuration, shown when the digests differ.
    public var configuration: String
    /// 16 random bytes chosen by the primary, naming this pair (the arbiter uses it); zero from the backup.
    public var session: [UInt8]
}

/// One environment-instruction result, as the primary's guest saw it.
public struct LoggedValue: Equatable, Sendable {
    public var read: EnvironmentRead
    public var value: UInt64
}

/// How an epoch ended at the primary.
public enum EpochStop: UInt8, Equatable, Sendable {
    case epochEnd = 0
    case idle = 1
}

/// The end of an epoch at the primary.
public struct EpochRecord: Equatable, Sendable {
    public var epoch: UInt64
    /// The primary's `Machine.progress` at the boundary: where the backup must stop.
    public var progress: UInt64
    public var stop: EpochStop
    /// Virtual time at the boundary (rule P2).
    public var time: VirtualTime
    /// The buffered inputs delivered at this boundary, in order (rule P1).
    public var events: [BoundaryEvent]
    /// How many environment values the epoch consumed (a divergence check).
    public var environmentCount: UInt64
    /// How many output records the epoch produced (a divergence check).
    public var outputCount: UInt64
    /// The full state digest at the boundary, when the primary took one.
    public var stateDigest: StateDigest?
}

/// What kind of output a record is.
public enum OutputKind: UInt8, Equatable, Sendable {
    /// Bytes on the console (one line, or the part of a line that ended an epoch).
    case console = 1
    /// A disk write (its data are the request's).
    case diskWrite = 2
    /// A disk flush.
    case diskFlush = 3
}

/// An output about to become visible. The backup produces the same record itself when it
/// replays the epoch; the digest lets it check that it did.
public struct OutputRecord: Equatable, Sendable {
    /// Output records are numbered from 1 in the order the guest produced them.
    public var sequence: UInt64
    public var epoch: UInt64
    public var kind: OutputKind
    /// SHA-256 of the output's content.
    public var digest: StateDigest
}

/// The backup's acknowledgement.
public struct AckRecord: Equatable, Sendable {
    /// Every frame with a sequence number up to this one has been received.
    public var received: UInt64
    /// The backup has executed epochs up to (not including) this one.
    public var executedEpochs: UInt64
}

/// How the guest's run ended at the primary.
public enum RunEnding: UInt8, Equatable, Sendable {
    /// The guest exited (debug-exit, halt or shutdown) with the record's status.
    case exited = 0
    /// The guest crashed (triple fault, an interruption with no handler, ...).
    case crashed = 1
    /// The guest idles waiting for console input, with no timer armed and no disk request
    /// outstanding, and console input is closed: it would wait forever. The run ends with status 0.
    case inputClosed = 2
}

/// The guest stopped at the primary.
public struct FinishedRecord: Equatable, Sendable {
    public var epoch: UInt64
    public var progress: UInt64
    public var status: Int32
    public var ending: RunEnding
    public var stateDigest: StateDigest
}

/// A message on the replication channel.
public enum Message: Equatable, Sendable {
    case hello(Hello)
    case refuse(String)
    case environmentValues([LoggedValue])
    case epochEnd(EpochRecord)
    case output(OutputRecord)
    case outputDone(UInt64)
    case ack(AckRecord)
    case heartbeat
    case finished(FinishedRecord)

    public var type: MessageType {
        switch self {
        case .hello: .hello
        case .refuse: .refuse
        case .environmentValues: .environmentValues
        case .epochEnd: .epochEnd
        case .output: .output
        case .outputDone: .outputDone
        case .ack: .ack
        case .heartbeat: .heartbeat
        case .finished: .finished
        }
    }

    /// The payload bytes.
    public func encodedPayload() -> [UInt8] {
        var w = WireWriter()
        switch self {
        case .hello(let h):
            w.u8(h.role.rawValue)
            w.raw(h.imageDigest.bytes)
            w.raw(h.configurationDigest.bytes)
            w.string(h.configuration)
            w.blob(h.session)
        case .refuse(let reason):
            w.string(reason)
        case .environmentValues(let values):
            w.u32(UInt32(values.count))
            for v in values {
                w.u8(v.read.wireCode)
                w.u64(v.value)
            }
        case .epochEnd(let r):
            w.u64(r.epoch)
            w.u64(r.progress)
            w.u8(r.stop.rawValue)
            w.u64(r.time.nanoseconds)
            w.u64(r.environmentCount)
            w.u64(r.outputCount)
            w.bool(r.stateDigest != nil)
            if let d = r.stateDigest { w.raw(d.bytes) }
            w.u32(UInt32(r.events.count))
            for e in r.events { e.encode(into: &w) }
        case .output(let o):
            w.u64(o.sequence)
            w.u64(o.epoch)
            w.u8(o.kind.rawValue)
            w.raw(o.digest.bytes)
        case .outputDone(let sequence):
            w.u64(sequence)
        case .ack(let a):
            w.u64(a.received)
            w.u64(a.executedEpochs)
        case .heartbeat:
            break
        case .finished(let f):
            w.u64(f.epoch)
            w.u64(f.progress)
            w.i32(f.status)
            w.u8(f.ending.rawValue)
            w.raw(f.stateDigest.bytes)
        }
        return w.bytes
    }

    /// Decodes a frame's payload.
    public init(frame: Frame) throws(WireError) {
        var r = WireReader(frame.payload, type: frame.type)
        switch frame.type {
        case .invalid:
            throw .unknownMessageType(0)
        case .hello:
            let rawRole = try r.u8()
            guard let role = ReplicaRole(rawValue: rawRole) else {
                throw .malformed(.hello, "role \(rawRole)")
            }
            let image = StateDigest(bytes: try r.raw(32))
            let config = StateDigest(bytes: try r.raw(32))
            let text = try r.string()
            let session = try r.blob(limit: 64)
            self = .hello(Hello(role: role, imageDigest: image, configurationDigest: config,
                                configuration: text, session: session))
        case .refuse:
            self = .refuse(try r.string())
        case .environmentValues:
            let n = try r.count(minimumSize: 9)
            var values: [LoggedValue] = []
            values.reserveCapacity(n)
            for _ in 0..<n {
                let code = try r.u8()
                guard let read = EnvironmentRead(wireCode: code) else {
                    throw .malformed(.environmentValues, "environment read kind \(code)")
                }
                values.append(LoggedValue(read: read, value: try r.u64()))
            }
            self = .environmentValues(values)
        case .epochEnd:
            let epoch = try r.u64()
            let progress = try r.u64()
            let rawStop = try r.u8()
            guard let stop = EpochStop(rawValue: rawStop) else {
                throw .malformed(.epochEnd, "stop kind \(rawStop)")
            }
            let time = VirtualTime(nanoseconds: try r.u64())
            let environmentCount = try r.u64()
            let outputCount = try r.u64()
            let digest = try r.bool() ? StateDigest(bytes: try r.raw(32)) : nil
            let n = try r.count(minimumSize: 5)
            var events: [BoundaryEvent] = []
            for _ in 0..<n { events.append(try BoundaryEvent.decode(from: &r)) }
            self = .epochEnd(EpochRecord(
                epoch: epoch, progress: progress, stop: stop, time: time, events: events,
                environmentCount: environmentCount, outputCount: outputCount, stateDigest: digest))
        case .output:
            let sequence = try r.u64()
            let epoch = try r.u64()
            let rawKind = try r.u8()
            guard let kind = OutputKind(rawValue: rawKind) else {
                throw .malformed(.output, "output kind \(rawKind)")
            }
            self = .output(OutputRecord(sequence: sequence, epoch: epoch, kind: kind,
                                        digest: StateDigest(bytes: try r.raw(32))))
        case .outputDone:
            self = .outputDone(try r.u64())
        case .ack:
            self = .ack(AckRecord(received: try r.u64(), executedEpochs: try r.u64()))
        case .heartbeat:
            self = .heartbeat
        case .finished:
            let epoch = try r.u64()
            let progress = try r.u64()
            let status = try r.i32()
            let rawEnding = try r.u8()
            guard let ending = RunEnding(rawValue: rawEnding) else {
                throw .malformed(.finished, "run ending \(rawEnding)")
            }
            self = .finished(FinishedRecord(
                epoch: epoch, progress: progress, status: status, ending: ending,
                stateDigest: StateDigest(bytes: try r.raw(32))))
        }
        try r.finish()
    }
}

extension EnvironmentRead {
    var wireCode: UInt8 {
        switch self {
        case .timestampCounter: 1
        case .randomNumber: 2
        case .intervalTimer: 3
        }
    }

    init?(wireCode: UInt8) {
        switch wireCode {
        case 1: self = .timestampCounter
        case 2: self = .randomNumber
        case 3: self = .intervalTimer
        default: return nil
        }
    }
}

extension BoundaryEvent {
    func encode(into w: inout WireWriter) {
        switch self {
        case .consoleInput(let bytes):
            w.u8(1)
            w.blob(bytes)
        case .blockCompletion(let c):
            w.u8(2)
            w.u64(c.id)
            w.u8(c.status.rawValue)
            w.blob(c.data)
        }
    }

    static func decode(from r: inout WireReader) throws(WireError) -> BoundaryEvent {
        switch try r.u8() {
        case 1:
            return .consoleInput(try r.blob())
        case 2:
            let id = try r.u64()
            let rawStatus = try r.u8()
            guard let status = BlockStatus(rawValue: rawStatus) else {
                throw .malformed(r.type, "block status \(rawStatus)")
            }
            return .blockCompletion(BlockCompletion(id: id, status: status, data: try r.blob()))
        case let kind:
            throw .malformed(r.type, "boundary event kind \(kind)")
        }
    }
}
