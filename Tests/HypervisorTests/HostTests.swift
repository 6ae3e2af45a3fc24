import Foundation
import MachineCore
import Testing

@testable import Hypervisor

func scratchFile(_ name: String, bytes: Int) throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("lockstep-hv-\(getpid())-\(name)")
    try Data(count: bytes).write(to: url)
    return url.path
}

@Suite struct SizeParserTests {
    @Test(arguments: [("64", 64 << 20), ("64M", 64 << 20), ("64MiB", 64 << 20), ("1G", 1 << 30),
                      ("512k", 512 << 10), ("2gb", 2 << 30), ("4096b", 4096), (" 16M ", 16 << 20),
                      ("67108864B", 64 << 20), ("0", 0)])
    func sizes(_ text: String, _ bytes: Int) {
        #expect(SizeParser.bytes(text) == UInt64(bytes))
    }

    @Test("a bare number is in MiB, as QEMU's -m takes it")
    func bareNumbersAreMiB() {
        #expect(SizeParser.bytes("64") == SizeParser.bytes("64M"))
        #expect(SizeParser.bytes("67108864") == 67_108_864 << 20, "the old spelling of 64 MiB in bytes is now 64 TiB")
    }

    @Test(arguments: ["", "M", "-5", "1.5G", "64Q", "lots", "99999999999999999999", "20000000000T", "+5", "٣M", "0x40"])
    func notSizes(_ text: String) {
        #expect(SizeParser.bytes(text) == nil)
    }

    @Test func descriptions() {
        #expect(SizeParser.describe(64 << 20) == "64 MiB")
        #expect(SizeParser.describe(3 << 30) == "3 GiB")
        #expect(SizeParser.describe(1000) == "1000 bytes")
    }
}

@Suite struct DurationParserTests {
    @Test(arguments: [("2", 2_000_000_000), ("2s", 2_000_000_000), ("500ms", 500_000_000), ("0.2", 200_000_000),
                      (".5s", 500_000_000), ("1.5m", 90_000_000_000), ("1h", 3_600_000_000_000), ("250us", 250_000),
                      ("7ns", 7), ("0", 0), ("1.000000001", 1_000_000_001), (" 3s ", 3_000_000_000),
                      ("0.0000000019", 1)])
    func durations(_ text: String, _ nanoseconds: Int64) {
        #expect(DurationParser.duration(text).map(DurationParser.nanoseconds) == nanoseconds)
    }

    @Test(arguments: ["", "s", "-1", "1e3", "inf", "nan", "1..2", ".", "5 s", "5sec", "2d", "99999999999999999999",
                      "9999999999h", "+1", "1,5"])
    func notDurations(_ text: String) {
        #expect(DurationParser.duration(text) == nil)
    }

    @Test func descriptionsReadBack() {
        for text in ["500ms", "2s", "1500ms", "250us", "7ns", "0s"] {
            let duration = DurationParser.duration(text)!
            #expect(DurationParser.describe(duration) == text)
        }
        #expect(DurationParser.duration("1.5s")!.milliseconds == 1500)
        #expect(DurationParser.duration("30")!.seconds == 30)
    }
}

@Suite struct HostPortTests {
    @Test(arguments: [("127.0.0.1:7000", "127.0.0.1", 7000), ("example.org:1", "example.org", 1),
                      (":7000", nil, 7000), ("[::1]:7000", "::1", 7000), ("[fe80::1%eth0]:0", "fe80::1%eth0", 0),
                      ("localhost:65535", "localhost", 65535)])
    func addresses(_ text: String, _ host: String?, _ port: Int) throws {
        #expect(try HostPort.parse(text).get() == HostPort(host: host, port: port))
    }

    @Test(arguments: [("nowhere", HostPort.ParseError.noPort), ("host:99999", .badPort("99999")), ("host:", .badPort("")),
                      ("host:-1", .badPort("-1")), ("::1:7000", .unbracketedIPv6), ("[::1:7000", .unclosedBracket),
                      ("[]:1", .emptyHost), ("[::1]7000", .noPort), ("host:+80", .badPort("+80"))])
    func notAddresses(_ text: String, _ error: HostPort.ParseError) {
        #expect(HostPort.parse(text) == .failure(error))
        #expect(!error.description.contains("\n"))
    }

