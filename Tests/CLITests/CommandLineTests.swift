import Foundation
import Testing

/// The command line as a QEMU or Firecracker user types it: spellings, help, version, log
/// levels, exit statuses, and a standard output that goes away.
@Suite struct CommandLineTests {
    let bad = BadInputTests()

    @Test("--version prints the version and exits 0, for the command and every subcommand")
    func version() throws {
        for arguments in [["--version"], ["run", "--version"], ["doctor", "--version"]] {
            let result = try Lockstep.run(arguments)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            #expect(result.stdout.hasPrefix("0."), "\(arguments): \(result.stdout)")
            #expect(result.stdout.split(separator: "\n").count == 1)
        }
    }

    @Test("every option of every command is in its --help, with its default", arguments: [
        ("run", ["--memory", "(default: 64M)", "--cmdline", "--disk", "--disk-cache", "(default: writethrough)", "--clock",
                 "(default: deterministic)", "--epoch-clock", "(default: auto)", "--epoch-length",
                 "16384 for recovery-counter", "4096 for", "100000 for pmu", "16 for exits", "--engine", "--log-level",
                 "(default: info)", "--quiet", "--snapshot-at", "--snapshot-file", "--snapshot-stop", "--restore",
                 "--print-state-digest", "--version"]),
        ("doctor", ["--log-level", "--quiet"]),
        ("bench", ["--output", "(default: bench-results)", "--quick", "--repetitions", "--failover-trials", "--experiments",
                   "(default: all)", "--guests", "--doc", "--qemu-hppa", "--qemu-x86", "--log-level", "--quiet"]),
    ])
    func help(command: String, expected: [String]) throws {
        let result = try Lockstep.run([command, "--help"])
        #expect(result.status == 0)
        let text = result.stdout.replacingOccurrences(of: "\n", with: " ").split(separator: " ").joined(separator: " ")
        for item in expected { #expect(text.contains(item), "\(command) --help lacks \(item)") }
    }

    @Test("the top-level help explains the exit statuses")
    func exitStatusesInHelp() throws {
        let result = try Lockstep.run(["--help"])
        let text = result.stdout.replacingOccurrences(of: "\n", with: " ").split(separator: " ").joined(separator: " ")
        for item in ["(value << 1) | 1", "64 usage", "66 unusable-input", "68 host-unavailable", "70 internal-error",
                     "72 guest-crashed", "74 host-io", "76 replication-failed", "78 lost-arbiter"] {
            #expect(text.contains(item), "--help lacks \(item)")
        }
    }

    @Test("usage errors are one line that says where to look", arguments: [
        (["run"], "missing expected argument '<guest>' (see lockstep run --help)"),
        (["frobnicate"], "unknown command 'frobnicate': expected run, primary, backup, pair, keygen, doctor, bench"),
        (["run", "--bogus", "x.elf"], "unknown option '--bogus' (see lockstep run --help)"),
        (["run", "--log-level", "chatty", "x.elf"], "--log-level chatty: expected trace, debug, info, notice, warning, error, critical"),
        (["run", "-q", "--log-level", "debug", "x.elf"], "--quiet and --log-level set the same thing"),
        (["run", "--memory", "lots", "x.elf"], "--memory lots: not a size: give MiB (64) or a size with a unit (512M, 1G)"),
    ])
    func usageErrors(arguments: [String], text: String) throws {
        bad.expectOneLine(try Lockstep.run(arguments), status: 64, mentioning: [text])
    }

    @Test("a bare --memory is in MiB, as QEMU's -m takes it")
    func memoryInMiB() throws {
        try #require(Lockstep.hasGuest("parisc", "hello"), "guests are not built: run scripts/build-guests")
        let hello = Lockstep.guest("parisc", "hello")
        let result = try Lockstep.run(["run", "--memory", "32", hello])
        #expect(result.status == 0, "\(result.stderr)")
        bad.expectOneLine(try Lockstep.run(["run", "--memory", "12", hello]), status: 64,
                          mentioning: ["--memory 12 MiB is not usable for this parisc guest", "16 MiB to 3 GiB"])
        // The old spelling of 64 MiB in bytes is now 64 TiB: refused, with the range.
        bad.expectOneLine(try Lockstep.run(["run", "--memory", "67108864", hello]), status: 64, mentioning: ["--memory"])
        #expect(try Lockstep.run(["run", "--memory", "67108864B", hello]).status == 0)
    }

    @Test("an operating system's program is an unusable guest (66), said in one line")
    func aLinuxProgram() throws {
        bad.expectOneLine(try Lockstep.run(["run", "/bin/ls"]), status: 66,
                          mentioning: ["/bin/ls", "a program for an operating system", "interpreter", "not a guest kernel"])
    }

    @Test("a file that is no disk image is refused in one line (66)")
    func notADiskImage() throws {
        try #require(Lockstep.hasGuest("parisc", "disk"), "guests are not built: run scripts/build-guests")
        bad.expectOneLine(try Lockstep.run(["run", "--disk", "/proc/version", Lockstep.guest("parisc", "disk")]),
                          status: 66, mentioning: ["/proc/version", "disk image"])
    }

    @Test("--log-level and --quiet: notices show by default, not with --quiet or --log-level error")
    func logLevels() throws {
        try #require(Lockstep.hasGuest("parisc", "echo"), "guests are not built: run scripts/build-guests")
        let echo = Lockstep.guest("parisc", "echo")
        // echo without quit waits for input after input closed: Lockstep stops it with a notice.
        let notice = "lockstep: the guest waits for console input, and input is closed: stopping\n"
        let loud = try Lockstep.run(["run", echo], input: "hi\n")
        #expect(loud.status == 0)
        #expect(loud.stderr == notice)
        for quiet in [["--quiet"], ["-q"], ["--log-level", "error"], ["--log-level", "warning"]] {
            let result = try Lockstep.run(["run"] + quiet + [echo], input: "hi\n")
            #expect(result.status == 0 && result.stdout == loud.stdout)
            #expect(result.stderr.isEmpty, "\(quiet): \(result.stderr)")
        }
    }

    @Test("run | head -1: a closed standard output is reported once; the guest finishes; no SIGPIPE")
    func closedStandardOutput() throws {
        try #require(Lockstep.hasGuest("parisc", "echo"), "guests are not built: run scripts/build-guests")
        let executable = try #require(Lockstep.executable)
        let process = Process()
        process.executableURL = executable
        process.arguments = ["run", Lockstep.guest("parisc", "echo")]
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        let errors = DataCollector(stderr.fileHandleForReading)
        try process.run()
        // Like head -1: read the first line, then close the pipe.
        var first = Data()
        while !first.contains(UInt8(ascii: "\n")) {
            let chunk = stdout.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            first += chunk
        }
        try stdout.fileHandleForReading.close()
        try stdin.fileHandleForWriting.write(contentsOf: Data(((1...200).map { "line \($0)\n" }.joined() + "quit\n").utf8))
        try stdin.fileHandleForWriting.close()
        process.waitUntilExit()
        #expect(String(decoding: first, as: UTF8.self).hasPrefix("echo ready\n"))
        #expect(process.terminationReason == .exit, "died of signal \(process.terminationStatus)")
        #expect(process.terminationStatus == 0)
        #expect(errors.text() == "lockstep: warning: standard output was closed: the guest's further console output is dropped\n")
    }
}
