import Foundation
import Hypervisor
import MachineCore
import NIOCore
import NIOPosix
import Testing

@testable import Replication

/// A primary and a backup with real machines, in this process, over real loopback TCP
/// (optionally through a proxy that damages the stream).
struct InProcessPair {
    struct Side {
        let outcome: Result<RunOutcome, any Error>
        let output: String
    }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static func guest(_ arch: String, _ name: String) -> String {
        root.appendingPathComponent("guests/build/\(arch)/\(name).elf").path
    }

    static func hasGuest(_ arch: String, _ name: String) -> Bool {
        FileManager.default.fileExists(atPath: guest(arch, name))
    }

    /// Runs `options` replicated, each replica built by `runReplica` exactly as `lockstep primary`
    /// and `lockstep backup` build theirs. `primaryConsole` replaces the primary's console (for a
    /// test that types as the guest answers); `damage` may put a proxy between the two; `tamper`
    /// may change the backup's machine before it starts; `faults` is the primary's test seam.
    static func run(_ options: RunOptions, input: String = "", primaryConsole: ConsoleCapture? = nil,
                    digestEvery: UInt64 = 0, timeoutMilliseconds: Int = 2000, damage: ProxyDamage? = nil,
                    tamper: (@Sendable (any Machine) throws -> Void)? = nil,
                    faults: FaultInjection? = nil) throws -> (primary: Side, backup: Side)
    {
        let setup = try GuestSetup(options)
        var settings = ReplicationSettings(arbiterDirectory: FileManager.default.temporaryDirectory.path)
        settings.digestInterval = digestEvery
        settings.timeoutMilliseconds = timeoutMilliseconds
        let network = ReplicationNetwork()
        defer { network.shutdown() }
        let timing = ConnectionTiming(timeoutMilliseconds: settings.timeoutMilliseconds)
        let key = ReplicationKey.generate()
        let session = (0..<16).map { _ in UInt8.random(in: 0...255) }
        let primaryWatchdog = MachineWatchdog(), backupWatchdog = MachineWatchdog()
        let listener = try network.listen(
            on: Endpoint(host: "127.0.0.1", port: 0), timing: timing,
            credentials: .init(key: key, identity: ReplicaIdentity(setup: setup), watchdog: primaryWatchdog),
            session: session) { _ in }
        defer { listener.close() }
        var port = listener.port
        var proxy: DamagingProxy?
        if let damage {
            proxy = try DamagingProxy(group: network.group, target: port, damage: damage)
            port = proxy!.port
        }
        defer { proxy?.close() }
        let arbiter = Arbiter(directory: settings.arbiterDirectory, session: session)
        defer { arbiter.release() }
        let frozenSettings = settings
        let backupBox = ResultBox<Side>()
        let connectPort = port
        DedicatedThread.start(name: "test-backup") {
            let console = ConsoleCapture(input: input)
            do {
                let connection = try network.connect(
                    to: Endpoint(host: "127.0.0.1", port: connectPort), timing: timing,
                    credentials: .init(key: key, identity: ReplicaIdentity(setup: setup), watchdog: backupWatchdog),
                    until: Date(timeIntervalSinceNow: 3))
                let context = ReplicaContext(
                    setup: setup, settings: frozenSettings,
                    status: ReplicationStatus(role: .backup, statsPath: nil, statusLine: false),
                    watchdog: backupWatchdog, console: console.console,
                    disk: DiskHandoff(try setup.openDisk(sharing: .pair(token: connection.session))),
                    makeMachine: { setup, environment in
                        let machine = try MachineFactory.make(setup, environment: environment)
                        try tamper?(machine)
                        return machine
                    })
                let outcome = Result {
                    try runReplica(.backup, connection: connection,
                                   arbiter: Arbiter(directory: frozenSettings.arbiterDirectory, session: connection.session),
                                   context: context).run
                }
                connection.close()
                backupBox.put(Side(outcome: outcome, output: console.finish()))
            } catch {
                // The handshake failed: the primary would wait for another backup.
                listener.close()
                backupBox.put(Side(outcome: .failure(error), output: console.finish()))
            }
        }
        guard let connection = listener.accept(until: Date(timeIntervalSinceNow: 10)) else {
            let backup = backupBox.take()
            return (Side(outcome: .failure(ReplicationError.handshakeFailed("no backup joined")), output: ""), backup)
        }
        let primary = DedicatedThread.run(name: "test-primary") { () -> Side in
            let console = primaryConsole ?? ConsoleCapture(input: input)
            let outcome = Result {
                let context = ReplicaContext(
                    setup: setup, settings: frozenSettings,
                    status: ReplicationStatus(role: .primary, statsPath: nil, statusLine: false),
                    watchdog: primaryWatchdog, console: console.console,
                    disk: DiskHandoff(try setup.openDisk(sharing: .pair(token: session))), faults: faults)
                return try runReplica(.primary, connection: connection, arbiter: arbiter, context: context).run
            }
            connection.close()
            return Side(outcome: outcome, output: console.finish())
        }
        return (primary, backupBox.take())
    }