    @Test("IPv6 is printed in brackets, so it can be typed back")
    func printing() throws {
        #expect(HostPort(host: "::1", port: 7000).description == "[::1]:7000")
        #expect(HostPort(host: "10.0.0.1", port: 7000).description == "10.0.0.1:7000")
        #expect(HostPort(host: nil, port: 7000).description == ":7000")
        for text in ["[::1]:7000", "10.0.0.1:7000", ":7000"] {
            #expect(try HostPort.parse(text).get().description == text)
        }
    }
}

@Suite struct ExitStatusTests {
    @Test("every guest status and every Lockstep outcome decode back to themselves: they never collide")
    func noCollisions() {
        var seen: [Int32: String] = [:]
        for value in Int32(0)...127 {
            let status = ExitStatus.guest(value)
            #expect((0...255).contains(status))
            #expect(ExitStatus.Meaning(status: status) == (value == 0 ? .guestFinished : .guestExited(value: value)))
            seen[status] = "guest \(value)"
        }
        for failure in ExitStatus.Failure.allCases {
            #expect(seen[failure.rawValue] == nil, "\(failure) collides with \(seen[failure.rawValue] ?? "")")
            #expect(ExitStatus.Meaning(status: failure.rawValue) == .lockstep(failure))
            seen[failure.rawValue] = failure.name
        }
        #expect(Set(ExitStatus.Failure.allCases.map(\.name)).count == ExitStatus.Failure.allCases.count)
    }

    @Test("QEMU's isa-debug-exit convention for the guest, except that a write of 0 is 0")
    func qemuConvention() {
        #expect(ExitStatus.guest(0) == 0)
        #expect(ExitStatus.guest(1) == 3)
        #expect(ExitStatus.guest(2) == 5)
        #expect(ExitStatus.guest(64 + 13) == 155)
        #expect(ExitStatus.guest(128) == 1, "modulo 256, as the operating system keeps it")
        #expect(ExitStatus.guest(-1) == 255)
    }
}

@Suite struct HostDiskTests {
    @Test func readWriteFlushAndID() throws {
        let path = try scratchFile("disk.img", bytes: 8 * 512)
        let disk = try HostDisk(path: path)
        #expect(disk.sectors == 8)
        let data = (0..<1024).map { UInt8(truncatingIfNeeded: $0 * 7) }
        #expect(disk.perform(BlockRequest(id: 1, kind: .write, sector: 2, length: 1024, data: data)).status == .ok)
        #expect(disk.perform(BlockRequest(id: 2, kind: .flush, sector: 0, length: 0)).status == .ok)
        let read = disk.perform(BlockRequest(id: 3, kind: .read, sector: 2, length: 1024))
        #expect(read == BlockCompletion(id: 3, status: .ok, data: data))
        let file = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(Array(file[1024..<2048]) == data)
        #expect(disk.perform(BlockRequest(id: 4, kind: .getID, sector: 0, length: 20)).data.count == 20)
    }

    @Test func requestsOutsideTheImageAreIOErrors() throws {
        let disk = try HostDisk(path: try scratchFile("small.img", bytes: 4 * 512))
        #expect(disk.perform(BlockRequest(id: 1, kind: .read, sector: 3, length: 1024)).status == .ioError)
        #expect(disk.perform(BlockRequest(id: 2, kind: .write, sector: .max, length: 512, data: [UInt8](repeating: 0, count: 512))).status == .ioError)
        #expect(disk.perform(BlockRequest(id: 3, kind: .read, sector: 3, length: 512)).status == .ok)
    }

    @Test func unusableImages() throws {
        #expect(throws: HostDiskError.notFound(path: "/nonexistent.img")) { try HostDisk(path: "/nonexistent.img") }
        #expect(throws: HostDiskError.notARegularFile(path: "/tmp")) { try HostDisk(path: "/tmp") }
        let empty = try scratchFile("empty.img", bytes: 0)
        #expect(throws: HostDiskError.empty(path: empty)) { try HostDisk(path: empty) }
        let odd = try scratchFile("odd.img", bytes: 1000)
        #expect(throws: HostDiskError.notSectorAligned(path: odd, size: 1000)) { try HostDisk(path: odd) }
    }
}

