import Foundation

/// A guest as the failover experiment runs it: long enough to be killed in the middle, with
/// what the surviving replica must print.
struct FailoverWorkload: Sendable, CustomStringConvertible {
    /// The bundled guest's name.
    var guest: String
    /// Guest options and the guest ELF, after the replication options (`--disk` is added per trial).
    var arguments: [String]
    /// What the survivor (or, had it finished first, the primary) must print.
    var expected: String
    /// A fresh disk image of this many sectors for each trial.
    var diskSectors: Int?
    /// Console input typed to both replicas once the backup replicates, and to the backup once
    /// it is live (then their standard inputs close).
    var inputAtStart: String?
    var inputWhenLive: String?
    /// How it was sized, for the log.
    var sizing: String

    var typesInput: Bool { inputAtStart != nil || inputWhenLive != nil }

    var description: String { "\(arguments.dropLast().joined(separator: " ")) (\(sizing))" }

    /// The ticks guest on the host clock for `seconds`.
    static func ticks(arch: String, seconds: Double, guests: GuestCatalog) -> FailoverWorkload {
        let ticks = max(20, Int(seconds * 100))
        return FailoverWorkload(guest: "ticks", arguments: ["--clock", "host", "--cmdline", "ticks=\(ticks) hz=100", guests.path(arch, "ticks")],
                                expected: "ticks count=", sizing: "\(ticks) ticks at 100 Hz")
    }

    /// `guest` on `arch`, sized to run about `seconds` unreplicated on this host: the cpu
    /// guest's rounds and the disk guest's blocks from the time of two unreplicated runs; the
    /// echo guest waits for input (a line before the failure, "quit" after it).
    static func make(_ guest: String, arch: String, seconds: Double, context: BenchContext) throws -> FailoverWorkload {
        let driver = context.driver
        let path = driver.guests.path(arch, guest)
        switch guest {
        case "cpu":
            let (low, high) = arch == "x86" ? (64, 1024) : (4, 24)
            let perRound = try secondsPerUnit(low, high) { rounds in
                (try driver.run(arch: arch, guest: "cpu", cmdline: "rounds=\(rounds)"), context.cpuLine(rounds: rounds))
            }
            let rounds = max(high, Int(seconds / perRound))
            return FailoverWorkload(guest: guest, arguments: ["--cmdline", "rounds=\(rounds)", path],
                                    expected: context.cpuLine(rounds: rounds),
                                    sizing: "\(rounds) rounds at \(NumberFormat.milliseconds(perRound)) ms each unreplicated")
        case "disk":
            let (low, high) = (64, 512)
            let perBlock = try secondsPerUnit(low, high) { blocks in
                let disk = try driver.freshDisk(sectors: high)
                defer { try? FileManager.default.removeItem(atPath: disk) }
                return (try driver.run(arch: arch, guest: "disk", cmdline: "blocks=\(blocks)", options: ["--disk", disk]),
                        GuestExpectations.diskLine(blocks: blocks))
            }
            let blocks = max(high, Int(seconds / perBlock) / 8 * 8)
            return FailoverWorkload(guest: guest, arguments: ["--cmdline", "blocks=\(blocks)", path],
                                    expected: GuestExpectations.diskLine(blocks: blocks), diskSectors: blocks,
                                    sizing: "\(blocks) blocks at \(NumberFormat.microseconds(perBlock)) µs each unreplicated")
        case "echo":
            return FailoverWorkload(guest: guest, arguments: ["--cmdline", "", path], expected: "echo bye n=1",
                                    inputAtStart: "hello\n", inputWhenLive: "quit\n",
                                    sizing: "idle until its input: one line before the failure, quit after it")
        default:
            return ticks(arch: arch, seconds: seconds, guests: driver.guests)
        }
    }

    /// Seconds per unit of work from unreplicated runs at `low` and `high` units (the
    /// difference cancels start-up and boot), each checked against its expected line.
    private static func secondsPerUnit(_ low: Int, _ high: Int,
                                       _ run: (Int) throws -> (ProcessOutcome, String)) throws -> Double {
        var times: [Double] = []
        for units in [low, high] {
            let (outcome, expected) = try run(units)
            guard outcome.exited(with: 0), outcome.stdout.contains(expected) else {
                throw BenchError.runFailed("failover sizing", "\(units) units: \(outcome.ending): \(outcome.lastErrorLine)")
            }
            times.append(outcome.seconds)
        }
        // A host too noisy to show a slope (the two runs take about as long, or the larger one
        // less) would size an endless run: the slope is taken as at least a quarter of the larger
        // run's whole time per unit (start-up included, so that bound errs towards shorter runs).
        let slope = (times[1] - times[0]) / Double(high - low)
        return max(slope, times[1] / Double(high) / 4, 1e-6)
    }
}
