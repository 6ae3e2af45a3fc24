import KVM
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("perf_event_open probing")
struct PerformanceCounterTests {
    @Test("a software counter opens and counts; a hardware counter works or reports its errno")
    func probe() throws {
        if let error = PerformanceCounter.probe(.taskClock), error.errno == EACCES || error.errno == EPERM {
            try Test.cancel("perf_event_open is not permitted here (\(error))")
        }
        let clock = try PerformanceCounter.open(.taskClock)
        let start = try clock.read()
        var x: UInt64 = 1
        for i in 0..<200_000 { x = x &* 6364136223846793005 &+ UInt64(i) }
        #expect(x != 0)
        #expect(try clock.read() > start)
        try clock.reset()
        try clock.disable()
        try clock.enable()

        let hostHasCPUPMU = access("/sys/bus/event_source/devices/cpu", F_OK) == 0
        if let error = PerformanceCounter.probe(.instructions) {
            print("KVMTests: no hardware instruction counter: \(error)")
            #expect(error.operation == "perf_event_open")
            #expect(error.errno != 0)
            if !hostHasCPUPMU { #expect(error.errno == ENOENT) }
        } else {
            print("KVMTests: this host has a hardware instruction counter")
            #expect(hostHasCPUPMU)
        }
    }
}
