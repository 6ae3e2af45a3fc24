import Foundation

/// How a child process ended, with its output and timings (seconds from its start).
public struct ProcessOutcome: Sendable {
    /// The command, for messages.
    public let command: [String]
    /// The exit status, or the signal number when `signaled`.
    public let status: Int32
    /// Whether it ended by a signal (`WIFSIGNALED`).
    public let signaled: Bool
    /// Whether the bench killed it at its deadline.
    public let timedOut: Bool
    /// Wall time from just before the spawn to the exit, on the monotonic clock.
    public let seconds: Double
    /// Time to the first byte on standard output.
    public let firstOutputSeconds: Double?
    /// Time until standard output first contained the marker asked for.
    public let markerSeconds: Double?
    public let stdout: String
    public let stderr: String

    /// Whether it exited by itself with `expected`.
    public func exited(with expected: Int32) -> Bool {
        !signaled && !timedOut && status == expected
    }

    /// One line saying how it ended, for error messages.
    public var ending: String {
        if timedOut { return "timed out after \(String(format: "%.1f", seconds)) s" }
        if signaled { return "killed by signal \(status)" }
        return "exit status \(status)"
    }

    /// The last line of standard error, if any (a failing lockstep prints its reason there).
    public var lastErrorLine: String {
        stderr.split(separator: "\n").last.map(String.init) ?? ""
    }
}
