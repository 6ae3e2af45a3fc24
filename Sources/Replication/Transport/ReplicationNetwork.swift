import Foundation
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

    /// Listens on `endpoint` (port 0 picks a free port).
    public func listen(on endpoint: Endpoint, timing: ConnectionTiming) throws -> ReplicationListener {
        let listener = ReplicationListener()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                let connection = PeerConnection(channel: channel, timing: timing, acknowledges: false)
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(connection.makeHandler())
                    listener.accepted(connection)
                }
            }
        let server = try bootstrap.bind(host: endpoint.host, port: endpoint.port).wait()
        listener.server = server
        return listener
    }

    /// Connects to a primary at `endpoint`, retrying until `deadline` (the primary may still be
    /// starting).
    public func connect(to endpoint: Endpoint, timing: ConnectionTiming, until deadline: Date) throws
        -> PeerConnection
    {
        while true {
            let box = ConnectionBox()
            let bootstrap = ClientBootstrap(group: group)
                .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(2))
                .channelInitializer { channel in
                    let connection = PeerConnection(channel: channel, timing: timing, acknowledges: true)
                    box.connection = connection
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(connection.makeHandler())
                    }
                }
            do {
                _ = try bootstrap.connect(host: endpoint.host, port: endpoint.port).wait()
                return box.connection!
            } catch {
                if Date() >= deadline { throw error }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
    }
}

/// Hands the connection made in a channel initializer back to the connecting thread.
private final class ConnectionBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: PeerConnection?
    var connection: PeerConnection? {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}

/// A listening socket that hands out incoming connections in order.
public final class ReplicationListener: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [PeerConnection] = []
    private var closed = false
    fileprivate var server: Channel?

    /// The port actually bound (useful when listening on port 0).
    public var port: Int { server?.localAddress?.port ?? 0 }

    fileprivate func accepted(_ connection: PeerConnection) {
        condition.lock()
        let refused = closed
        if !refused { queue.append(connection) }
        condition.broadcast()
        condition.unlock()
        if refused { connection.close() }
    }

    /// The next incoming connection, waiting until `deadline` (nil: forever).
    public func accept(until deadline: Date? = nil) -> PeerConnection? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty {
            if let deadline {
                if !condition.wait(until: deadline) { return nil }
            } else {
                condition.wait()
            }
        }
        return queue.removeFirst()
    }

    /// Stops listening, and closes the connections that arrived but were never taken by
    /// `accept`. Connections already taken are the caller's.
    public func close() {
        condition.lock()
        closed = true
        let untaken = queue
        queue.removeAll()
        condition.unlock()
        server?.close(promise: nil)
        for connection in untaken { connection.close() }
    }
}
