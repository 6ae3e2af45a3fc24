import Testing

@testable import MachineCore

/// A progress counter the test moves by hand, as an engine's instruction count would move.
private final class Progress {
    var value: UInt64 = 0
}

@Suite("VirtualClock")
struct VirtualClockTests {
    @Test func timeIsAFunctionOfProgress() {
        let progress = Progress()
        let clock = VirtualClock(nanosecondsPerUnit: 10) { progress.value }
        #expect(clock.now == .zero)
        progress.value = 1234
        #expect(clock.now == VirtualTime(nanoseconds: 12_340))
    }

    @Test func settingTheTimeRebasesOnCurrentProgress() {
        let progress = Progress()
        let clock = VirtualClock(nanosecondsPerUnit: 2) { progress.value }
        progress.value = 100
        clock.set(VirtualTime(nanoseconds: 5_000))
        #expect(clock.now == VirtualTime(nanoseconds: 5_000))
        #expect(clock.state.baseTime == VirtualTime(nanoseconds: 5_000))
        #expect(clock.state.baseProgress == 100)
        progress.value = 150
        #expect(clock.now == VirtualTime(nanoseconds: 5_100))
    }

    @Test func timeNeverMovesBackwards() {
        let progress = Progress()
        let clock = VirtualClock(nanosecondsPerUnit: 1) { progress.value }
        progress.value = 1_000
        clock.set(VirtualTime(nanoseconds: 10))
        #expect(clock.now == VirtualTime(nanoseconds: 1_000))
        progress.value = 1_001
        #expect(clock.now == VirtualTime(nanoseconds: 1_001))
    }

    @Test func twoClocksGivenTheSameBoundariesAgree() {
        // The primary and the backup set the same boundary times at the same progress points.
        func trace() -> [VirtualTime] {
            let progress = Progress()
            let clock = VirtualClock(nanosecondsPerUnit: 3) { progress.value }
            var seen: [VirtualTime] = []
            for (step, boundary) in [(40, 900), (7, 0), (100, 5_000)] {
                progress.value += UInt64(step)
                seen.append(clock.now)
                clock.set(VirtualTime(nanoseconds: UInt64(boundary)))
                seen.append(clock.now)
            }
            return seen
        }
        #expect(trace() == trace())
        #expect(trace().map(\.nanoseconds) == [120, 900, 921, 921, 1_221, 5_000])
    }
}

@Suite("StateDigest and StateHasher")
struct StateDigestTests {
    @Test func digestIsLowerCaseHexadecimal() {
        // SHA-256 of the empty string.
        #expect(StateDigest.of([]).description
            == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func partsCannotRunTogether() {
        var a = StateHasher()
        a.add("x", [1, 2])
        a.add("y", [3])
        var b = StateHasher()
        b.add("x", [1])
        b.add("y", [2, 3])
        var c = StateHasher()
        c.add("x", [1, 2])
        c.add("y", [3])
        #expect(a.finalize() != b.finalize())
        #expect(a.finalize() == c.finalize())
    }

    @Test func labelsTakePart() {
        var a = StateHasher()
        a.add("pc", 0x1000)
        var b = StateHasher()
        b.add("sp", 0x1000)
        #expect(a.finalize() != b.finalize())
    }

    @Test func integersAreEightLittleEndianBytes() {
        #expect(littleEndianBytes(0x0102_0304_0506_0708) == [8, 7, 6, 5, 4, 3, 2, 1])
        var a = StateHasher()
        a.add("r1", 0x0102)
        var b = StateHasher()
        b.add("r1", [2, 1, 0, 0, 0, 0, 0, 0])
        #expect(a.finalize() == b.finalize())
    }
}

@Suite("InterruptLine")
struct InterruptLineTests {
    private final class Recorder: InterruptController {
        var levels: [(line: Int, level: Bool)] = []
        func setLevel(_ level: Bool, line: Int) { levels.append((line, level)) }
    }

    @Test func drivesItsControllerInput() {
        let controller = Recorder()
        let line = InterruptLine(controller: controller, number: 4)
        line.raise()
        line.lower()
        line.pulse()
        #expect(controller.levels.map(\.line) == [4, 4, 4, 4])
        #expect(controller.levels.map(\.level) == [true, false, false, true])
    }
}
