import Foundation

/// Progress lines on standard error: "[bench 12.3s] epochs: ...".
public final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private let start = BenchClock.now()
    private let quiet: Bool

    /// - Parameter quiet: print nothing.
    public init(quiet: Bool = false) {
        self.quiet = quiet
    }

    /// Seconds since the bench started.
    public var elapsed: Double { BenchClock.now() - start }

    /// Prints one progress line.
    public func line(_ text: String) {
        guard !quiet else { return }
        let stamp = String(format: "%6.1fs", elapsed)
        lock.withLock { FileHandle.standardError.write(Data("[bench \(stamp)] \(text)\n".utf8)) }
    }
}
