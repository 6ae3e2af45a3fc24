import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A real, single-member etcd for a test: on loopback, on free ports, with a temporary data
/// directory; `kill()` stops it with SIGKILL as a crash would, `start()` brings it back on the
/// same ports and data, and `shutDown()` (or deinit) kills it and removes its directory.
public final class EtcdServer: @unchecked Sendable {
    /// The etcd binary (Debian's etcd-server), if installed.
    public static let binary: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let candidates = path.split(separator: ":").map { "\($0)/etcd" } + ["/usr/bin/etcd"]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// Why etcd tests cannot run here, or nil if they can.
    public static var unavailableReason: String? {
        binary == nil ? "no etcd binary on PATH (scripts/install-deps installs etcd-server)" : nil
    }

    public private(set) var clientPort = 0
    public private(set) var peerPort = 0
    public let directory: URL
    private let lock = NSLock()
    private var process: Process?

    /// The client address, HOST:PORT.
    public var address: String { "127.0.0.1:\(clientPort)" }

    /// Starts a fresh etcd; tries other ports if the chosen ones are taken.
    public init() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("lockstep-etcd-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var lastError: (any Error)?
        for _ in 0..<5 {
            clientPort = Int.random(in: 20000...45000)
            peerPort = clientPort + 10000
            do {
                try start()
                return
            } catch {
                lastError = error
                kill()
                try? FileManager.default.removeItem(at: directory.appendingPathComponent("data"))
            }
        }
        shutDown()
        throw lastError ?? EtcdServerError("etcd did not start")
    }

    deinit { shutDown() }

    /// Starts etcd (again) and waits until it serves clients (at most 20 s).
    public func start() throws {
        let log = directory.appendingPathComponent("etcd-\(clientPort).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let output = try FileHandle(forWritingTo: log)
        output.seekToEndOfFile()
        let started = Process()
        started.executableURL = URL(fileURLWithPath: try binaryPath())
        let client = "http://127.0.0.1:\(clientPort)", peer = "http://127.0.0.1:\(peerPort)"
        started.arguments = [
            "--name", "test", "--data-dir", directory.appendingPathComponent("data").path,
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "test=\(peer)",
        ]
        started.standardInput = FileHandle.nullDevice
        started.standardOutput = output
        started.standardError = output
        let offset = (try? FileManager.default.attributesOfItem(atPath: log.path)[.size] as? Int) ?? 0
        try started.run()
        lock.withLock { process = started }
        let deadline = Date(timeIntervalSinceNow: 20)
        while Date() < deadline {
            let text = (try? Data(contentsOf: log)).map { String(decoding: $0.dropFirst(offset), as: UTF8.self) } ?? ""
            if text.contains("ready to serve client requests") { return }
            if !started.isRunning {
                throw EtcdServerError("etcd exited: \(text.split(separator: "\n").suffix(3).joined(separator: " | "))")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw EtcdServerError("etcd did not become ready within 20 s")
    }

    private func binaryPath() throws -> String {
        guard let binary = Self.binary else { throw EtcdServerError(Self.unavailableReason ?? "no etcd") }
        return binary
    }

    /// Kills etcd with SIGKILL and waits for it to be gone.
    public func kill() {
        guard let running = lock.withLock({ () -> Process? in defer { process = nil }; return process }) else { return }
        if running.isRunning { Glibc.kill(running.processIdentifier, SIGKILL) }
        running.waitUntilExit()
    }

    /// Kills etcd and removes its data.
    public func shutDown() {
        kill()
        try? FileManager.default.removeItem(at: directory)
    }
}

public struct EtcdServerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
