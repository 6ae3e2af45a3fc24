import Foundation
import Hypervisor
import NIOCore
import NIOPosix
import Replication
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Real `lockstep primary` and `lockstep backup` processes, and the network peers the tests put
/// against them: raw TCP clients, fake replicas speaking the protocol with (or without) the key,
/// and proxies that record, damage or throttle a real pair's connection.
enum Replicas {
    /// A new key file (mode 0600) in the scratch directory.
    static func keyFile() throws -> String {
        let path = Scratch.path("key-\(UInt32.random(in: 0...UInt32.max))")
        try ReplicationKey.generate().write(to: path)
        return path
    }

    /// The PA-RISC guest most of these tests replicate.
    static let arch = "parisc"

    static var available: Bool { Lockstep.executable != nil && Lockstep.hasGuest(arch, "hello") && Lockstep.hasGuest(arch, "cpu") }

    /// The identity a replica of `guest` with default options presents (what a fake peer needs).
    static func identity(_ guest: String, cmdline: String = "", epochLength: UInt64? = nil) throws -> ReplicaIdentity {
        ReplicaIdentity(setup: try GuestSetup(RunOptions(guestPath: Lockstep.guest(arch, guest), commandLine: cmdline,
                                                         epochLength: epochLength)))
    }

    /// `lockstep primary` listening on a free loopback port; killed if still running when the
    /// test lets go of it (a failed expectation must not leave it behind).
    final class Primary {
        let started: Lockstep.Started
        let port: Int
        let stats: String
        var process: Process { started.process }

        init(guest: String, cmdline: String = "", key: String, timeout: Int = 1000, extra: [String] = []) throws {
            let executable = try #require(Lockstep.executable)
            let portFile = Scratch.path("port-\(UInt32.random(in: 0...UInt32.max))")
            stats = Scratch.path("primary-\(UInt32.random(in: 0...UInt32.max)).json")
            started = try Lockstep.start(executable, ["primary", "--listen", "127.0.0.1:0", "--port-file", portFile,
                                                      "--key-file", key, "--timeout", "\(timeout)", "--no-status-line",
                                                      "--stats-json", stats] + extra
                                         + ["--cmdline", cmdline, Lockstep.guest(Replicas.arch, guest)])
            var port: Int?
            let deadline = Date(timeIntervalSinceNow: 30)
            while port == nil && Date() < deadline && started.process.isRunning {
                port = (try? String(contentsOfFile: portFile, encoding: .utf8))?.split(separator: "\n").first.flatMap { Int($0) }
                if port == nil { Thread.sleep(forTimeInterval: 0.01) }
            }
            self.port = try #require(port, "the primary did not start listening: \(started.stderr.snapshot())")
        }

        deinit { Replicas.wait(started.process, seconds: 0) }

        /// Lines the primary has logged so far.
        var log: [String] { started.stderr.snapshot().split(separator: "\n").map(String.init) }

        /// Waits (up to `seconds`) until the primary has logged `count` refused connections.
        func waitForRefusals(_ count: Int, seconds: Double = 10) -> Bool {
            let deadline = Date(timeIntervalSinceNow: seconds)
            while Date() < deadline {
                if log.filter({ $0.contains("refused a connection from") }).count >= count { return true }
                Thread.sleep(forTimeInterval: 0.01)
            }
            return false
        }
    }

    /// `lockstep backup` following the primary at `port`; killed if still running when the test
    /// lets go of it.
    final class Backup {
        let started: Lockstep.Started
        var process: Process { started.process }
        var stdout: DataCollector { started.stdout }
        var stderr: DataCollector { started.stderr }

        init(port: Int, guest: String, cmdline: String = "", key: String, timeout: Int = 1000, extra: [String] = []) throws {
            let executable = try #require(Lockstep.executable)
            started = try Lockstep.start(executable, ["backup", "--connect", "127.0.0.1:\(port)", "--key-file", key,
                                                      "--timeout", "\(timeout)", "--no-status-line", "--connect-timeout", "5"] + extra
                                         + ["--cmdline", cmdline, Lockstep.guest(arch, guest)])
        }

