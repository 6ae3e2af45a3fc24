import Foundation
import MachineCore
import Testing

@testable import Hypervisor

/// A fresh image of `sectors` sectors, removed by the caller.
func scratchImage(_ name: String, sectors: Int = 16) throws -> String {
    try scratchFile("\(name)-\(UInt32.random(in: 0...UInt32.max)).img", bytes: sectors * 512)
}

@Suite struct ImageLockTests {
    func expectInUse(_ path: String, _ sharing: ImageSharing, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: HostDiskError.inUse(path: path, sharing: sharing), sourceLocation: sourceLocation) {
            try HostDisk(path: path, sharing: sharing)
        }
    }

    @Test func aSecondVirtualMachineIsRefusedUntilTheFirstClosesTheImage() throws {
        let path = try scratchImage("exclusive")
        defer { unlink(path) }
        var first: HostDisk? = try HostDisk(path: path)
        expectInUse(path, .exclusive)
        expectInUse(path, .pair(token: [1, 2, 3, 4]))
        // Reading the size does not lock, and is not refused.
        #expect(try HostDisk.inspect(path: path) == 16)
        #expect(first != nil)
        first = nil
        _ = try HostDisk(path: path)
    }

    @Test func thePairsTwoReplicasAreTheOnlySharers() throws {
        let path = try scratchImage("pair")
        defer { unlink(path) }
        let token: [UInt8] = (0..<16).map { _ in UInt8.random(in: 0...255) }
        let primary = try HostDisk(path: path, sharing: .pair(token: token))
        let backup = try HostDisk(path: path, sharing: .pair(token: token))
        expectInUse(path, .exclusive)
        var other = token
        other[0] ^= 1
        expectInUse(path, .pair(token: other))
        // The primary frozen (it keeps its locks), the backup live: both still hold the image,
        // and still nobody else may open it.
        #expect(primary.perform(BlockRequest(id: 1, kind: .write, sector: 0, length: 512, data: [UInt8](repeating: 7, count: 512))).status == .ok)
        #expect(backup.perform(BlockRequest(id: 2, kind: .read, sector: 0, length: 512)).data == [UInt8](repeating: 7, count: 512))
        expectInUse(path, .exclusive)
    }

    /// The backup's proof that it opened the primary's image, not a copy: the other replica's
    /// locks are seen on the same file only (slot 0's token included: its probe byte differs).
    @Test(arguments: [[UInt8](repeating: 0, count: 16), (0..<16).map { _ in UInt8.random(in: 0...255) }])
    func theOtherReplicaIsSeenOnTheSameFileOnly(_ token: [UInt8]) throws {
        let (path, copy) = (try scratchImage("proof"), try scratchImage("proof-copy"))
        defer { unlink(path); unlink(copy) }
        var primary: HostDisk? = try HostDisk(path: path, sharing: .pair(token: token))
        let backup = try HostDisk(path: path, sharing: .pair(token: token))
        let elsewhere = try HostDisk(path: copy, sharing: .pair(token: token))
        #expect(backup.isOpenByPartner(ofPair: token) == true)
        #expect(primary?.isOpenByPartner(ofPair: token) == true)
        #expect(elsewhere.isOpenByPartner(ofPair: token) == false, "a copy is another file")
        primary = nil
        #expect(backup.isOpenByPartner(ofPair: token) == false, "the primary's locks went with it")
    }

    @Test func aPairIsRefusedAnImageAPlainRunHolds() throws {
        let path = try scratchImage("run-then-pair")
        defer { unlink(path) }
        let run = try HostDisk(path: path)
        expectInUse(path, .pair(token: [9, 9, 9, 9]))
        #expect(run.sectors == 16)
    }

    @Test func theMessageIsOneLine() {
        for sharing in [ImageSharing.exclusive, .pair(token: [1])] {
            let text = HostDiskError.inUse(path: "/images/a.img", sharing: sharing).description
            #expect(text.hasPrefix("/images/a.img: disk image is in use by "))
            #expect(!text.contains("\n"))
        }
    }

    /// QEMU and Lockstep honour each other's locks (the same bytes as QEMU's file-posix driver).
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-system-x86_64"),
                   "qemu-system-x86_64 is not installed"))
    func qemuAndLockstepExcludeEachOther() throws {
        let path = try scratchImage("qemu")
        defer { unlink(path) }
        func qemu() -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-system-x86_64")
            process.arguments = ["-nodefaults", "-display", "none", "-S",
                                 "-drive", "file=\(path),format=raw,if=virtio"]
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            process.standardError = Pipe()
            return process
        }
        do {
            let disk = try HostDisk(path: path)
            let refused = qemu()
            try refused.run()
            refused.waitUntilExit()
            #expect(refused.terminationStatus != 0)
            let message = (refused.standardError as? Pipe)?.fileHandleForReading.readDataToEndOfFile() ?? Data()
            #expect(String(decoding: message, as: UTF8.self).contains("Failed to get \"write\" lock"))
            _ = disk
        }
        let running = qemu()
        try running.run()
        defer {
            // SIGKILL: the test runner blocks SIGTERM, and QEMU inherits the blocked mask.
            kill(running.processIdentifier, SIGKILL)
            running.waitUntilExit()
        }
        // QEMU locks the image while it starts: wait for it (at most 10 s), then be refused.
        let deadline = Date(timeIntervalSinceNow: 10)
        var refused = false
        while !refused && Date() < deadline && running.isRunning {
            do throws(HostDiskError) { _ = try HostDisk(path: path) } catch .inUse { refused = true } catch { break }
            if !refused { Thread.sleep(forTimeInterval: 0.05) }
        }
        #expect(refused)
    }
}