    /// An unreplicated run of the same guest, for reference.
    static func reference(_ options: RunOptions, input: String = "") throws -> Side {
        DedicatedThread.run(name: "test-reference") { () -> Side in
            let console = ConsoleCapture(input: input)
            do {
                let setup = try GuestSetup(options)
                let environment = LocalEnvironment(host: HostIO(console: console.console, disk: try setup.openDisk()))
                let machine = try MachineFactory.make(setup, environment: environment)
                let session = LocalSession(machine: machine, environment: environment, epochLength: setup.epochLength,
                                           timing: BoundaryTiming(mode: options.clockMode))
                let outcome = Result { try session.run() }
                return Side(outcome: outcome, output: console.finish())
            } catch {
                return Side(outcome: .failure(error), output: console.finish())
            }
        }
    }
}

/// A host console over pipes: `input` is typed at once (and input closed, unless `interactive`),
/// output is collected.
final class ConsoleCapture: @unchecked Sendable {
    let console: HostConsole
    private let output = Pipe()
    private let input = Pipe()
    private let lock = NSLock()
    private var collected = Data()
    private let done = DispatchSemaphore(value: 0)

    init(input text: String, interactive: Bool = false) {
        console = HostConsole(input: input.fileHandleForReading, output: output.fileHandleForWriting)
        type(text)
        if !interactive { closeInput() }
        let reader = output.fileHandleForReading
        Thread.detachNewThread { [self] in
            while true {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                lock.withLock { collected.append(chunk) }
            }
            done.signal()
        }
    }

    /// Types `text` on the console.
    func type(_ text: String) { try? input.fileHandleForWriting.write(contentsOf: Data(text.utf8)) }

    /// Closes console input (end of file).
    func closeInput() { try? input.fileHandleForWriting.close() }

    /// Whether the output so far contains `text`, waiting up to `seconds` for it.
    func waitForOutput(containing text: String, seconds: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while Date() < deadline {
            if lock.withLock({ String(decoding: collected, as: UTF8.self).contains(text) }) { return true }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return false
    }

    /// Everything written, once the writer is closed.
    func finish() -> String {
        try? output.fileHandleForWriting.close()
        done.wait()
        return lock.withLock { String(decoding: collected, as: UTF8.self) }
    }
}

/// What the proxy does to the primary-to-backup stream.
enum ProxyDamage: Sendable {
    /// Flip one bit of the byte at this offset.
    case flipBit(atOffset: Int)
    /// Close both connections once this many bytes have passed.
    case cut(afterBytes: Int)
}

/// A TCP proxy from the backup to the primary that damages the primary's stream.
final class DamagingProxy: @unchecked Sendable {
    let server: Channel
    var port: Int { server.localAddress?.port ?? 0 }

    init(group: EventLoopGroup, target: Int, damage: ProxyDamage) throws {
        server = try ServerBootstrap(group: group)
            .childChannelInitializer { inbound in
                ClientBootstrap(group: inbound.eventLoop)
                    .connect(host: "127.0.0.1", port: target)
                    .flatMap { outbound in
                        inbound.eventLoop.makeCompletedFuture {
                            try inbound.pipeline.syncOperations.addHandler(Relay(peer: outbound, damage: nil))
                            try outbound.pipeline.syncOperations.addHandler(Relay(peer: inbound, damage: damage))
                        }
                    }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    func close() { server.close(promise: nil) }

    /// Copies bytes to the peer channel, damaging them on the way if asked.
    final class Relay: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let peer: Channel
        let damage: ProxyDamage?
        var passed = 0

        init(peer: Channel, damage: ProxyDamage?) {
            self.peer = peer
            self.damage = damage
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            var bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
            switch damage {
            case .flipBit(let offset)?:
                if offset >= passed && offset < passed + bytes.count { bytes[offset - passed] ^= 0x10 }
            case .cut(let limit)?:
                if passed + bytes.count >= limit {
                    let keep = max(0, limit - passed)
                    peer.writeAndFlush(peer.allocator.buffer(bytes: Array(bytes.prefix(keep)))).whenComplete { [peer] _ in
                        peer.close(promise: nil)
                    }
                    context.close(promise: nil)
                    passed += bytes.count
                    return
                }
            case nil:
                break
            }
            passed += bytes.count
            peer.writeAndFlush(peer.allocator.buffer(bytes: bytes), promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) { peer.close(promise: nil) }
        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    }
}
