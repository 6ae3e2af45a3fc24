import Foundation

/// A machine's state at an epoch boundary, everything but RAM: what `Machine.captureState()`
/// returns and `Machine.restoreState(_:)` takes. `MachineSnapshot` stores it with RAM, the
/// identity of the image and configuration, and the host's side of the boundary.
public struct MachineState: Equatable, Sendable {
    /// The guest's instruction set (the engine that encoded `processor`).
    public var architecture: GuestArchitecture
    /// The epoch clock `progress` counts with.
    public var epochClock: EpochClock
    /// `Machine.progress`.
    public var progress: UInt64
    /// The virtual clock: the time set at the last boundary and the progress it was set at.
    public var clockBaseTime: VirtualTime
    public var clockBaseProgress: UInt64
    /// The CPU in the engine's own encoding (x86: the KVM vCPU state and the engine's boundary
    /// fields; PA-RISC: the emulator's registers, queues, interrupt and timer state).
    public var processor: [UInt8]
    /// Each device's state, by the device's name in the machine.
    public var devices: [DeviceState]
    /// `Machine.stateDigest()` at capture: a restore must arrive at the same digest.
    public var digest: StateDigest

    public init(architecture: GuestArchitecture, epochClock: EpochClock, progress: UInt64,
                clockBaseTime: VirtualTime, clockBaseProgress: UInt64, processor: [UInt8],
                devices: [DeviceState], digest: StateDigest)
    {
        self.architecture = architecture
        self.epochClock = epochClock
        self.progress = progress
        self.clockBaseTime = clockBaseTime
        self.clockBaseProgress = clockBaseProgress
        self.processor = processor
        self.devices = devices
        self.digest = digest
    }

    /// The encoded state of the device named `name`, which must be present exactly once.
    public func device(_ name: String) throws(SnapshotError) -> [UInt8] {
        let matches = devices.filter { $0.name == name }
        guard matches.count == 1 else {
            throw .malformed(matches.isEmpty ? "the \(name) device's state is missing"
                                             : "the \(name) device's state appears \(matches.count) times")
        }
        return matches[0].bytes
    }

    /// Refuses devices other than `names` (a snapshot of a differently built machine).
    public func checkDevices(are names: Set<String>) throws(SnapshotError) {
        for device in devices where !names.contains(device.name) {
            throw .malformed("a state for a device this machine does not have (\(device.name.prefix(40)))")
        }
    }
}

/// One device's state, encoded as the device's `State` in sorted-key JSON (the same encoding
/// the state digest hashes).
public struct DeviceState: Equatable, Sendable {
    public var name: String
    public var bytes: [UInt8]

    public init(name: String, bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }

    /// `value` in the deterministic encoding: sorted-key JSON.
    public static func encoding<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Encoding plain Codable structs of integers, booleans, strings and arrays cannot fail.
        return (try? Array(encoder.encode(value))) ?? []
    }

    /// Decodes `bytes` (hostile: from a file or the network) as a `T`, or says in one line why
    /// not. The decoder only builds what the bytes describe, and the bytes are bounded by the
    /// snapshot record that carried them.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String)
        throws(SnapshotError) -> T
    {
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            throw .malformed("the \(what) state cannot be decoded (\(Self.reason(error)))")
        }
    }

    /// A short reason for a decoding error (never the bytes themselves).
    private static func reason(_ error: any Error) -> String {
        switch error {
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
             DecodingError.keyNotFound(_, let context), DecodingError.dataCorrupted(let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? "not valid JSON for it" : "bad field \(path.prefix(80))"
        default:
            return "not valid JSON for it"
        }
    }
}

extension MachineState {
    /// The state in the encoding of a snapshot's machine record (also what a live state transfer
    /// sends).
    public var encoded: [UInt8] { MachineSnapshot.encode(self).bytes }

    /// Decodes `bytes` (hostile: from a file or the network), checking every field.
    public init(encoded bytes: [UInt8]) throws(SnapshotError) {
        self = try SnapshotReader.decodeMachine(bytes)
    }
}