@Suite struct DiskCacheTests {
    /// The open flags of `descriptor`, from /proc/self/fdinfo (octal).
    func openFlags(_ descriptor: Int32) throws -> Int32 {
        let text = try String(contentsOfFile: "/proc/self/fdinfo/\(descriptor)", encoding: .utf8)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("flags:") })
        return try #require(Int32(line.dropFirst("flags:".count).trimmingCharacters(in: .whitespaces), radix: 8))
    }

    @Test(arguments: DiskCacheMode.allCases)
    func writesAreSynchronousOnlyInWritethrough(_ mode: DiskCacheMode) throws {
        let path = try scratchImage("cache-\(mode)")
        defer { unlink(path) }
        let disk = try HostDisk(path: path, cache: mode)
        #expect((try openFlags(disk.descriptor) & O_DSYNC != 0) == (mode == .writethrough))
        let data = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        #expect(disk.perform(BlockRequest(id: 1, kind: .write, sector: 3, length: 4096, data: data)).status == .ok)
        #expect(disk.perform(BlockRequest(id: 2, kind: .flush, sector: 0, length: 0)).status == .ok)
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: path))[1536..<1536 + 4096]) == data)
    }

    @Test func modesAreParsedAndQEMUsDirectModesRefusedWithTheReason() {
        #expect(DiskCacheMode.parse("writeback") == .success(.writeback))
        #expect(DiskCacheMode.default == .writethrough)
        guard case .failure(let none) = DiskCacheMode.parse("none") else { Issue.record("none accepted"); return }
        #expect(none.description.contains("O_DIRECT") && none.description.contains("writethrough"))
        guard case .failure(let bogus) = DiskCacheMode.parse("fast") else { Issue.record("fast accepted"); return }
        #expect(bogus.description == "--disk-cache fast: expected writethrough, writeback, unsafe")
    }

    /// pread/pwrite keep no file position: requests from several threads land where they say.
    @Test func requestsFromSeveralThreadsDoNotInterfere() throws {
        let path = try scratchImage("threads", sectors: 64)
        defer { unlink(path) }
        let disk = try HostDisk(path: path, cache: .writeback)
        DispatchQueue.concurrentPerform(iterations: 64) { sector in
            let data = [UInt8](repeating: UInt8(sector), count: 512)
            _ = disk.perform(BlockRequest(id: BlockRequestID(sector), kind: .write, sector: UInt64(sector), length: 512, data: data))
            _ = disk.perform(BlockRequest(id: BlockRequestID(sector), kind: .read, sector: UInt64(sector), length: 512))
        }
        let file = try Data(contentsOf: URL(fileURLWithPath: path))
        for sector in 0..<64 {
            #expect(file[sector * 512 ..< (sector + 1) * 512].allSatisfy { $0 == UInt8(sector) })
        }
    }

    @Test func aWriteWhoseDataDoesNotMatchItsLengthIsAnIOError() throws {
        let path = try scratchImage("length")
        defer { unlink(path) }
        let disk = try HostDisk(path: path)
        #expect(disk.perform(BlockRequest(id: 1, kind: .write, sector: 0, length: 1024, data: [1, 2, 3])).status == .ioError)
        #expect(disk.perform(BlockRequest(id: 2, kind: .read, sector: 0, length: -1)).status == .ioError)
    }
}