        deinit { Replicas.wait(started.process, seconds: 0) }
    }

    static func backup(port: Int, guest: String, cmdline: String = "", key: String, timeout: Int = 1000,
                       extra: [String] = []) throws -> Backup
    {
        try Backup(port: port, guest: guest, cmdline: cmdline, key: key, timeout: timeout, extra: extra)
    }

    /// What a real primary does before it listens, for a fake one: publishes the proof that the
    /// backup shares its arbiter (the file arbiter in the temporary directory).
    static func publishProof(session: [UInt8], key: String) throws -> Arbiter {
        let arbiter = Arbiter(directory: FileManager.default.temporaryDirectory.path, session: session)
        try arbiter.publish(nonce: SharingProof.arbiterNonce(key: try ReplicationKey(contentsOf: key), session: session))
        return arbiter
    }

    /// Waits for a process to exit, killing it after `seconds`; returns whether it exited by itself.
    @discardableResult
    static func wait(_ process: Process, seconds: Double = 60) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        let exited = !process.isRunning
        if !exited { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return exited
    }

    /// The peak resident set size of a running process (VmHWM), in bytes.
    static func peakRSS(_ pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count >= 2, let kB = Int(fields[1]) { return kB * 1024 }
        }
        return nil
    }

    /// The types of the frames in `bytes` (nil if they do not parse as frames).
    static func frameTypes(_ bytes: [UInt8]) -> [FrameType]? {
        var reader = FrameReader()
        reader.append(contentsOf: bytes)
        var types: [FrameType] = []
        while let frame = try? reader.next() { types.append(frame.type) }
        return reader.hasPartialFrame ? nil : types
    }
}

/// Samples a process's peak resident set size (VmHWM) every 2 ms until it exits or is stopped,
/// so the peak is known even when the process ends right after it.
final class PeakSampler: @unchecked Sendable {
    private let lock = NSLock()
    private var peak = 0
    private var running = true
    private let done = DispatchSemaphore(value: 0)

    init(_ pid: Int32) {
        Thread.detachNewThread { [self] in
            while lock.withLock({ running }), let rss = Replicas.peakRSS(pid) {
                lock.withLock { peak = max(peak, rss) }
                usleep(2000)
            }
            done.signal()
        }
    }

    /// The peak so far.
    var value: Int { lock.withLock { peak } }

    /// Stops sampling; returns the peak.
    func stop() -> Int {
        lock.withLock { running = false }
        done.wait()
        return value
    }
}

/// Bytes collected from a connection, thread-safe.
final class LockedBytes: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [UInt8] = []
    func append(_ bytes: [UInt8]) { lock.withLock { storage += bytes } }
    var bytes: [UInt8] { lock.withLock { storage } }
}

/// A raw TCP client: sends what it is told and keeps everything it receives.
final class RawPeer: @unchecked Sendable {
    let channel: Channel
    let received = LockedBytes()
    private let closed = ResultBox<Bool>()

    init(group: EventLoopGroup, port: Int) throws {
        let received = self.received, closed = self.closed
        channel = try ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Collector(received: received, closed: closed))
                }
            }
            .connect(host: "127.0.0.1", port: port).wait()
    }

    func send(_ bytes: [UInt8]) { try? channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).wait() }

    /// Waits until `count` bytes arrived (or the connection closed, or `seconds` passed).
    func waitForBytes(_ count: Int, seconds: Double = 5) -> [UInt8] {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while received.bytes.count < count && channel.isActive && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
        return received.bytes
    }

    /// Whether the other side closed the connection within `seconds`.
    func waitForClose(seconds: Double = 10) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while channel.isActive && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
        return !channel.isActive
    }

    func close() { channel.close(promise: nil) }

    final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let received: LockedBytes
        let closed: ResultBox<Bool>
        init(received: LockedBytes, closed: ResultBox<Bool>) {
            self.received = received
            self.closed = closed
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            received.append(Array(unwrapInboundIn(data).readableBytesView))
        }
        func channelInactive(context: ChannelHandlerContext) { closed.put(true) }
    }
}

