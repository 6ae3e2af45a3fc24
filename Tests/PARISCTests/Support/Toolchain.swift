import Foundation
import MachineCore

/// The host tools the program-level tests use: Debian's hppa cross compiler and qemu-hppa-static.
/// Tests that need them check `available` and say so when they skip.
enum Toolchain {
    static let compiler = "/usr/bin/hppa-linux-gnu-gcc"
    static let qemuUser = "/usr/bin/qemu-hppa-static"
    static let qemuSystem = "/usr/bin/qemu-system-hppa"

    static var hasCompiler: Bool { FileManager.default.isExecutableFile(atPath: compiler) }
    static var hasQEMUUser: Bool { FileManager.default.isExecutableFile(atPath: qemuUser) }
    static var hasQEMUSystem: Bool { FileManager.default.isExecutableFile(atPath: qemuSystem) }

    /// The repository root (this file is Tests/PARISCTests/Support/Toolchain.swift).
    static let repository: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// scripts/parisc: the guest-side sources (crt0, linker scripts, runtimes, test programs).
    static let support = repository.appendingPathComponent("scripts/parisc")

    /// Where built test programs are cached (inside .build, keyed by the inputs' hash).
    static let cache = repository.appendingPathComponent(".build/parisc-test-guests")

    struct ToolError: Error, CustomStringConvertible {
        let description: String
    }

    /// Runs `tool` with `arguments`; returns (status, stdout, stderr).
    @discardableResult
    static func run(_ tool: String, _ arguments: [String], timeout: TimeInterval = 120)
        throws -> (status: Int32, output: Data, error: Data)
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes fully before waiting (avoids a full-pipe deadlock).
        let group = DispatchGroup()
        nonisolated(unsafe) var outData = Data(), errData = Data()
        group.enter()
        DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter()
        DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let deadline = DispatchTime.now() + timeout
        if group.wait(timeout: deadline) == .timedOut {
            process.terminate()
            throw ToolError(description: "\(tool) timed out after \(Int(timeout)) s")
        }
        process.waitUntilExit()
        return (process.terminationStatus, outData, errData)
    }

    /// Compiles and links `sources` (paths) with `flags` into a cached ELF and returns its path.
    static func build(name: String, sources: [String], flags: [String], linkFlags: [String])
        throws -> String
    {
        var inputs: [UInt8] = []
        for part in sources + flags + linkFlags { inputs += Array(part.utf8) + [0] }
        for source in sources {
            inputs += (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: source)))) ?? []
        }
        let key = String(StateDigest.of(inputs).description.prefix(16))
        let directory = cache.appendingPathComponent("\(name)-\(key)")
        let elf = directory.appendingPathComponent("\(name).elf").path
        if FileManager.default.fileExists(atPath: elf) { return elf }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let temporary = elf + ".tmp"
        let result = try run(compiler, flags + sources + linkFlags + ["-o", temporary])
        guard result.status == 0 else {
            throw ToolError(description: "building \(name) failed: "
                + String(decoding: result.error, as: UTF8.self))
        }
        try FileManager.default.moveItem(atPath: temporary, toPath: elf)
        return elf
    }

    /// The recommended freestanding flags (parisc-toolchain.md §1.3).
    static let cFlags = ["-O2", "-fno-pic", "-fno-pie", "-mdisable-fpregs", "-ffreestanding",
                         "-fno-asynchronous-unwind-tables", "-fno-unwind-tables", "-w"]

    /// A user-mode program (exits through the Linux gateway, runs under qemu-hppa-static): the
    /// torture crt0 and link.ld, `runtime` (default: the torture runtime) and lib64.
    static func buildUserProgram(name: String, sources: [String], runtime: [String]? = nil,
                                 extraFlags: [String] = []) throws -> String
    {
        let user = support.appendingPathComponent("user").path
        let library = runtime ?? ["\(user)/trt_min.c", "\(user)/trt_ext.c"]
        return try build(
            name: name, sources: ["\(user)/crt0.S"] + library + ["\(user)/lib64.c"] + sources,
            flags: cFlags + extraFlags
                + ["-nostdlib", "-static", "-fno-builtin", "-fno-tree-loop-distribute-patterns"],
            linkFlags: ["-T", "\(user)/link.ld", "-Wl,--build-id=none", "-lgcc"])
    }

    /// The 9-program suite (sieve, CRC-32, SHA-256, strings, mul/div, switch, 64-bit, function
    /// pointers, recursion) as a user-mode program that prints its results.
    static func buildSuite(repetitions: Int = 1) throws -> String {
        let programs = support.appendingPathComponent("programs").path
        let files = ["sieve", "crc32", "sha256", "strtest", "muldiv", "switch", "ll64", "fptr",
                     "recur", "plat_user", "suite_main"].map { "\(programs)/\($0).c" }
        return try buildUserProgram(name: "suite\(repetitions)", sources: files,
                                    runtime: ["\(programs)/rt.c"],
                                    extraFlags: ["-DSUITE_REPS=\(repetitions)"])
    }
}
