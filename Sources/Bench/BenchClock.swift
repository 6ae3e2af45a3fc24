import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Time sources for measurements.
enum BenchClock {
    /// Seconds on the monotonic clock (`clock_gettime(CLOCK_MONOTONIC)`): for durations.
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Seconds since 1970 (`clock_gettime(CLOCK_REALTIME)`): the time base of Lockstep's
    /// statistics files (`stateEnteredAt`), for comparing events across processes.
    static func wall() -> Double {
        Date().timeIntervalSince1970
    }

    /// User + system CPU seconds of all the bench's children that have been waited for
    /// (`getrusage(RUSAGE_CHILDREN)`, which includes their own waited-for children).
    static func childrenCPU() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }
}