@Suite struct HostConsoleTests {
    /// A console fed through a pipe, as standard input would be.
    func console(_ text: String, close: Bool = true) -> (HostConsole, FileHandle) {
        let pipe = Pipe()
        try? pipe.fileHandleForWriting.write(contentsOf: Data(text.utf8))
        if close { try? pipe.fileHandleForWriting.close() }
        return (HostConsole(input: pipe.fileHandleForReading, output: nil), pipe.fileHandleForWriting)
    }

    @Test func inputArrivesAndIsTakenOnce() {
        let (console, _) = console("hello\n")
        console.waitForInput()
        var collected = console.takeInput()
        while collected.count < 6 && console.waitForInput(until: Date(timeIntervalSinceNow: 2)) {
            collected += console.takeInput()
        }
        #expect(collected == Array("hello\n".utf8))
        #expect(console.takeInput().isEmpty)
        _ = console.waitForInput(until: Date(timeIntervalSinceNow: 2))
        #expect(console.isExhausted)
    }

    @Test("with a buffer limit a fast writer waits in its pipe instead of filling memory; nothing is lost")
    func aBufferLimitHoldsTheWriterBack() throws {
        let pipe = Pipe()
        let console = HostConsole(input: pipe.fileHandleForReading, output: nil, bufferLimit: 1000)
        let sent = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 12) }
        let writer = pipe.fileHandleForWriting
        Thread.detachNewThread {
            try? writer.write(contentsOf: Data(sent))
            try? writer.close()
        }
        Thread.sleep(forTimeInterval: 0.3)
        // One read of at most 64 KiB may land on top of the limit.
        var received = console.takeInput()
        #expect(received.count <= 1000 + 65536)
        while !console.isExhausted {
            console.waitForInput()
            received += console.takeInput()
        }
        #expect(received == sent, "everything arrives, in order")
    }

    @Test func inputIsTakenUpToALimit() {
        let (console, _) = console("abcdefgh")
        var collected: [[UInt8]] = []
        // The text was written before the console started reading: one read takes all of it.
        while console.waitForInput(until: Date(timeIntervalSinceNow: 1)) {
            collected.append(console.takeInput(limit: 3))
        }
        #expect(collected.map { String(decoding: $0, as: UTF8.self) } == ["abc", "def", "gh"])
    }

    @Test func inputArrivesWhileTheWriterKeepsItOpen() throws {
        // A person typing: a short line, and the terminal stays open.
        let (console, writer) = console("one line\n", close: false)
        defer { try? writer.close() }
        #expect(console.waitForInput(until: Date(timeIntervalSinceNow: 5)))
        #expect(console.takeInput() == Array("one line\n".utf8))
    }

    @Test func unreadableInputIsClosedInputNotACrash() throws {
        let directory = try #require(FileHandle(forReadingAtPath: NSTemporaryDirectory()))
        let console = HostConsole(input: directory, output: nil)
        _ = console.waitForInput(until: Date(timeIntervalSinceNow: 0.5))
        #expect(console.isExhausted)
    }

    @Test func nonBlockingInputIsWaitedFor() throws {
        let pipe = Pipe()
        let fd = pipe.fileHandleForReading.fileDescriptor
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let console = HostConsole(input: pipe.fileHandleForReading, output: nil)
        Thread.sleep(forTimeInterval: 0.1)
        #expect(!console.isExhausted, "no input yet is not the end of input")
        try pipe.fileHandleForWriting.write(contentsOf: Data("late\n".utf8))
        try pipe.fileHandleForWriting.close()
        var collected: [UInt8] = []
        while console.waitForInput(until: Date(timeIntervalSinceNow: 0.5)) { collected += console.takeInput() }
        #expect(collected == Array("late\n".utf8))
    }

    @Test func failingOutputIsReportedNotACrash() throws {
        let full = try #require(FileHandle(forWritingAtPath: "/dev/full"))
        let console = HostConsole(input: nil, output: full)
        console.write(Array("lost\n".utf8))
        console.write(Array("also lost\n".utf8))
    }

    @Test func discardedInputIsSkippedEvenBeforeItArrives() {
        let (console, writer) = console("abc", close: false)
        console.discardInput(count: 5)
        try? writer.write(contentsOf: Data("defgh".utf8))
        try? writer.close()
        var collected: [UInt8] = []
        while console.waitForInput(until: Date(timeIntervalSinceNow: 2)) { collected += console.takeInput() }
        #expect(collected == Array("fgh".utf8))
    }

    @Test func noInputIsClosedFromTheStart() {
        let console = HostConsole(input: nil, output: nil)
        #expect(console.isExhausted)
        #expect(!console.waitForInput(until: Date(timeIntervalSinceNow: 0.1)))
    }

    @Test func waitingHonoursItsDeadline() {
        let (console, writer) = console("", close: false)
        let start = Date()
        #expect(!console.waitForInput(until: Date(timeIntervalSinceNow: 0.1)))
        #expect(Date().timeIntervalSince(start) >= 0.09)
        try? writer.close()
    }
}

