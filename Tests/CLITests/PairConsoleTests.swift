import Foundation
import Testing

/// `lockstep pair` on a real terminal (a tmux pane): the status row never shares a line with the
/// guest's output or with messages, typed input is never erased, and after the primary is killed
/// the status shows the backup live with its epoch count advancing.
@Suite(.serialized) struct PairConsoleTests {
    static let tmux = ["/usr/bin/tmux", "/bin/tmux"].first { FileManager.default.isExecutableFile(atPath: $0) }

    static func ready() -> Bool {
        if tmux == nil { print("PairConsoleTests: skipped: no tmux (scripts/install-deps installs it)") }
        if !Lockstep.hasGuest("parisc", "echo") { print("PairConsoleTests: skipped: guests not built (scripts/build-guests)") }
        return tmux != nil && Lockstep.hasGuest("parisc", "echo") && Lockstep.executable != nil
    }

    /// A detached tmux server of its own with one pane running `command`.
    final class Pane {
        let socket = "lockstep-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let rows: Int

        init(_ command: String, columns: Int = 110, rows: Int = 24) throws {
            self.rows = rows
            // The pane outlives the command, so the screen can be read after it exits.
            try run(["-f", "/dev/null", "new-session", "-d", "-x", "\(columns)", "-y", "\(rows)", "-s", "t",
                     "\(command); echo EXIT=$?; sleep 600"])
        }

        /// Ending the session ends the server (kill-server alone left it running here).
        deinit {
            _ = try? run(["kill-session", "-t", "t"])
            _ = try? run(["kill-server"])
        }

        @discardableResult
        func run(_ arguments: [String]) throws -> String {
            let process = Process()
            // Through a shell that closes every descriptor above 2 first: Foundation learns of a
            // child's exit from a socket the child inherits, and the tmux server that the first
            // command forks would keep it open, so that the client's exit went unnoticed.
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-c", "for fd in /proc/$$/fd/*; do n=${fd##*/}; [ \"$n\" -gt 2 ] && eval \"exec $n>&-\"; done 2>/dev/null; exec \"$@\"",
                                 "bash", PairConsoleTests.tmux!, "-L", socket] + arguments
            var environment = ProcessInfo.processInfo.environment
            environment["TERM"] = "xterm"
            environment.removeValue(forKey: "TMUX")
            process.environment = environment
            // The server that the first command starts keeps its standard descriptors too.
            let starts = arguments.contains("new-session")
            let out = Pipe()
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = starts ? FileHandle.nullDevice : out
            process.standardError = FileHandle.nullDevice
            try process.run()
            let data = starts ? Data() : out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return String(decoding: data, as: UTF8.self)
        }

        /// The screen, one string per row (trailing spaces dropped).
        func screen() throws -> [String] {
            let rows = try run(["capture-pane", "-p", "-t", "t"]).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            return rows.count > self.rows ? Array(rows.prefix(self.rows)) : rows
        }

        /// The cursor's row.
        func cursorRow() throws -> Int? {
            Int(try run(["display-message", "-p", "-t", "t", "#{cursor_y}"]).trimmingCharacters(in: .whitespacesAndNewlines))
        }

        func type(_ keys: String, enter: Bool = false) throws {
            try run(["send-keys", "-t", "t", "-l", keys])
            if enter { try run(["send-keys", "-t", "t", "Enter"]) }
        }

