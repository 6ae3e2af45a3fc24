import Foundation
import Testing

/// No console input is ever lost: 100 KiB piped at once into `echo` (faster than any guest reads
/// it) is answered line by line, in order, exactly once: unreplicated on both engines, and
/// replicated with the primary killed in the middle, the backup taking over the rest.
@Suite struct ConsoleInputTests {
    /// 100 KiB of lines of varied lengths, then quit.
    static let lines: [String] = {
        var lines: [String] = [], total = 0
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        while total < 100 * 1024 {
            let n = lines.count + 1
            let line = String(format: "line %05d ", n) + String(alphabet.prefix((n * 7) % 37))
            lines.append(line)
            total += line.utf8.count + 1
        }
        return lines
    }()

    static let input = lines.joined(separator: "\n") + "\nquit\n"

    /// echo's whole output for `lines`.
    static let expected: String = {
        var out = "echo ready\n"
        for (i, line) in lines.enumerated() {
            out += "echo n=\(i + 1) len=\(line.utf8.count) rev=\(String(line.reversed()))\n"
        }
        return out + "echo bye n=\(lines.count)\n"
    }()

    /// Where two outputs first differ, for the failure message.
    static func firstDifference(_ a: String, _ b: String) -> String {
        let x = a.split(separator: "\n", omittingEmptySubsequences: false), y = b.split(separator: "\n", omittingEmptySubsequences: false)
        for i in 0..<max(x.count, y.count) where (i < x.count ? x[i] : nil) != (i < y.count ? y[i] : nil) {
            return "line \(i + 1): got \(i < x.count ? "'\(x[i])'" : "nothing"), expected \(i < y.count ? "'\(y[i])'" : "nothing") (\(x.count) lines, \(y.count) expected)"
        }
        return "same"
    }

    @Test(arguments: ["parisc", "x86"])
    func hundredKiBAtOnceUnreplicated(_ arch: String) throws {
        try #require(Lockstep.hasGuest(arch, "echo"), "guests are not built: run scripts/build-guests")
        #expect(Self.input.utf8.count >= 100 * 1024)
        if arch == "x86" && !Lockstep.hasKVM {
            print("ConsoleInputTests: x86 skipped: KVM is not usable here")
            return
        }
        let result = try Lockstep.run(["run", Lockstep.guest(arch, "echo")], input: Self.input, timeout: 600)
        #expect(!result.timedOut)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == Self.expected, "\(Self.firstDifference(result.stdout, Self.expected))")
    }

    /// The UART takes at most 16 bytes per boundary, so delivering 100 KiB takes at least 6400
    /// epochs: a kill at epoch 3000 falls in the middle of the input.
    @Test func hundredKiBAtOnceUnderPairWithAFailoverInTheMiddle() throws {
        try #require(Lockstep.hasGuest("parisc", "echo"), "guests are not built: run scripts/build-guests")
        let stats = Scratch.path("console-input-pair-\(UInt32.random(in: 0...UInt32.max)).json")
        defer { try? FileManager.default.removeItem(atPath: stats) }
        let result = try Lockstep.run(["pair", "--kill-primary-at-epoch", "3000", "--stats-json", stats, Lockstep.guest("parisc", "echo")],
                                      input: Self.input, timeout: 600)
        #expect(!result.timedOut)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("lockstep pair: failover at"), "\(result.stderr)")
        // Every line answered, in order, exactly once: the one record a failover may perform
        // again (protocol.md, "Guarantees and their limits") is written once by the pair's console.
        #expect(result.stdout == Self.expected,
                "\(Self.firstDifference(result.stdout, Self.expected))")
        let document = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: stats))) as? [String: Any]
        #expect(document?["primaryKilled"] as? Bool == true, "the primary was killed")
    }
}
