import Foundation
import MachineCore
import Testing

@testable import Loader

/// Builds small ELF files with the real cross toolchains, in a temporary directory.
enum Fixture {
    static let directory: URL = {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("lockstep-loader-tests-\(getpid())")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    static func tool(_ name: String) -> String? {
        for dir in ["/usr/bin", "/usr/local/bin"] where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
            return "\(dir)/\(name)"
        }
        return nil
    }

    /// Compiles `source` with `compiler` and `flags` into an executable; returns its path.
    static func compile(_ compiler: String, _ source: String, name: String, flags: [String]) throws -> String {
        let c = directory.appendingPathComponent("\(name).c")
        try source.write(to: c, atomically: true, encoding: .utf8)
        let out = directory.appendingPathComponent("\(name).elf").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: compiler)
        p.arguments = flags + ["-o", out, c.path]
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw LoaderTestError.compileFailed(name) }
        return out
    }

    static func write(_ bytes: [UInt8], name: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }
}

enum LoaderTestError: Error { case compileFailed(String) }

/// A minimal ELF64 header (no program headers) for an arbitrary machine number.
func elfHeader(machine: UInt16) -> [UInt8] {
    var b = [UInt8](repeating: 0, count: 64)
    b[0...3] = [0x7F, 0x45, 0x4C, 0x46]
    b[4] = 2; b[5] = 1; b[6] = 1  // ELFCLASS64, little-endian, version
    b[16] = 2  // ET_EXEC
    b[18] = UInt8(machine & 0xFF); b[19] = UInt8(machine >> 8)
    b[20] = 1  // e_version
    b[52] = 64  // e_ehsize
    b[54] = 56  // e_phentsize
    b[58] = 64  // e_shentsize
    return b
}

@Suite struct ELFImageTests {
    static let hasGCC = Fixture.tool("gcc") != nil
    static let hasHPPA = Fixture.tool("hppa-linux-gnu-gcc") != nil

    @Test(.enabled(if: hasGCC, "gcc is not installed"))
    func loadsAnX86_64Executable() throws {
        let path = try Fixture.compile(
            "/usr/bin/gcc", "int counter = 7; void _start(void) { for (;;) counter++; }",
            name: "x86", flags: ["-nostdlib", "-static", "-O1", "-Wl,-Ttext=0x200000", "-Wl,--build-id=none"])
        let image = try ELFImage.load(contentsOf: path)
        #expect(image.machine == .x86_64)
        #expect(image.machine.architecture == .x86_64)
        #expect(image.is64Bit)
        #expect(image.byteOrder == .little)
        let start = try #require(image.symbol(named: "_start"))
        #expect(start.isFunction)
        #expect(image.entry == start.value)
        #expect(image.codeSections.contains { $0.name == ".text" && $0.address == 0x200000 })
        let counter = try #require(image.symbol(named: "counter"))
        #expect(!counter.isFunction)

        let memory = try GuestMemory(size: 4 << 20)
        try image.load(into: memory) { $0.physicalAddress }
        // The initialised data word is where the symbol says.
        #expect(try memory.load(UInt32.self, at: GuestAddress(counter.value), order: .little) == 7)
        let text = image.codeSections.first { $0.name == ".text" }!
        #expect(try memory.read(at: GuestAddress(text.address), count: text.bytes.count) == text.bytes)
    }

    @Test(.enabled(if: hasHPPA, "hppa-linux-gnu-gcc is not installed"))
    func loadsABigEndianPARISCExecutable() throws {
        let path = try Fixture.compile(
            "/usr/bin/hppa-linux-gnu-gcc", "int word = 0x11223344; void _start(void) { for (;;) word++; }",
            name: "hppa", flags: ["-nostdlib", "-static", "-O1", "-Wl,-Ttext=0x100000", "-Wl,--build-id=none"])
        let image = try ELFImage.load(contentsOf: path)
        #expect(image.machine == .parisc)
        #expect(!image.is64Bit)
        #expect(image.byteOrder == .big)
        let memory = try GuestMemory(size: 16 << 20)
        try image.load(into: memory) { $0.physicalAddress & 0x0FFF_FFFF }
        let word = try #require(image.symbol(named: "word"))
        #expect(try memory.load(UInt32.self, at: GuestAddress(word.value), order: .big) == 0x1122_3344)
    }

