import Foundation
import MachineCore

/// The host's monotonic clock, in nanoseconds since this clock was created.
public struct HostClock: Sendable {
    private let origin: UInt64

    public init() { origin = DispatchTime.now().uptimeNanoseconds }

    public var now: VirtualTime {
        VirtualTime(nanoseconds: DispatchTime.now().uptimeNanoseconds &- origin)
    }

    /// The wall-clock `Date` at which this clock will read `time`.
    public func date(at time: VirtualTime) -> Date {
        let delta = Int64(bitPattern: time.nanoseconds &- now.nanoseconds)
        return Date(timeIntervalSinceNow: Double(delta) / 1e9)
    }
}
