/// A point in a machine's virtual time, in nanoseconds since the machine was created.
public struct VirtualTime: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var nanoseconds: UInt64

    @inlinable public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public static let zero = VirtualTime(nanoseconds: 0)

    @inlinable public static func < (lhs: VirtualTime, rhs: VirtualTime) -> Bool {
        lhs.nanoseconds < rhs.nanoseconds
    }

    public var description: String { "\(nanoseconds)ns" }
}

/// Where a device reads the current virtual time. Implemented by the machine's `VirtualClock`.
public protocol TimeSource: AnyObject {
    var now: VirtualTime { get }
}

/// How a machine's virtual time moves.
public enum ClockMode: String, Sendable, Codable, CaseIterable {
    /// Virtual time is derived from guest progress only: two runs give byte-identical output.
    case deterministic
    /// At each epoch boundary virtual time is re-synchronised with the host's monotonic clock
    /// (never moving backwards); between boundaries it is derived from guest progress.
    case host
}

/// A machine's virtual clock: between epoch boundaries, time is a function of guest progress
/// (`nanosecondsPerUnit` per unit of the epoch clock); at a boundary the hypervisor sets it.
///
/// This makes every time value the guest can observe inside an epoch a deterministic function of
/// the boundary time, which the primary sends to the backup (protocol rule P2).
public final class VirtualClock: TimeSource {
    /// Virtual nanoseconds per unit of progress (one instruction, or one deterministic exit).
    public let nanosecondsPerUnit: UInt64
    /// Reads the machine's progress counter.
    private let progress: () -> UInt64
    private var baseTime: VirtualTime = .zero
    private var baseProgress: UInt64 = 0

    public init(nanosecondsPerUnit: UInt64, progress: @escaping () -> UInt64) {
        self.nanosecondsPerUnit = nanosecondsPerUnit
        self.progress = progress
    }

    /// The current virtual time.
    public var now: VirtualTime {
        VirtualTime(nanoseconds: baseTime.nanoseconds
            &+ (progress() &- baseProgress) &* nanosecondsPerUnit)
    }

    /// Sets the time at the current progress point. Time never moves backwards: an earlier
    /// `time` is ignored.
    public func set(_ time: VirtualTime) {
        let current = now
        baseTime = max(time, current)
        baseProgress = progress()
    }

    /// The state that, with the progress counter, determines the clock.
    public var state: (baseTime: VirtualTime, baseProgress: UInt64) { (baseTime, baseProgress) }

    /// Puts back a `state` taken from a snapshot (any values: the clock's arithmetic wraps).
    public func restore(baseTime: VirtualTime, baseProgress: UInt64) {
        self.baseTime = baseTime
        self.baseProgress = baseProgress
    }
}