    @Test func missingFile() {
        #expect(throws: LoaderError.fileNotFound(path: "/nonexistent/guest.elf")) {
            try ELFImage.load(contentsOf: "/nonexistent/guest.elf")
        }
    }

    @Test func directoryIsNotAGuest() {
        #expect(throws: LoaderError.isDirectory(path: "/tmp")) { try ELFImage.load(contentsOf: "/tmp") }
    }

    @Test func textFileIsNotELF() throws {
        let path = try Fixture.write(Array("#!/bin/sh\necho hello\n".utf8), name: "script.sh")
        #expect(throws: LoaderError.notELF(path: path)) { try ELFImage.load(contentsOf: path) }
        let empty = try Fixture.write([], name: "empty")
        #expect(throws: LoaderError.notELF(path: empty)) { try ELFImage.load(contentsOf: empty) }
    }

    @Test func foreignArchitectureIsRefusedByName() throws {
        let path = try Fixture.write(elfHeader(machine: 183), name: "arm64.elf")
        #expect(throws: LoaderError.unsupportedMachine(path: path, machine: "AArch64 (e_machine 183)")) {
            try ELFImage.load(contentsOf: path)
        }
        let described = LoaderError.unsupportedMachine(path: path, machine: "AArch64 (e_machine 183)").description
        #expect(described.contains("AArch64"))
    }

    @Test func truncatedHeaderIsMalformed() throws {
        let path = try Fixture.write(Array(elfHeader(machine: 62).prefix(30)), name: "truncated.elf")
        #expect(throws: LoaderError.self) { try ELFImage.load(contentsOf: path) }
    }

    @Test func deviceIsNotAGuest() {
        // Read as a file, /dev/zero would never end.
        #expect(throws: LoaderError.notRegularFile(path: "/dev/zero")) { try ELFImage.load(contentsOf: "/dev/zero") }
    }

    /// A little-endian field of `width` bytes at `offset`.
    static func field(_ bytes: [UInt8], _ offset: Int, _ width: Int) -> UInt64 {
        (0..<width).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * $1) }
    }

    static func setField(_ bytes: inout [UInt8], _ offset: Int, _ value: UInt64) {
        for i in 0..<8 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }

    static func compiledX86(name: String) throws -> [UInt8] {
        let path = try Fixture.compile(
            "/usr/bin/gcc", "int data = 5; void _start(void) { for (;;) data++; }",
            name: name, flags: ["-nostdlib", "-static", "-O1", "-Wl,-Ttext=0x200000", "-Wl,--build-id=none"])
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    @Test(.enabled(if: hasGCC, "gcc is not installed"),
          arguments: [(UInt64(1), UInt64.max), (UInt64(1) << 63, UInt64(1) << 63), (UInt64(0), UInt64(1) << 40)])
    func codeSectionBeyondTheFileIsMalformed(offset: UInt64, size: UInt64) throws {
        var bytes = try Self.compiledX86(name: "section-\(offset)-\(size)")
        let sectionHeaders = Int(Self.field(bytes, 0x28, 8)), count = Int(Self.field(bytes, 0x3C, 2))
        let text = try #require((0..<count).map { sectionHeaders + 64 * $0 }.first { header in
            Self.field(bytes, header + 4, 4) == 1 && Self.field(bytes, header + 8, 8) & 4 != 0  // PROGBITS, EXECINSTR
        })
        Self.setField(&bytes, text + 24, offset)
        Self.setField(&bytes, text + 32, size)
        let path = try Fixture.write(bytes, name: "bad-section.elf")
        #expect(throws: LoaderError.malformed(path: path, reason: "code section .text extends past the end of the file")) {
            try ELFImage.load(contentsOf: path)
        }
    }

    @Test(.enabled(if: hasGCC, "gcc is not installed"))
    func overlappingSegmentsAreRefused() throws {
        var bytes = try Self.compiledX86(name: "overlap")
        let programHeaders = Int(Self.field(bytes, 0x20, 8)), count = Int(Self.field(bytes, 0x38, 2))
        let loads = (0..<count).map { programHeaders + 56 * $0 }.filter { Self.field(bytes, $0, 4) == 1 }
        try #require(loads.count >= 2, "expected a text and a data segment")
        // The data segment placed on top of the text segment.
        Self.setField(&bytes, loads[1] + 24, Self.field(bytes, loads[0] + 24, 8) + 16)
        let path = try Fixture.write(bytes, name: "overlap.elf")
        let image = try ELFImage.load(contentsOf: path)
        let memory = try GuestMemory(size: 4 << 20)
        #expect {
            try image.load(into: memory) { $0.physicalAddress }
        } throws: { error in
            guard case LoaderError.malformed(_, let reason) = error else { return false }
            return reason.contains("overlap")
        }
    }

    @Test(.enabled(if: hasGCC, "gcc is not installed"))
    func segmentOutsideRAMIsAnError() throws {
        let path = try Fixture.compile(
            "/usr/bin/gcc", "void _start(void) { for (;;); }",
            name: "high", flags: ["-nostdlib", "-static", "-Wl,-Ttext=0x40000000", "-Wl,--build-id=none"])
        let image = try ELFImage.load(contentsOf: path)
        let memory = try GuestMemory(size: 1 << 20)
        #expect {
            try image.load(into: memory) { $0.physicalAddress }
        } throws: { error in
            guard case LoaderError.segmentOutsideRAM(_, let address, _, _) = error else { return false }
            return address >= 0x3000_0000
        }
    }
}

