import Foundation
import Logging

/// The opening exchange: each side sends `hello` and checks the other's. A peer running a
/// different guest image or configuration is refused with the reason, and both sides stop.
public enum Handshake {
    /// The primary's side: accepts connections until one is a valid backup. Connections that are
    /// not Lockstep peers (bad magic, no hello in time) are dropped and logged; a Lockstep backup
    /// with a different image or configuration is refused, and that ends the primary too.
    public static func acceptBackup(on listener: ReplicationListener, identity: ReplicaIdentity,
                                    session: [UInt8], timeout: TimeInterval,
                                    log: (String) -> Void) throws -> PeerConnection
    {
        while true {
            guard let connection = listener.accept() else { continue }
            connection.send(.hello(identity.hello(role: .primary, session: session)))
            connection.flush()
            switch connection.receive(until: Date(timeIntervalSinceNow: timeout)) {
            case .success(.hello(let peer)):
                if let reason = identity.refusal(of: peer, expecting: .backup) {
                    connection.send(.refuse(reason))
                    connection.close()
                    throw ReplicationError.refused(reason)
                }
                listener.close()
                connection.startMonitoring()
                return connection
            case .success(.refuse(let reason)):
                connection.close()
                throw ReplicationError.refused("the backup refused this primary: \(reason)")
            case .success(let other):
                log("dropped a connection that opened with a \(other.type) message")
                connection.close()
            case .failure(let reason):
                log("dropped a connection: \(reason)")
                connection.close()
            case nil:
                log("dropped a connection that sent no hello within \(Int(timeout)) s")
                connection.close()
            }
        }
    }

    /// The backup's side: exchanges hellos with the primary and returns the pair's session.
    public static func joinPrimary(_ connection: PeerConnection, identity: ReplicaIdentity,
                                   timeout: TimeInterval) throws -> [UInt8]
    {
        connection.send(.hello(identity.hello(role: .backup, session: [])))
        connection.flush()
        switch connection.receive(until: Date(timeIntervalSinceNow: timeout)) {
        case .success(.hello(let peer)):
            if let reason = identity.refusal(of: peer, expecting: .primary) {
                connection.send(.refuse(reason))
                connection.close()
                throw ReplicationError.refused(reason)
            }
            connection.startMonitoring()
            return peer.session
        case .success(.refuse(let reason)):
            connection.close()
            throw ReplicationError.refused("the primary refused this backup: \(reason)")
        case .success(let other):
            connection.close()
            throw ReplicationError.handshakeFailed("the primary opened with a \(other.type) message")
        case .failure(let reason):
            throw ReplicationError.handshakeFailed("\(reason)")
        case nil:
            connection.close()
            throw ReplicationError.handshakeFailed("no hello from the primary within \(Int(timeout)) s")
        }
    }
}
