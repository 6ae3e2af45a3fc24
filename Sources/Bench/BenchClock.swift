import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Time sources for measurements.
public enum BenchClock {
    /// Seconds on the monotonic clock (`clock_gettime(CLOCK_MONOTONIC)`): for durations.
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Seconds since 1970 (`clock_gettime(CLOCK_REALTIME)`): the time base of Lockstep's
    /// statistics files (`stateEnteredAt`), for comparing events across processes.
    public static func wall() -> Double {
        Date().timeIntervalSince1970
    }
}
