import Foundation

/// Why the bench cannot go on. Each description is one line for the user.
public enum BenchError: Error, Sendable, CustomStringConvertible {
    /// A child process could not be started (path, reason).
    case cannotStart(String, String)
    /// The guest kernels are not where they were looked for.
    case noGuests([String])
    /// An option has a bad value.
    case usage(String)
    /// The output could not be written (path, reason).
    case output(String, String)
    /// A measured run failed in a way that makes the experiment meaningless (experiment, detail).
    case runFailed(String, String)

    /// One line for the user.
    public var description: String {
        switch self {
        case .cannotStart(let path, let why): "cannot start \(path): \(why)"
        case .noGuests(let places):
            "no bundled guests found (looked in \(places.joined(separator: ", "))): run scripts/build-guests or pass --guests DIR"
        case .usage(let text): text
        case .output(let path, let why): "cannot write \(path): \(why)"
        case .runFailed(let experiment, let detail): "\(experiment): \(detail)"
        }
    }
}