@Suite struct MultibootTests {
    /// A header as a kernel would contain it: magic, flags, checksum.
    func header(flags: UInt32, checksumDelta: UInt32 = 0, at offset: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0xAA, count: offset)
        for value in [MultibootHeader.magic, flags, 0 &- (MultibootHeader.magic &+ flags) &+ checksumDelta] {
            for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * i))) }
        }
        return bytes + [UInt8](repeating: 0, count: 64)
    }

    @Test func findsAValidHeader() throws {
        let found = try #require(try MultibootHeader.find(in: header(flags: 0x3, at: 1024), path: "k"))
        #expect(found.fileOffset == 1024)
        #expect(found.wantsMemoryInfo)
        #expect(found.addresses == nil)
    }

    @Test func noHeaderBeyondEightKiB() throws {
        #expect(try MultibootHeader.find(in: header(flags: 0, at: 8192), path: "k") == nil)
    }

    @Test func badChecksumIsAnError() {
        #expect(throws: LoaderError.invalidMultibootHeader(path: "k", reason: "checksum does not add up")) {
            try MultibootHeader.find(in: header(flags: 0, checksumDelta: 1, at: 0), path: "k")
        }
    }

    @Test func infoBlockLayout() throws {
        let map = MultibootInfo.pcMemoryMap(ramSize: 64 << 20)
        let info = MultibootInfo(commandLine: "ticks=5 ring0", memoryMap: map)
        let base: UInt32 = 0x9000
        let bytes = try info.encode(at: base, limit: 4096)
        func word(_ offset: Int) -> UInt32 {
            (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
        }
        #expect(word(0) & 0x245 == 0x245)  // mem, cmdline, mmap, loader name
        #expect(word(4) == 639)
        #expect(word(8) == (64 << 10) - 1024)
        let cmdline = Int(word(16) - base)
        #expect(Array(bytes[cmdline..<cmdline + 13]) == Array("ticks=5 ring0".utf8))
        #expect(bytes[cmdline + 13] == 0)
        #expect(word(44) == UInt32(map.count * 24))
        let mmap = Int(word(48) - base)
        #expect(word(mmap) == 20)  // entry size field
        #expect(word(mmap + 4 + 16) == 1)  // first region available
        #expect(word(mmap + 24 + 4 + 16) == 2)  // second reserved
    }

    @Test func infoBlockTooLarge() {
        let info = MultibootInfo(commandLine: String(repeating: "x", count: 5000),
                                 memoryMap: MultibootInfo.pcMemoryMap(ramSize: 8 << 20))
        #expect(throws: LoaderError.self) { try info.encode(at: 0x9000, limit: 4096) }
    }
}
