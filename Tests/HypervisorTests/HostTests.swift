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
    @Test(arguments: [("67108864", 64 << 20), ("64M", 64 << 20), ("64MiB", 64 << 20), ("1G", 1 << 30),
                      ("512k", 512 << 10), ("2gb", 2 << 30), ("4096b", 4096), (" 16M ", 16 << 20)])
    func sizes(_ text: String, _ bytes: Int) {
        #expect(SizeParser.bytes(text) == UInt64(bytes))
    }

    @Test(arguments: ["", "M", "-5", "1.5G", "64Q", "lots", "99999999999999999999", "20000000000T"])
    func notSizes(_ text: String) {
        #expect(SizeParser.bytes(text) == nil)
    }

    @Test func descriptions() {
        #expect(SizeParser.describe(64 << 20) == "64 MiB")
        #expect(SizeParser.describe(3 << 30) == "3 GiB")
        #expect(SizeParser.describe(1000) == "1000 bytes")
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
        #expect(completionIDs(io.takeEvents(byteLimit: 9000)) == [1, 2])
        // One completion is always taken, even when it alone is over the limit.
        #expect(completionIDs(io.takeEvents(byteLimit: 100)) == [3])
        #expect(io.hasPendingEvents)
        #expect(completionIDs(io.takeEvents(byteLimit: 4096)) == [4, 5])
        #expect(!io.hasPendingEvents)
        #expect(io.takeEvents(byteLimit: 4096).isEmpty)
    }

    @Test func withoutALimitEverythingIsDelivered() throws {
        let io = HostIO(console: HostConsole(input: nil, output: nil), disk: nil)
        for id in 1...3 as ClosedRange<BlockRequestID> {
            io.perform(BlockRequest(id: id, kind: .read, sector: 0, length: 512))
        }
        let events = io.takeEvents()
        #expect(completionIDs(events) == [1, 2, 3])
        // Without a disk every request fails, and the guest hears so.
        #expect(events.allSatisfy { if case .blockCompletion(let c) = $0 { c.status == .ioError } else { false } })
    }
}