/// What a proxy does to the stream from the primary to the backup (the other direction is
/// copied unchanged); both directions are recorded.
enum ProxyMode: Sendable {
    case record
    /// Flip one bit of the byte at this offset of the primary's stream.
    case flipBit(atOffset: Int)
    /// At most this many bytes per second from the primary to the backup.
    case throttle(bytesPerSecond: Int)
}

/// A TCP proxy between a backup (which connects to it) and a primary.
final class PairProxy: @unchecked Sendable {
    let server: Channel
    let fromBackup = LockedBytes()
    let fromPrimary = LockedBytes()
    var port: Int { server.localAddress?.port ?? 0 }

    init(group: EventLoopGroup, primaryPort: Int, mode: ProxyMode) throws {
        let fromBackup = self.fromBackup, fromPrimary = self.fromPrimary
        server = try ServerBootstrap(group: group)
            .childChannelOption(ChannelOptions.autoRead, value: true)
            .childChannelInitializer { inbound in
                ClientBootstrap(group: inbound.eventLoop)
                    .channelOption(ChannelOptions.autoRead, value: false)
                    .connect(host: "127.0.0.1", port: primaryPort)
                    .flatMap { outbound in
                        inbound.eventLoop.makeCompletedFuture {
                            try inbound.pipeline.syncOperations.addHandler(Relay(peer: outbound, record: fromBackup, mode: nil))
                            try outbound.pipeline.syncOperations.addHandler(Relay(peer: inbound, record: fromPrimary, mode: mode))
                            outbound.read()
                        }
                    }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    func close() { server.close(promise: nil) }

    /// Copies bytes to the peer channel, recording them, damaging or throttling them if asked.
    final class Relay: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let peer: Channel
        let record: LockedBytes
        let mode: ProxyMode?
        var passed = 0
        var queue: [UInt8] = []
        var ticking = false

        init(peer: Channel, record: LockedBytes, mode: ProxyMode?) {
            self.peer = peer
            self.record = record
            self.mode = mode
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = Array(unwrapInboundIn(data).readableBytesView)
            if case .flipBit(let offset)? = mode, offset >= passed && offset < passed + bytes.count {
                bytes[offset - passed] ^= 0x10
            }
            passed += bytes.count
            record.append(bytes)
            guard case .throttle(let rate)? = mode else {
                peer.writeAndFlush(peer.allocator.buffer(bytes: bytes), promise: nil)
                return
            }
            queue += bytes
            if !ticking { tick(context: context, rate: rate) }
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            // Throttled: read on only while less than 256 KiB wait (TCP's window does the rest).
            if case .throttle? = mode, queue.count > 256 << 10 { return }
            context.read()
        }

        /// Releases rate / 100 bytes every 10 ms.
        private func tick(context: ChannelHandlerContext, rate: Int) {
            ticking = true
            let n = min(queue.count, max(1, rate / 100))
            if n > 0 {
                peer.writeAndFlush(peer.allocator.buffer(bytes: queue[0..<n]), promise: nil)
                queue.removeFirst(n)
            }
            if queue.count <= 256 << 10 { context.read() }
            guard !queue.isEmpty else {
                ticking = false
                return
            }
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .milliseconds(10)) { bound.value.0.tick(context: bound.value.1, rate: rate) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            if queue.isEmpty { peer.close(promise: nil); return }
            // Deliver what is queued first.
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .milliseconds(50)) { bound.value.drainThenClose() }
        }

        private func drainThenClose() {
            if queue.isEmpty { peer.close(promise: nil) } else {
                let bound = NIOLoopBound(self, eventLoop: peer.eventLoop)
                peer.eventLoop.scheduleTask(in: .milliseconds(50)) { bound.value.drainThenClose() }
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    }
}

/// A counter shared between threads.
final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add(_ n: Int) { lock.withLock { count += n } }
    var value: Int { lock.withLock { count } }
}