@Suite struct HostIOTests {
    /// The ids of the block completions among `events`.
    func completionIDs(_ events: [BoundaryEvent]) -> [BlockRequestID] {
        events.compactMap { if case .blockCompletion(let c) = $0 { c.id } else { nil } }
    }

    @Test func aByteLimitSpreadsCompletionsOverBoundariesInOrder() throws {
        let path = try scratchFile("events.img", bytes: 64 * 512)
        let io = HostIO(console: HostConsole(input: nil, output: nil), disk: try HostDisk(path: path))
        for id in 1...4 as ClosedRange<BlockRequestID> {
            io.perform(BlockRequest(id: id, kind: .read, sector: 0, length: 4096))
        }
        io.perform(BlockRequest(id: 5, kind: .flush, sector: 0, length: 0))
        #expect(completionIDs(io.takeEvents(consoleRoom: 0, byteLimit: 9000)) == [1, 2])
        // One completion is always taken, even when it alone is over the limit.
        #expect(completionIDs(io.takeEvents(consoleRoom: 0, byteLimit: 100)) == [3])
        #expect(io.hasPendingEvents)
        #expect(completionIDs(io.takeEvents(consoleRoom: 0, byteLimit: 4096)) == [4, 5])
        #expect(!io.hasPendingEvents)
        #expect(io.takeEvents(consoleRoom: 0, byteLimit: 4096).isEmpty)
    }

    @Test("console input goes only as fast as the UART takes it; the rest waits, in order")
    func consoleInputFollowsTheRoom() throws {
        let pipe = Pipe()
        let io = HostIO(console: HostConsole(input: pipe.fileHandleForReading, output: nil), disk: nil)
        try pipe.fileHandleForWriting.write(contentsOf: Data((0..<40).map { UInt8($0) }))
        try pipe.fileHandleForWriting.close()
        while !io.console.isExhausted && !io.hasInput(room: 64) { Thread.sleep(forTimeInterval: 0.001) }
        #expect(!io.hasInput(room: 0), "input for a UART with no room wakes nothing")
        #expect(io.takeEvents(consoleRoom: 0).isEmpty)
        var delivered: [UInt8] = []
        for room in [16, 1, 0, 16, 16] {
            let events = io.takeEvents(consoleRoom: room)
            for case .consoleInput(let bytes) in events {
                #expect(bytes.count <= room)
                delivered += bytes
            }
        }
        #expect(delivered == (0..<40).map { UInt8($0) })
    }

    @Test("console input carried from a snapshot goes first, as fast as the UART takes it")
    func carriedInputFollowsTheRoom() {
        let io = HostIO(console: HostConsole(input: nil, output: nil), disk: nil)
        io.carry([.consoleInput(Array(0..<20)), .blockCompletion(BlockCompletion(id: 1, status: .ok))])
        #expect(io.heldEvents.count == 2)
        let first = io.takeEvents(consoleRoom: 16)
        #expect(first == [.blockCompletion(BlockCompletion(id: 1, status: .ok)), .consoleInput(Array(0..<16))])
        #expect(io.heldEvents == [.consoleInput(Array(16..<20))])
        #expect(io.takeEvents(consoleRoom: 16) == [.consoleInput(Array(16..<20))])
        #expect(io.heldEvents.isEmpty)
    }

    @Test func withoutALimitEverythingIsDelivered() throws {
        let io = HostIO(console: HostConsole(input: nil, output: nil), disk: nil)
        for id in 1...3 as ClosedRange<BlockRequestID> {
            io.perform(BlockRequest(id: id, kind: .read, sector: 0, length: 512))
        }
        let events = io.takeEvents(consoleRoom: 0)
        #expect(completionIDs(events) == [1, 2, 3])
        // Without a disk every request fails, and the guest hears so.
        #expect(events.allSatisfy { if case .blockCompletion(let c) = $0 { c.status == .ioError } else { false } })
    }
}
