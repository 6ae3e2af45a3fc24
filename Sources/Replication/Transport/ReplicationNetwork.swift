import Foundation
import Hypervisor
import NIOCore
import NIOPosix

/// A host and port, as given on the command line (`HOST:PORT`, `[V6]:PORT`).
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT`; returns nil when it is not of that form or the port is out of range.
    public init?(_ text: String) {
        var host: Substring
        let portText: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else { return nil }
        self.host = String(host)
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// The event loop that carries one process's replication traffic (one thread).
public final class ReplicationNetwork: Sendable {
    public let group: MultiThreadedEventLoopGroup

    public init() { group = MultiThreadedEventLoopGroup(numberOfThreads: 1) }

    public func shutdown() { try? group.syncShutdownGracefully() }

    /// What a replica needs to authenticate and identify itself on a connection.
    public struct Credentials: Sendable {
        public var key: ReplicationKey
        public var identity: ReplicaIdentity
        /// Observed by each connection: a stuck machine thread makes it go silent.
        public var watchdog: MachineWatchdog?
        /// Backup: proves that the primary's arbiter and disk are this replica's too, given the
        /// session learnt in the handshake (nil: shared; otherwise the refusal). Called off the
        /// event loop, before ready is sent; nil: no proof (in-process tests).
        public var verifySharing: (@Sendable (_ session: [UInt8]) -> String?)?

        public init(key: ReplicationKey, identity: ReplicaIdentity, watchdog: MachineWatchdog? = nil,
                    verifySharing: (@Sendable (_ session: [UInt8]) -> String?)? = nil)
        {
            self.key = key
            self.identity = identity
            self.watchdog = watchdog
            self.verifySharing = verifySharing
        }
    }

    /// Listens on `endpoint` (port 0 picks a free port) for backups of the pair named `session`.
    /// Every connection runs its handshake on the event loop, at most `maximumHandshakes` at a
    /// time and each within `timing.handshake`; a connection that fails it is logged (one line,
    /// through `log`) and closed, and the listener goes on.
    public func listen(on endpoint: Endpoint, timing: ConnectionTiming, credentials: Credentials, session: [UInt8],
                       log: @escaping @Sendable (String) -> Void) throws -> ReplicationListener
    {
        let listener = ReplicationListener(log: log, session: session)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.autoRead, value: false)
            .childChannelOption(ChannelOptions.writeBufferWaterMark, value: .init(low: 128 << 10, high: 256 << 10))
            .childChannelInitializer { channel in
                let address = SealedChannelHandler.describe(channel.remoteAddress)
                guard listener.beginHandshake() else {
                    // Turned away at once: the connection costs nothing more.
                    listener.refused(address, .busy)
                    channel.close(promise: nil)
                    return channel.eventLoop.makeSucceededVoidFuture()
                }
                let machine = HandshakeStateMachine(role: .primary, key: credentials.key, identity: credentials.identity,
                                                    session: listener.session)
                let handler = SealedChannelHandler(handshake: machine, timing: timing, watchdog: credentials.watchdog) { outcome in
                    listener.handshakeEnded(outcome, address: address)
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let server = try bootstrap.bind(host: endpoint.host, port: endpoint.port).wait()
        listener.server = server
        return listener
    }

    /// Connects to a primary at `endpoint` and runs the handshake, connecting again after a
    /// failure that says nothing about the primary (refused or broken connection, timeout, busy)
    /// until `deadline`. Throws `HandshakeFailure` (or the last connection error) otherwise.
    /// With `giveUpAfter`, throws `PrimaryUnreachable` once that long has passed without any
    /// attempt reaching a live primary (only a primary's "busy" shows it alive without a
    /// handshake): the backup then asks the arbiter whether its primary died before it joined.
    public func connect(to endpoint: Endpoint, timing: ConnectionTiming, credentials: Credentials,
                        purpose: JoinPurpose = .replicateFromBoot, until deadline: Date,
                        giveUpAfter silence: TimeInterval? = nil,
                        waiting: ((any Error) -> Void)? = nil) throws -> ReplicationConnection
    {
        var told = false
        var lastContact = Date()
        while true {
            let box = ResultBox<Result<ReplicationConnection, HandshakeFailure>>()
            let bootstrap = ClientBootstrap(group: group)
                .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .channelOption(ChannelOptions.autoRead, value: false)
                .channelOption(ChannelOptions.writeBufferWaterMark, value: .init(low: 128 << 10, high: 256 << 10))
                .connectTimeout(.seconds(2))
                .channelInitializer { channel in
                    let machine = HandshakeStateMachine(role: .backup, key: credentials.key, identity: credentials.identity,
                                                        purpose: purpose,
                                                        proof: credentials.verifySharing == nil ? .none : .byCaller)
                    let handler = SealedChannelHandler(handshake: machine, timing: timing, watchdog: credentials.watchdog,
                                                       verifySharing: credentials.verifySharing) {
                        box.put($0)
                    }
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                }
            let failure: any Error
            do {
                _ = try bootstrap.connect(host: endpoint.host, port: endpoint.port).wait()
                switch box.take() {
                case .success(let connection): return connection
                case .failure(let handshake):
                    guard handshake.isTransient else { throw handshake }
                    failure = handshake
                }
            } catch let handshake as HandshakeFailure {
                throw handshake
            } catch {
                failure = error
            }
            if Date() >= deadline || NetworkErrorText.isPermanent(failure) { throw failure }
            if let handshake = failure as? HandshakeFailure, handshake == .busy || handshake == .alert(.busy) {
                lastContact = Date()
            }
            if let silence, Date().timeIntervalSince(lastContact) >= silence {
                throw PrimaryUnreachable(endpoint: endpoint, seconds: silence, lastFailure: "\(failure)")
            }
            // The first failure that will be retried is told (a backup started before its primary).
            if !told {
                told = true
                waiting?(failure)
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }
}

/// No attempt to connect reached a live primary for a while (`connect`'s `giveUpAfter`).
public struct PrimaryUnreachable: Error, Sendable, CustomStringConvertible {
    public let endpoint: Endpoint
    public let seconds: TimeInterval
    public let lastFailure: String

    public var description: String {
        "the primary at \(endpoint) has not answered for \(String(format: "%.1f", seconds)) s (\(lastFailure))"
    }
}

/// A listening socket that hands out connections whose handshake succeeded, in order.
public final class ReplicationListener: @unchecked Sendable {
    /// Handshakes that may run at once; more connections are refused at once ("busy").
    public static let maximumHandshakes = 8

    private let condition = NSCondition()
    private let log: @Sendable (String) -> Void
    // Guarded by `condition`.
    private var queue: [ReplicationConnection] = []
    private var closed = false
    private var handshakes = 0
    private var throttle = LogThrottle()
    private var currentSession: [UInt8]
    fileprivate var server: Channel?

    init(log: @escaping @Sendable (String) -> Void, session: [UInt8]) {
        self.log = log
        currentSession = session
    }

    /// The session new connections learn in their handshake (a replica that leads a new pair
    /// after a failover changes it).
    public var session: [UInt8] {
        get { condition.withLock { currentSession } }
        set { condition.withLock { currentSession = newValue } }
    }

    /// Whether a connection that finished its handshake waits to be taken.
    public var hasPending: Bool { condition.withLock { !queue.isEmpty } }

    /// The port actually bound (useful when listening on port 0).
    public var port: Int { server?.localAddress?.port ?? 0 }

    fileprivate func beginHandshake() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !closed, handshakes < Self.maximumHandshakes else { return false }
        handshakes += 1
        return true
    }

    fileprivate func handshakeEnded(_ outcome: Result<ReplicationConnection, HandshakeFailure>, address: String) {
        condition.lock()
        handshakes -= 1
        switch outcome {
        case .success(let connection):
            if closed {
                condition.unlock()
                connection.close(refusal: Self.alreadyReplicating)
                return
            }
            queue.append(connection)
            condition.broadcast()
            condition.unlock()
        case .failure(let failure):
            condition.unlock()
            refused(address, failure)
        }
    }

    /// Logs a refused connection; a flood of them is summarised instead of printed line by line.
    fileprivate func refused(_ address: String, _ failure: HandshakeFailure) {
        let line = condition.withLock { throttle.admit(now: NIODeadline.now().uptimeNanoseconds) }
        guard let line else { return }
        let suppressed = line > 0 ? " (\(line) more refused connections not shown)" : ""
        log("refused a connection from \(address): \(failure)\(suppressed)")
    }

    /// The next connection whose handshake succeeded, waiting until `deadline` (nil: forever).
    /// Nil when the deadline passed or the listener was closed.
    public func accept(until deadline: Date? = nil) -> ReplicationConnection? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && !closed {
            if let deadline {
                if !condition.wait(until: deadline) { return nil }
            } else {
                condition.wait()
            }
        }
        return queue.isEmpty ? nil : queue.removeFirst()
    }

    /// What a backup that joined too late is told: the primary is alive, and it must not take
    /// over (a bare close would look like the primary's death).
    static let alreadyReplicating = "this primary already replicates to another backup"

    /// Stops listening, and refuses the connections that arrived but were never taken.
    public func close() {
        condition.lock()
        closed = true
        let untaken = queue
        queue.removeAll()
        condition.broadcast()
        condition.unlock()
        server?.close(promise: nil)
        for connection in untaken { connection.close(refusal: Self.alreadyReplicating) }
    }
}

/// At most 10 log lines per second; the number of lines left out is reported with the next one.
struct LogThrottle: Sendable {
    private var windowStart: UInt64 = 0
    private var inWindow = 0
    private var suppressed = 0

    /// nil: leave this line out; otherwise how many were left out before it.
    mutating func admit(now: UInt64) -> Int? {
        if now &- windowStart >= 1_000_000_000 {
            windowStart = now
            inWindow = 0
        }
        guard inWindow < 10 else {
            suppressed += 1
            return nil
        }
        inWindow += 1
        defer { suppressed = 0 }
        return suppressed
    }
}
