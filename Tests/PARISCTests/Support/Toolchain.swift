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

    /// Why hppa-linux-gnu-gcc cannot compile a hosted C file (one line naming the Debian package
    /// that provides the headers), or nil when it can. The compiler alone (gcc-hppa-linux-gnu
    /// without its recommends) has no `<string.h>`: it stops at `bits/libc-header-start.h`, and
    /// the GCC torture tests that include it do not build. Checked once, by compiling.
    static let hostedHeadersProblem: String? = {
        guard hasCompiler else { return "\(compiler) is not installed (Debian gcc-hppa-linux-gnu; scripts/install-deps)" }
        let source = FileManager.default.temporaryDirectory.appendingPathComponent("lockstep-hosted-\(getpid()).c")
        do {
            try Data("#include <string.h>\n#include <stdlib.h>\n#include <stdio.h>\nint main(void) { return (int)strlen(\"\"); }\n".utf8)
                .write(to: source)
            defer { try? FileManager.default.removeItem(at: source) }
            let result = try run(compiler, ["-fsyntax-only", source.path], timeout: 60)
            if result.status == 0 { return nil }
            let error = String(decoding: result.error, as: UTF8.self).split(separator: "\n")
                .first { $0.contains("error") }.map { String($0).replacingOccurrences(of: source.path, with: "test.c") } ?? "no message"
            return "\(compiler) has no hosted C headers: install libc6-dev-hppa-cross (scripts/install-deps installs it); the compiler says: \(error)"
        } catch {
            return "cannot run \(compiler): \(error)"
        }
    }()

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

    /// Runs `tool` with `arguments`; returns (status, stdout, stderr). Output goes through
    /// temporary files, so no reader threads are needed (Swift Testing's cooperative threads are
    /// few; blocking them on pipe readers could deadlock).
    @discardableResult
    static func run(_ tool: String, _ arguments: [String], timeout: TimeInterval = 120)
        throws -> (status: Int32, output: Data, error: Data)
    {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("lockstep-tool-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let outURL = directory.appendingPathComponent("out"), errURL = directory.appendingPathComponent("err")
        try Data().write(to: outURL)
        try Data().write(to: errURL)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        defer { try? out.close(); try? err.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline {
                process.terminate()
                process.waitUntilExit()
                throw ToolError(description: "\(tool) timed out after \(Int(timeout)) s")
            }
            usleep(2000)
        }
        return (process.terminationStatus, try Data(contentsOf: outURL), try Data(contentsOf: errURL))
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
