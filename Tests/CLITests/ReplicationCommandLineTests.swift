import Foundation
import Testing

/// What a user of `primary`, `backup` and `pair` gets for each mistake or network trouble: one
/// line in Lockstep's words naming the input, never a library's error dump; QEMU's address
/// spellings; durations with units.
@Suite struct ReplicationCommandLineTests {
    static let hello = Lockstep.guest("parisc", "hello")

    static func ready() -> Bool { Lockstep.hasGuest("parisc", "hello") && Lockstep.executable != nil }

    /// The error line: the last line of standard error, which must read like Lockstep and not
    /// like a library.
    static func errorLine(_ result: Lockstep.Result) -> String {
        let line = result.stderr.split(separator: "\n").last.map(String.init) ?? ""
        #expect(line.hasPrefix("lockstep: "), "\(result.stderr)")
        for leak in ["Error(", "errno", "SingleConnectionFailure", "SocketAddressError", "NSCocoaErrorDomain", "IOError", "ptr:"] {
            #expect(!result.stderr.contains(leak), "\(leak) in \(result.stderr)")
        }
        return line
    }

    @Test(.enabled(if: ready()), arguments: [
        (["pair", "--stats-json", "/tmp"], "--stats-json /tmp: is a directory"),
        (["pair", "--stats-json", "/nonexistent-dir/stats.json"], "the directory /nonexistent-dir does not exist"),
        (["backup", "--connect", "127.0.0.1:9", "--connect-timeout=-1", "--insecure"], "--connect-timeout -1: expected a duration"),
        (["pair", "--timeout", "5"], "--timeout 5 (a bare number is in milliseconds): expected 10ms to 600s"),
        (["pair", "--kill-primary-after", "soon"], "--kill-primary-after soon: expected a duration"),
        (["primary", "--listen", "::1:7000", "--insecure"], "--listen ::1:7000: put an IPv6 address in brackets"),
        (["primary", "--listen", "7000", "--insecure"], "--listen 7000: expected HOST:PORT, [IPV6]:PORT or :PORT"),
    ])
    func usageErrorsAreOneLine(_ arguments: [String], _ text: String) throws {
        let result = try Lockstep.run(arguments + [Self.hello], timeout: 60)
        #expect(result.status == 64, "\(result.stderr)")
        #expect(Self.errorLine(result).contains(text), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "one line: \(result.stderr)")
    }

    @Test(.enabled(if: ready()))
    func aPortInUseIsSaidPlainly() throws {
        // A real listener holds the port: the primary cannot have it.
        let holder = try Lockstep.start(Lockstep.executable!, ["primary", "--listen", "127.0.0.1:0", "--insecure", "--port-file",
                                                                Scratch.path("port-holder-\(getpid())"), Lockstep.guest("parisc", "echo")])
        defer { holder.process.terminate(); holder.process.waitUntilExit() }
        let portFile = Scratch.path("port-holder-\(getpid())")
        var port: String?
        for _ in 0..<600 where port == nil {
            port = (try? String(contentsOfFile: portFile, encoding: .utf8))?.split(separator: "\n").first.map(String.init)
            if port == nil { Thread.sleep(forTimeInterval: 0.05) }
        }
        let taken = try #require(port)
        let result = try Lockstep.run(["primary", "--listen", "127.0.0.1:\(taken)", "--insecure", Self.hello])
        #expect(result.status == 68, "\(result.stderr)")
        #expect(Self.errorLine(result) == "lockstep: cannot listen on 127.0.0.1:\(taken): the address is in use (another program listens there): choose another port, or :0 for a free one")
    }

