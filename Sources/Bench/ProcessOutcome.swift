import Foundation

/// How a child process ended, with its output and timings (seconds from its start).
struct ProcessOutcome: Sendable {
    /// The command, for messages.
    let command: [String]
    /// The exit status, or the signal number when `signaled`.
    let status: Int32
    /// Whether it ended by a signal (`WIFSIGNALED`).
    let signaled: Bool
    /// Whether the bench killed it at its deadline.
    let timedOut: Bool
    /// Wall time from just before the spawn to the exit, on the monotonic clock.
    let seconds: Double
    /// Time to the first byte on standard output.
    let firstOutputSeconds: Double?
    /// Time until standard output first contained the marker asked for.
    let markerSeconds: Double?
    /// User + system CPU seconds of the process and the children it waited for (e.g. a pair's
    /// two replicas); nil when other children of the bench ran at the same time.
    var cpuSeconds: Double? = nil
    let stdout: String
    let stderr: String

    /// Whether it exited by itself with `expected`.
    func exited(with expected: Int32) -> Bool {
        !signaled && !timedOut && status == expected
    }

    /// One line saying how it ended, for error messages.
    var ending: String {
        if timedOut { return "timed out after \(String(format: "%.1f", seconds)) s" }
        if signaled { return "killed by signal \(status)" }
        return "exit status \(status)"
    }

    /// The last line of standard error, if any (a failing lockstep prints its reason there).
    var lastErrorLine: String {
        stderr.split(separator: "\n").last.map(String.init) ?? ""
    }
}
