import Foundation
import Testing

/// Every kind of bad input gets one clear line on standard error and a non-zero exit; never a
/// crash, a Swift trap or a hang.
@Suite struct BadInputTests {
    static let scratch: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lockstep-cli-\(getpid())")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    static func file(_ name: String, _ bytes: [UInt8]) throws -> String {
        let url = scratch.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    /// One clear line: a single line that starts with "lockstep:" and names the problem.
    func expectOneLine(_ result: Lockstep.Result, status: Int32, mentioning words: [String],
                       sourceLocation: SourceLocation = #_sourceLocation)
    {
        #expect(!result.timedOut, "hung", sourceLocation: sourceLocation)
        #expect(!result.killedBySignal, "crashed: \(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.status == status, "status \(result.status): \(result.stderr)", sourceLocation: sourceLocation)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "expected one line, got: \(result.stderr)", sourceLocation: sourceLocation)
        #expect(lines.first?.hasPrefix("lockstep: ") == true, sourceLocation: sourceLocation)
        for word in words {
            #expect(result.stderr.contains(word), "\(word) missing from: \(result.stderr)", sourceLocation: sourceLocation)
        }
        #expect(result.stdout.isEmpty, sourceLocation: sourceLocation)
    }

    @Test func missingGuestFile() throws {
        expectOneLine(try Lockstep.run(["run", "/nonexistent/guest.elf"]), status: 66,
                      mentioning: ["/nonexistent/guest.elf", "no such file"])
    }

    @Test func directoryAsGuest() throws {
        expectOneLine(try Lockstep.run(["run", "/tmp"]), status: 66, mentioning: ["is a directory"])
    }

    @Test func notAnELF() throws {
        let path = try Self.file("notes.txt", Array("just some text\n".utf8))
        expectOneLine(try Lockstep.run(["run", path]), status: 66, mentioning: [path, "not an ELF"])
    }

    @Test func elfForAnotherArchitecture() throws {
        var header = [UInt8](repeating: 0, count: 64)
        header[0...3] = [0x7F, 0x45, 0x4C, 0x46]
        header[4] = 2; header[5] = 1; header[6] = 1; header[16] = 2
        header[18] = 183  // EM_AARCH64
        header[20] = 1; header[52] = 64; header[54] = 56; header[58] = 64
        let path = try Self.file("arm64.elf", header)
        expectOneLine(try Lockstep.run(["run", path]), status: 66, mentioning: ["AArch64"])
    }

    @Test(arguments: ["0", "12", "1T", "-5", "lots", "64Q", "99999999999999999999"])
    func absurdMemorySizes(_ size: String) throws {
        let guest = Lockstep.hasGuest("parisc", "hello") ? Lockstep.guest("parisc", "hello") : "/nonexistent"
        let result = try Lockstep.run(["run", "--memory", size, guest])
        #expect(!result.timedOut && !result.killedBySignal)
        #expect(result.status == 64 || (guest == "/nonexistent" && result.status == 66), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
    }

    @Test func badOptionValues() throws {
        for arguments in [["--clock", "sundial"], ["--epoch-clock", "sundial"], ["--epoch-length", "0"],
                          ["--engine", "bochs"], ["--stats-json", "/nonexistent/figures.json"]] {
            expectOneLine(try Lockstep.run(["run"] + arguments + ["/nonexistent"]), status: 64,
                          mentioning: [arguments[0]])
        }
    }

    @Test func missingDiskImage() throws {
        let guest = Lockstep.guest("parisc", "disk")
        try #require(Lockstep.hasGuest("parisc", "disk"), "guests are not built: run scripts/build-guests")
        expectOneLine(try Lockstep.run(["run", "--disk", "/nonexistent/disk.img", guest]), status: 66,
                      mentioning: ["/nonexistent/disk.img"])
    }

    @Test(arguments: [["pair"], ["primary", "--listen", "127.0.0.1:0"], ["backup", "--connect", "127.0.0.1:9"]])
    func unusableArbiterDirectory(_ command: [String]) throws {
        let guest = Lockstep.guest("parisc", "hello")
        try #require(Lockstep.hasGuest("parisc", "hello"), "guests are not built: run scripts/build-guests")
        // Found when the replica starts, before it listens or connects: not at a failover.
        let notADirectory = try Self.file("plain-file", [0])
        expectOneLine(try Lockstep.run(command + ["--arbiter-dir", notADirectory, guest]), status: 68,
                      mentioning: ["arbiter", notADirectory, "--arbiter-dir"])
    }

    @Test(arguments: [["pair", "--timeout", "5"], ["primary", "--listen", "127.0.0.1:0", "--max-lag", "0"],
                      ["primary", "--listen", "127.0.0.1:0", "--max-lag", "50 ms"], ["pair", "--max-lag", "2h"],
                      ["backup", "--connect", "127.0.0.1:9", "--timeout", "700000"]])
    func badReplicationOptions(_ arguments: [String]) throws {
        expectOneLine(try Lockstep.run(arguments + ["/nonexistent"]), status: 64, mentioning: [arguments[arguments.count - 2]])
    }

    @Test func badEndpoints() throws {
        expectOneLine(try Lockstep.run(["primary", "--listen", "nowhere", "/nonexistent"]), status: 64,
                      mentioning: ["--listen"])
        expectOneLine(try Lockstep.run(["backup", "--connect", "host:99999", "/nonexistent"]), status: 64,
                      mentioning: ["--connect"])
    }
}
