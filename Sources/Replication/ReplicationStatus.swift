import Foundation
import Hypervisor
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Progress of a replica for people and programs: a status line on a terminal (epoch, backup
/// lag, channel throughput) and, on request, the same as JSON in a file.
///
/// The machine thread only stores its epoch and lag in atomic words (no lock, no clock per
/// epoch); a timer refreshes the display and the file five times a second. A change of state is
/// written at once (queued to the file's own writer, which keeps the order; `finish` waits for it).
public final class ReplicationStatus: @unchecked Sendable {
    /// The JSON document written to `--stats-json`.
    public struct Snapshot: Codable, Sendable, Equatable {
        public var role: ReplicaRole
        public var state: ReplicaState
        public var epoch: UInt64
        public var backupLag: UInt64
        /// The primary's guest time in the epochs the backup has not reported executed (what a
        /// failover would replay), in seconds.
        public var backupLagSeconds: Double = 0
        public var bytesSent: UInt64
        public var bytesReceived: UInt64
        public var sendBytesPerSecond: Double
        public var elapsedSeconds: Double
        public var status: Int32?
        /// When each state was entered (seconds since 1970), e.g. when a backup went live.
        public var stateEnteredAt: [ReplicaState: Double] = [:]
        /// The epochs executed when each state was entered (e.g. where a backup took over).
        public var stateEnteredAtEpoch: [ReplicaState: UInt64] = [:]
        public var finalDigest: String?
        public var primaryFinalDigest: String?
        /// Backups following this primary now.
        public var backups: Int = 0
        /// Since when (seconds since 1970) this replica has run without a backup, if it does.
        public var unprotectedSince: Double?
        /// For each time a backup joined this replica after it ran unprotected: how long (s) it was.
        public var protectedAgainAfter: [Double] = []
        /// Each live state transfer this primary completed.
        public var transfers: [TransferFigures] = []

        private enum CodingKeys: String, CodingKey {
            case role, state, epoch, backupLag, backupLagSeconds, bytesSent, bytesReceived, sendBytesPerSecond, elapsedSeconds
            case status, stateEnteredAt, stateEnteredAtEpoch, finalDigest, primaryFinalDigest
            case backups, unprotectedSince, protectedAgainAfter, transfers
        }

        public init(role: ReplicaRole, state: ReplicaState) {
            self.role = role
            self.state = state
            epoch = 0
            backupLag = 0
            bytesSent = 0
            bytesReceived = 0
            sendBytesPerSecond = 0
            elapsedSeconds = 0
        }

        // States are keys of a JSON object by their names ("live": 1.7e9), roles by name.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let roleName = try c.decode(String.self, forKey: .role)
            guard let role = ReplicaRole(name: roleName) else {
                throw DecodingError.dataCorruptedError(forKey: .role, in: c, debugDescription: "role \(roleName)")
            }
            self.role = role
            state = try c.decode(ReplicaState.self, forKey: .state)
            epoch = try c.decode(UInt64.self, forKey: .epoch)
            backupLag = try c.decode(UInt64.self, forKey: .backupLag)
            backupLagSeconds = try c.decodeIfPresent(Double.self, forKey: .backupLagSeconds) ?? 0
            bytesSent = try c.decode(UInt64.self, forKey: .bytesSent)
            bytesReceived = try c.decode(UInt64.self, forKey: .bytesReceived)
            sendBytesPerSecond = try c.decode(Double.self, forKey: .sendBytesPerSecond)
            elapsedSeconds = try c.decode(Double.self, forKey: .elapsedSeconds)
            status = try c.decodeIfPresent(Int32.self, forKey: .status)
            let entered = try c.decodeIfPresent([String: Double].self, forKey: .stateEnteredAt) ?? [:]
            stateEnteredAt = Dictionary(uniqueKeysWithValues: entered.compactMap { k, v in ReplicaState(rawValue: k).map { ($0, v) } })
            let epochs = try c.decodeIfPresent([String: UInt64].self, forKey: .stateEnteredAtEpoch) ?? [:]
            stateEnteredAtEpoch = Dictionary(uniqueKeysWithValues: epochs.compactMap { k, v in ReplicaState(rawValue: k).map { ($0, v) } })
            finalDigest = try c.decodeIfPresent(String.self, forKey: .finalDigest)
            primaryFinalDigest = try c.decodeIfPresent(String.self, forKey: .primaryFinalDigest)
            backups = try c.decodeIfPresent(Int.self, forKey: .backups) ?? 0
            unprotectedSince = try c.decodeIfPresent(Double.self, forKey: .unprotectedSince)
            protectedAgainAfter = try c.decodeIfPresent([Double].self, forKey: .protectedAgainAfter) ?? []
            transfers = try c.decodeIfPresent([TransferFigures].self, forKey: .transfers) ?? []
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(role.description, forKey: .role)
            try c.encode(state, forKey: .state)
            try c.encode(epoch, forKey: .epoch)
            try c.encode(backupLag, forKey: .backupLag)
            try c.encode(backupLagSeconds, forKey: .backupLagSeconds)
            try c.encode(bytesSent, forKey: .bytesSent)
            try c.encode(bytesReceived, forKey: .bytesReceived)
            try c.encode(sendBytesPerSecond, forKey: .sendBytesPerSecond)
            try c.encode(elapsedSeconds, forKey: .elapsedSeconds)
            try c.encodeIfPresent(status, forKey: .status)
            try c.encode(Dictionary(uniqueKeysWithValues: stateEnteredAt.map { ($0.key.rawValue, $0.value) }), forKey: .stateEnteredAt)
            try c.encode(Dictionary(uniqueKeysWithValues: stateEnteredAtEpoch.map { ($0.key.rawValue, $0.value) }), forKey: .stateEnteredAtEpoch)
            try c.encodeIfPresent(finalDigest, forKey: .finalDigest)
            try c.encodeIfPresent(primaryFinalDigest, forKey: .primaryFinalDigest)
            try c.encode(backups, forKey: .backups)
            try c.encodeIfPresent(unprotectedSince, forKey: .unprotectedSince)
            try c.encode(protectedAgainAfter, forKey: .protectedAgainAfter)
            try c.encode(transfers, forKey: .transfers)
        }

        /// "unprotected since ..." or "protected again after ...", for status lines ("" otherwise).
        public var protectionText: String {
            if let since = unprotectedSince { return "  unprotected since \(ReplicationStatus.clock(since))" }
            if let last = protectedAgainAfter.last { return String(format: "  protected again after %.2f s", last) }
            return ""
        }

        /// The snapshot in a statistics file, if it holds one.
        public static func load(_ path: String) -> Snapshot? {
            FileManager.default.contents(atPath: path).flatMap { try? JSONDecoder().decode(Snapshot.self, from: $0) }
        }
    }

    /// What one live state transfer cost.
    public struct TransferFigures: Codable, Sendable, Equatable {
        /// The epoch the new backup follows from.
        public var epoch: UInt64
        /// Pre-copy rounds before the final copy.
        public var rounds: Int
        /// Pages sent in all, and in the final copy.
        public var pages: Int
        public var finalPages: Int
        /// Message bytes sent to the new backup (pages and state).
        public var bytes: UInt64
        /// The guest's RAM.
        public var memoryBytes: UInt64
        /// How long the guest was stopped for the final copy (ms), and the whole transfer (s).
        public var pauseMilliseconds: Double
        public var seconds: Double
        /// Where the pause went (absent in the statistics of older binaries).
        public var pauseSteps: PauseSteps?

        /// The parts of the final-copy pause, in milliseconds.
        public struct PauseSteps: Codable, Sendable, Equatable {
            /// Ending the last round: the dirty pages' harvest, their digests, the batch owed
            /// to the following backups.
            public var lastRound: Double
            /// `Machine.captureState()`: the machine's state and its digest.
            public var capture: Double
            /// The last dirty pages: the dirty log's harvest and their copy into messages.
            public var pages: Double
            /// The transfer-state message: the RAM digest, the state's encoding.
            public var state: Double
            /// Handing the messages to the connection.
            public var send: Double

            public init(lastRound: Double, capture: Double, pages: Double, state: Double, send: Double) {
                self.lastRound = lastRound
                self.capture = capture
                self.pages = pages
                self.state = state
                self.send = send
            }
        }

        public init(epoch: UInt64, rounds: Int, pages: Int, finalPages: Int, bytes: UInt64, memoryBytes: UInt64,
                    pauseMilliseconds: Double, seconds: Double, pauseSteps: PauseSteps? = nil)
        {
            self.pauseSteps = pauseSteps
            self.epoch = epoch
            self.rounds = rounds
            self.pages = pages
            self.finalPages = finalPages
            self.bytes = bytes
            self.memoryBytes = memoryBytes
            self.pauseMilliseconds = pauseMilliseconds
            self.seconds = seconds
        }
    }

    private let lock = NSLock()
    /// Writes the statistics file, in the order the snapshots were taken, off the callers'
    /// threads and outside `lock`: on a busy disk one atomic write (a rename) took hundreds of
    /// milliseconds, and the machine thread takes `lock` on its way to a takeover (its message and
    /// its state), so a write in progress delayed going live by that much.
    private let fileWriter = DispatchQueue(label: "lockstep.status.file")
    private let statsPath: String?
    private let interactive: Bool
    private let messageLevel: Logger.Level
    /// The status row on a terminal (`TerminalStatus`: its own row, never mixed with the console).
    private let terminal: TerminalStatus
    private let start = Date()
    private let epochWord = Atomic<UInt64>(0)
    private let lagWord = Atomic<UInt64>(0)
    private let lagTimeWord = Atomic<UInt64>(0)
    // Guarded by `lock`.
    private var snapshot: Snapshot
    private var connection: ReplicationConnection?
    private var timer: (any DispatchSourceTimer)?
    /// How messages name this replica, when not by its role (`backup2`).
    public let name: String?

    /// - Parameter statusLine: whether to draw the status line (only ever on a terminal).
    /// - Parameter messageLevel: the least level of `message` lines shown (`--log-level`; with
    ///   `--quiet`, errors only: those end the command with their own line).
    /// - Parameter name: how messages name this replica (`backup2` among several backups);
    ///   nil: by its role.
    public init(role: ReplicaRole, statsPath: String?, statusLine: Bool = true, messageLevel: Logger.Level = .info,
                name: String? = nil) {
        self.name = name
        self.statsPath = statsPath
        self.messageLevel = messageLevel
        interactive = statusLine && isatty(STDERR_FILENO) != 0
        terminal = TerminalStatus(wanted: interactive)
        snapshot = Snapshot(role: role, state: .starting)
        snapshot.stateEnteredAt[.starting] = start.timeIntervalSince1970
    }

    /// Records the machine thread's progress: two atomic stores.
    @inline(__always)
    public func progress(epoch: UInt64, lag: UInt64, lagNanoseconds: UInt64 = 0) {
        epochWord.store(epoch, ordering: .relaxed)
        lagWord.store(lag, ordering: .relaxed)
        lagTimeWord.store(lagNanoseconds, ordering: .relaxed)
    }

    /// The connection whose traffic the status shows (nil once it is gone).
    public func attach(_ connection: ReplicationConnection?) {
        lock.withLock { self.connection = connection }
    }

    /// Starts refreshing the display and the file five times a second.
    public func startRefreshing() {
        guard interactive || statsPath != nil else { return }
        let source = DispatchSource.makeTimerSource(queue: .global())
        source.schedule(deadline: .now() + 0.2, repeating: 0.2)
        source.setEventHandler { [weak self] in self?.refresh() }
        lock.withLock { timer = source }
        source.resume()
    }

    /// A change of state is written at once (queued: the caller never waits for the disk).
    public func set(state: ReplicaState) {
        lock.lock()
        defer { lock.unlock() }
        snapshot.state = state
        let now = Date()
        snapshot.stateEnteredAt[state] = snapshot.stateEnteredAt[state] ?? now.timeIntervalSince1970
        snapshot.stateEnteredAtEpoch[state] = snapshot.stateEnteredAtEpoch[state] ?? epochWord.load(ordering: .relaxed)
        write(now)
    }

    public var state: ReplicaState { lock.withLock { snapshot.state } }

    /// A backup that lost the arbiter re-joins the winner: its claim is over, so a later
    /// takeover records its own time and epoch (the display times failovers by them).
    public func rejoining() {
        lock.lock()
        defer { lock.unlock() }
        snapshot.stateEnteredAt[.takingOver] = nil
        snapshot.stateEnteredAtEpoch[.takingOver] = nil
        write(Date())
    }

    /// The number of backups following now. Going to none starts "unprotected since"; the first
    /// backup after that records how long the replica ran unprotected.
    public func backups(_ count: Int) {
        lock.lock()
        defer { lock.unlock() }
        let now = Date().timeIntervalSince1970
        if count == 0, snapshot.unprotectedSince == nil {
            snapshot.unprotectedSince = now
            show("unprotected since \(Self.clock(now))", level: .warning)
        } else if count > 0, let since = snapshot.unprotectedSince {
            snapshot.unprotectedSince = nil
            snapshot.protectedAgainAfter.append(now - since)
            show(String(format: "protected again after %.3f s", now - since), level: .notice)
        }
        snapshot.backups = count
        write(Date())
    }

    /// Records a completed live state transfer.
    public func transferred(_ figures: TransferFigures) {
        lock.lock()
        defer { lock.unlock() }
        snapshot.transfers.append(figures)
        write(Date())
    }

    /// A time of day for messages (UTC, milliseconds).
    static func clock(_ seconds: Double) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss.SSS"
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date(timeIntervalSince1970: seconds)) + " UTC"
    }

    /// The final figures: written whatever the rate limit; the refreshing stops.
    public func finish(state: ReplicaState, status: Int32?, finalDigest: String?, primaryFinalDigest: String? = nil) {
        lock.lock()
        defer { lock.unlock() }
        timer?.cancel()
        timer = nil
        snapshot.state = state
        snapshot.stateEnteredAt[state] = Date().timeIntervalSince1970
        snapshot.status = status
        snapshot.finalDigest = finalDigest
        snapshot.primaryFinalDigest = primaryFinalDigest
        write(Date())
        if interactive { terminal.finish() }
        // The final figures are on disk when this returns (the process exits next).
        fileWriter.sync {}
    }

    /// One line on standard error: what the replica does (`info`), an event a user should know
    /// of (`notice`: a takeover, a join), or a `warning`; shown from the `--log-level` up.
    public func message(_ text: String, level: Logger.Level = .info) {
        lock.lock()
        defer { lock.unlock() }
        show(text, level: level)
    }

    /// `message`, with `lock` held.
    private func show(_ text: String, level: Logger.Level) {
        guard level >= messageLevel else { return }
        // On a terminal the status has a row of its own, and messages go above the cursor's line.
        let line = "lockstep \(name ?? snapshot.role.description): \(text)"
        if !terminal.message(line) { FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }

    private func refresh() {
        lock.lock()
        defer { lock.unlock() }
        guard timer != nil else { return }
        write(Date())
    }

    /// Called with `lock` held.
    private func write(_ now: Date) {
        snapshot.epoch = epochWord.load(ordering: .relaxed)
        snapshot.backupLag = lagWord.load(ordering: .relaxed)
        snapshot.backupLagSeconds = Double(lagTimeWord.load(ordering: .relaxed)) / 1e9
        if let connection {
            let stats = connection.statistics
            snapshot.bytesSent = stats.sent
            snapshot.bytesReceived = stats.received
        }
        snapshot.elapsedSeconds = now.timeIntervalSince(start)
        snapshot.sendBytesPerSecond = snapshot.elapsedSeconds > 0
            ? Double(snapshot.bytesSent) / snapshot.elapsedSeconds : 0
        if interactive {
            let lag = snapshot.role == .primary
                ? String(format: " · backups %llu epochs (%.1f ms) behind", snapshot.backupLag, snapshot.backupLagSeconds * 1000) : ""
            var line = String(format: "%@ %@ · epoch %llu%@ · tx %.1f KiB/s · rx %.1f KiB/s",
                              snapshot.role.description, snapshot.state.rawValue, snapshot.epoch, lag,
                              snapshot.sendBytesPerSecond / 1024,
                              Double(snapshot.bytesReceived) / max(snapshot.elapsedSeconds, 1e-9) / 1024)
            line += snapshot.protectionText
            terminal.show(line)
        }
        if let statsPath {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            if let data = try? encoder.encode(snapshot) {
                // Queued while `lock` is held: the writes keep the snapshots' order.
                fileWriter.async { try? data.write(to: URL(fileURLWithPath: statsPath), options: .atomic) }
            }
        }
    }
}

extension ReplicaRole {
    init?(name: String) {
        switch name {
        case "primary": self = .primary
        case "backup": self = .backup
        default: return nil
        }
    }
}

extension UInt64 {
    func saturatingSubtract(_ other: UInt64) -> UInt64 { self > other ? self - other : 0 }
}