        /// Waits (up to `timeout` seconds) until some row satisfies `test`; returns the screen.
        @discardableResult
        func wait(_ what: String, timeout: Double = 90, for test: (String) -> Bool) throws -> [String] {
            let deadline = Date(timeIntervalSinceNow: timeout)
            while true {
                let rows = try screen()
                if rows.contains(where: test) { return rows }
                if Date() > deadline {
                    Issue.record("timed out waiting for \(what); the screen:\n\(rows.joined(separator: "\n"))")
                    return rows
                }
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
    }

    /// Whether `row` is (part of) the status: it starts with "pair: " and has the " · " separators.
    static func isStatus(_ row: String) -> Bool { row.hasPrefix("pair: ") && row.contains(" · ") }

    @Test(.enabled(if: ready(), "needs tmux and the PA-RISC guests"))
    func statusNeverMixesWithTheConsoleAndTypingSurvives() throws {
        let lockstep = Lockstep.executable!.path, echo = Lockstep.guest("parisc", "echo")
        let pane = try Pane("\(lockstep) pair --kill-primary-after 4s \(echo)")
        try pane.wait("echo ready") { $0 == "echo ready" }
        try pane.wait("the status row") { Self.isStatus($0) }
        try pane.type("hello", enter: true)
        try pane.wait("echo's answer") { $0.contains("rev=olleh") }
        // A half-typed line while the status is redrawn, the primary killed and the failover told.
        try pane.type("hal")
        try pane.wait("the failover event") { $0.contains("lockstep pair: failover at") }
        try pane.wait("the backup live in the status") { Self.isStatus($0) && $0.contains("pair: backup 1 live, epoch ") }
        Thread.sleep(forTimeInterval: 1)
        let screen = try pane.screen()
        let text = screen.joined(separator: "\n")
        #expect(Self.isStatus(screen[pane.rows - 1]), "the status is on the last row:\n\(text)")
        #expect(screen.dropLast().allSatisfy { !$0.contains("pair: ") || $0.hasPrefix("lockstep pair: ") },
                "no status text on any other row:\n\(text)")
        #expect(screen.contains("echo ready") && screen.contains("echo n=1 len=5 rev=olleh"),
                "guest lines are whole rows of their own:\n\(text)")
        let cursorRow = try pane.cursorRow()
        let cursor = try #require(cursorRow)
        #expect(screen[cursor] == "hal", "the half-typed input is intact on the cursor's row (\(cursor)):\n\(text)")
        try pane.type("f", enter: true)
        // The answer first: a guest's output arriving while the user types lands after the
        // typed characters on a terminal, as with any program.
        try pane.wait("echo's second answer") { $0.contains("rev=flah") }
        try pane.type("quit", enter: true)
        let end = try pane.wait("the exit") { $0.hasPrefix("EXIT=") }
        let endText = end.joined(separator: "\n")
        #expect(end.contains("half") && end.contains("echo n=2 len=4 rev=flah") && end.contains("echo bye n=2"), "\(endText)")
        #expect(end.contains("EXIT=0"), "\(endText)")
        #expect(!end.contains(where: Self.isStatus), "the status row is cleared at the end:\n\(endText)")
        let events = end.filter { $0.hasPrefix("lockstep pair: failover at") }
        #expect(events.count == 1, "one failover event:\n\(endText)")
        #expect(events.first?.contains("the primary was killed by SIGKILL; backup 1 took over after epoch") == true, "\(endText)")
    }

    @Test(.enabled(if: ready(), "needs tmux and the PA-RISC guests"))
    func afterAKillTheStatusShowsTheBackupLiveAndAdvancing() throws {
        let lockstep = Lockstep.executable!.path, ticks = Lockstep.guest("parisc", "ticks")
        let pane = try Pane("\(lockstep) pair --kill-primary-after 2s --clock host --cmdline ticks=3000 \(ticks)")
        try pane.wait("replicating") { Self.isStatus($0) && $0.contains("pair: primary live, epoch") && $0.contains("epochs behind") }
        try pane.wait("the backup live") { Self.isStatus($0) && $0.contains("pair: backup 1 live, epoch ") }
        func liveEpoch() throws -> Int? {
            let status = try pane.screen()[pane.rows - 1]
            guard let range = status.range(of: "pair: backup 1 live, epoch ") else { return nil }
            return Int(status[range.upperBound...].prefix { $0.isNumber })
        }
        let firstSeen = try liveEpoch()
        let first = try #require(firstSeen)
        // The status is redrawn four times a second; the epoch moves on (slowly while a new
        // backup joins the live one, on a loaded machine).
        var second = first
        let deadline = Date(timeIntervalSinceNow: 30)
        while second <= first && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.25)
            second = try liveEpoch() ?? second
        }
        #expect(second > first, "the live backup's epoch advances: \(first), then \(second)")
        let screen = try pane.screen()
        #expect(screen.contains { $0.hasPrefix("lockstep pair: failover at") }, "\(screen.joined(separator: "\n"))")
        #expect(screen.contains { $0.hasPrefix("ticks hz=100 target=3000") }, "the guest's line is whole")
    }
}
