import Foundation
import Hypervisor
import MachineCore

/// What a replica runs, as the handshake compares it: the guest image's digest and the
/// configuration that must be equal on both sides (everything but host paths).
public struct ReplicaIdentity: Sendable, Equatable {
    public let imageDigest: StateDigest
    /// The canonical configuration text.
    public let configuration: String

    /// - Parameters:
    ///   - imageBytes: the guest ELF file.
    ///   - diskSectors: the size of the disk image, if any.
    ///   - epochClock / epochLength: as resolved for the engine.
    public init(imageBytes: [UInt8], options: RunOptions, engine: EngineKind, epochClock: EpochClock,
                epochLength: UInt64, diskSectors: UInt64?)
    {
        imageDigest = StateDigest.of(imageBytes)
        configuration = [
            "engine=\(engine)",
            "memory=\(options.memorySize)",
            "cmdline=\(options.commandLine)",
            "disk-sectors=\(diskSectors.map(String.init) ?? "none")",
            "clock=\(options.clockMode.rawValue)",
            "epoch-clock=\(epochClock.rawValue)",
            "epoch-length=\(epochLength)",
        ].joined(separator: " ")
    }

    public var configurationDigest: StateDigest { StateDigest.of(Array(configuration.utf8)) }

    /// This replica's identity message.
    public func message(role: ReplicaRole, session: [UInt8]) -> IdentityMessage {
        IdentityMessage(role: role, imageDigest: imageDigest, configurationDigest: configurationDigest,
                        configuration: configuration, session: session)
    }

    /// Why `peer` may not pair with this replica, or nil if it may. The peer's text is sanitised.
    public func refusal(of peer: IdentityMessage, expecting role: ReplicaRole) -> String? {
        if peer.role != role { return "peer is a \(peer.role), expected a \(role)" }
        if peer.imageDigest != imageDigest {
            return "guest image differs (this side \(imageDigest.description.prefix(16))…, peer \(peer.imageDigest.description.prefix(16))…)"
        }
        if peer.configurationDigest != configurationDigest {
            return "configuration differs (this side: \(configuration); peer: \(PeerText.sanitized(peer.configuration, limit: 512)))"
        }
        return nil
    }
}
