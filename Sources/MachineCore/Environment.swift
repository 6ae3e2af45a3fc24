/// What an environment instruction reads from outside the virtual machine's state.
///
/// Environment instructions are simulated by the hypervisor: the engine computes a deterministic
/// proposal, and the `GuestEnvironment` decides the value the guest sees. At a primary it is
/// logged for the backup; at a backup it comes from the primary's log.
public enum EnvironmentRead: Hashable, Sendable, Codable, CustomStringConvertible {
    /// x86 RDTSC, RDTSCP or a read of the IA32_TIME_STAMP_COUNTER MSR.
    case timestampCounter
    /// x86 RDRAND or RDSEED (hidden in CPUID, trapped if executed anyway).
    case randomNumber
    /// PA-RISC MFCTL of CR16, the interval timer.
    case intervalTimer

    public var description: String {
        switch self {
        case .timestampCounter: "tsc"
        case .randomNumber: "random"
        case .intervalTimer: "cr16"
        }
    }
}

/// Identifies one block request for its whole life (submission to completion). Assigned by the
/// device from a deterministic counter, so both replicas name the same request the same way.
public typealias BlockRequestID = UInt64

/// A request a guest made of its disk.
public struct BlockRequest: Hashable, Sendable, Codable {
    public enum Kind: String, Hashable, Sendable, Codable {
        case read, write, flush, getID
    }

    public let id: BlockRequestID
    public let kind: Kind
    /// First 512-byte sector.
    public let sector: UInt64
    /// Bytes to read or write.
    public let length: Int
    /// The bytes to write (writes only).
    public let data: [UInt8]

    public init(id: BlockRequestID, kind: Kind, sector: UInt64, length: Int, data: [UInt8] = []) {
        self.id = id
        self.kind = kind
        self.sector = sector
        self.length = length
        self.data = data
    }
}

/// The outcome of a block request, as the device reports it to the guest.
public enum BlockStatus: UInt8, Hashable, Sendable, Codable {
    /// VIRTIO_BLK_S_OK.
    case ok = 0
    /// VIRTIO_BLK_S_IOERR: the request failed (or, after a failover, may not have happened) and
    /// the driver should retry it.
    case ioError = 1
    /// VIRTIO_BLK_S_UNSUPP.
    case unsupported = 2
}

/// The completion of a block request.
public struct BlockCompletion: Hashable, Sendable, Codable {
    public let id: BlockRequestID
    public let status: BlockStatus
    /// The bytes read (reads and getID only).
    public let data: [UInt8]

    public init(id: BlockRequestID, status: BlockStatus, data: [UInt8] = []) {
        self.id = id
        self.status = status
        self.data = data
    }
}

/// An asynchronous input, buffered by the hypervisor and applied only at an epoch boundary,
/// the same events at the same boundary on every replica.
public enum BoundaryEvent: Hashable, Sendable, Codable {
    /// Bytes typed on the console, for the UART's receiver.
    case consoleInput([UInt8])
    /// A host disk operation finished.
    case blockCompletion(BlockCompletion)
}

/// Why a call into the environment failed. At a backup this is how divergence shows up.
public struct EnvironmentError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Everything a machine needs from outside its own deterministic state. The engine and its
/// devices call it; the hypervisor (an unreplicated run, a primary or a backup) implements it.
public protocol GuestEnvironment: AnyObject {
    /// An environment instruction executed. `proposed` is the value of the machine's own
    /// deterministic model (for example virtual time); the result is what the guest sees.
    func environmentValue(_ read: EnvironmentRead, proposed: UInt64) throws(EnvironmentError)
        -> UInt64
    /// Bytes the guest wrote to its console.
    func consoleOutput(_ bytes: [UInt8])
    /// A disk request the guest submitted. Its completion comes back later as a
    /// `BoundaryEvent.blockCompletion`.
    func submitBlockRequest(_ request: BlockRequest)
}
