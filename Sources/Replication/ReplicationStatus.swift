import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Progress of a replica for people and programs: a status line on a terminal (epoch, backup
/// lag, channel throughput) and, on request, the same as JSON in a file.
public final class ReplicationStatus: @unchecked Sendable {
    /// The JSON document written to `--stats-json`.
    public struct Snapshot: Codable, Sendable, Equatable {
        public var role: String
        public var state: String
        public var epoch: UInt64
        public var backupLag: UInt64
        public var bytesSent: UInt64
        public var bytesReceived: UInt64
        public var sendBytesPerSecond: Double
        public var elapsedSeconds: Double
        public var status: Int32?
        /// When each state was entered (seconds since 1970), e.g. when a backup went "live".
        public var stateEnteredAt: [String: Double] = [:]
        public var finalDigest: String?
        public var primaryFinalDigest: String?
    }

    private let lock = NSLock()
    private let statsPath: String?
    private let interactive: Bool
    private let start = Date()
    private var snapshot: Snapshot
    private var lastWrite = Date.distantPast

    /// - Parameter statusLine: whether to draw the status line (only ever on a terminal).
    public init(role: String, statsPath: String?, statusLine: Bool = true) {
        self.statsPath = statsPath
        interactive = statusLine && isatty(STDERR_FILENO) != 0
        snapshot = Snapshot(role: role, state: "starting", epoch: 0, backupLag: 0, bytesSent: 0,
                            bytesReceived: 0, sendBytesPerSecond: 0, elapsedSeconds: 0)
    }

    /// Records progress; the display and file are refreshed at most five times a second.
    public func update(epoch: UInt64, lag: UInt64? = nil, connection: PeerConnection?, state: String? = nil) {
        lock.lock()
        defer { lock.unlock() }
        snapshot.epoch = epoch
        if let state { snapshot.state = state }
        if let connection {
            let stats = connection.statistics
            snapshot.bytesSent = stats.sent
            snapshot.bytesReceived = stats.received
            snapshot.backupLag = lag ?? epoch.saturatingSubtract(stats.peerExecutedEpochs)
        } else if let lag {
            snapshot.backupLag = lag
        }
        let now = Date()
        if let state { snapshot.stateEnteredAt[state] = snapshot.stateEnteredAt[state] ?? now.timeIntervalSince1970 }
        guard now.timeIntervalSince(lastWrite) >= 0.2 else { return }
        lastWrite = now
        refresh(now)
    }

    /// A change of state is written at once.
    public func set(state: String) {
        lock.lock()
        defer { lock.unlock() }
        snapshot.state = state
        let now = Date()
        snapshot.stateEnteredAt[state] = snapshot.stateEnteredAt[state] ?? now.timeIntervalSince1970
        refresh(now)
    }

    /// The final figures: written whatever the rate limit.
    public func finish(state: String, status: Int32?, finalDigest: String?, primaryFinalDigest: String? = nil) {
        lock.lock()
        defer { lock.unlock() }
        snapshot.state = state
        snapshot.stateEnteredAt[state] = Date().timeIntervalSince1970
        snapshot.status = status
        snapshot.finalDigest = finalDigest
        snapshot.primaryFinalDigest = primaryFinalDigest
        refresh(Date())
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    /// One line on standard error, e.g. a warning.
    public func message(_ text: String) {
        lock.lock()
        defer { lock.unlock() }
        let prefix = interactive ? "\r\u{1B}[K" : ""
        FileHandle.standardError.write(Data("\(prefix)lockstep \(snapshot.role): \(text)\n".utf8))
    }

    private func refresh(_ now: Date) {
        snapshot.elapsedSeconds = now.timeIntervalSince(start)
        snapshot.sendBytesPerSecond = snapshot.elapsedSeconds > 0
            ? Double(snapshot.bytesSent) / snapshot.elapsedSeconds : 0
        if interactive {
            let line = String(format: "\r\u{1B}[K[%@ %@] epoch %llu  lag %llu  tx %.1f KB/s  rx %.1f KB/s",
                              snapshot.role, snapshot.state, snapshot.epoch, snapshot.backupLag,
                              snapshot.sendBytesPerSecond / 1024,
                              Double(snapshot.bytesReceived) / max(snapshot.elapsedSeconds, 1e-9) / 1024)
            FileHandle.standardError.write(Data(line.utf8))
        }
        if let statsPath {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            if let data = try? encoder.encode(snapshot) {
                try? data.write(to: URL(fileURLWithPath: statsPath), options: .atomic)
            }
        }
    }
}

extension UInt64 {
    func saturatingSubtract(_ other: UInt64) -> UInt64 { self > other ? self - other : 0 }
}