    @Test(.enabled(if: ready()))
    func aRefusedConnectionAndAnUnknownHostAreSaidPlainly() throws {
        let refused = try Lockstep.run(["backup", "--connect", "127.0.0.1:1", "--connect-timeout", "500ms", "--insecure", Self.hello])
        #expect(refused.status == 68, "\(refused.stderr)")
        #expect(Self.errorLine(refused).hasPrefix("lockstep: cannot reach the primary at 127.0.0.1:1: connection refused"))
        #expect(refused.stderr.contains("waiting for the primary at 127.0.0.1:1 (connection refused (nothing listens there: is the primary running, on that port?)); trying for up to 500ms"),
                "a backup says at once what it waits for: \(refused.stderr)")
        let started = Date()
        let unknown = try Lockstep.run(["backup", "--connect", "no-such-host.invalid:7000", "--insecure", Self.hello])
        #expect(unknown.status == 68, "\(unknown.stderr)")
        #expect(Self.errorLine(unknown).hasPrefix("lockstep: cannot reach the primary at no-such-host.invalid:7000: unknown host no-such-host.invalid"))
        #expect(Date().timeIntervalSince(started) < 20, "an unknown host is not retried for the whole --connect-timeout")
    }

    @Test(.enabled(if: ready()))
    func addressesInQEMUsSpellings() throws {
        for (listen, printed) in [(":0", "listening on 0.0.0.0:"), ("[::1]:0", "listening on [::1]:")] {
            let portFile = Scratch.path("listen-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
            let started = try Lockstep.start(Lockstep.executable!, ["primary", "--listen", listen, "--insecure", "--port-file", portFile,
                                                                    Self.hello])
            for _ in 0..<600 where !FileManager.default.fileExists(atPath: portFile) && started.process.isRunning {
                Thread.sleep(forTimeInterval: 0.05)
            }
            Thread.sleep(forTimeInterval: 0.2)
            started.process.terminate()
            started.process.waitUntilExit()
            let stderr = started.stderr.text()
            if listen.hasPrefix("[") && stderr.contains("cannot listen") {
                print("ReplicationCommandLineTests: no IPv6 loopback here: \(stderr)")
                continue
            }
            #expect(stderr.contains(printed), "--listen \(listen): \(stderr)")
        }
    }

    @Test(.enabled(if: ready()))
    func aKillBeforeTheBackupJoinedWaitsForIt() throws {
        // --kill-primary-after counts from the backup joining: 0 kills at once after it, and the
        // backup takes over (it used to hang 30 s and exit 69).
        let started = Date()
        let result = try Lockstep.run(["pair", "--kill-primary-after", "0", Lockstep.guest("parisc", "ticks")], timeout: 120)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("lockstep pair: failover at"), "\(result.stderr)")
        #expect(result.stdout.contains("ticks count=50"), "\(result.stdout)")
        #expect(Date().timeIntervalSince(started) < 60)
    }

    /// `--log-level` reaches the replicas: at `warning`, what they do (listening, joined) is not
    /// shown, and what went wrong (the primary failed, unprotected) is, in plain words.
    @Test(.enabled(if: ready()))
    func theLogLevelReachesTheReplicas() throws {
        let result = try Lockstep.run(["pair", "--log-level", "warning", "--no-reprotect", "--kill-primary-at-epoch", "20",
                                       Lockstep.guest("parisc", "ticks")], timeout: 120)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("ticks count=50"), "\(result.stdout)")
        #expect(!result.stderr.contains("listening on") && !result.stderr.contains("joined"), "\(result.stderr)")
        #expect(result.stderr.contains("lockstep backup: primary failed ("), "\(result.stderr)")
        #expect(result.stderr.contains("lockstep backup: unprotected since"), "\(result.stderr)")
        #expect(!result.stderr.contains("errno") && !result.stderr.contains("descriptor:"), "\(result.stderr)")
        let quiet = try Lockstep.run(["pair", "--quiet", "--no-reprotect", "--kill-primary-at-epoch", "20",
                                      Lockstep.guest("parisc", "ticks")], timeout: 120)
        #expect(quiet.status == 0, "\(quiet.stderr)")
        #expect(quiet.stderr.isEmpty, "\(quiet.stderr)")
    }

    @Test(.enabled(if: ready()))
    func aKillPointPastTheEndIsReported() throws {
        let result = try Lockstep.run(["pair", "--kill-primary-at-epoch", "1000000", Self.hello], timeout: 120)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("lockstep pair: --kill-primary-at-epoch 1000000: the guest finished"), "\(result.stderr)")
        #expect(result.stderr.contains("the primary was not killed"))
    }

    @Test(.enabled(if: ready()))
    func durationsTakeUnits() throws {
        let result = try Lockstep.run(["pair", "--timeout", "2s", Self.hello], timeout: 120)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("Hello"), "\(result.stdout)")
    }
}
