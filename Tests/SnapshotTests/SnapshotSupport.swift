import Foundation
import Hypervisor
import KVM
import MachineCore
import Testing
import X86

/// The package root (Tests/SnapshotTests/ is two levels down).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

/// A bundled guest (scripts/build-guests).
func guestPath(_ arch: String, _ name: String) -> String {
    packageRoot.appendingPathComponent("guests/build/\(arch)/\(name).elf").path
}

enum Host {
    /// Whether KVM is usable here; says why not once.
    static let hasKVM: Bool = {
        if let reason = KVMSystem.unavailabilityReason(path: X86Machine.defaultKVMPath) {
            print("SnapshotTests: skipping the x86 cases: \(reason)")
            return false
        }
        return true
    }()
}

/// A temporary file, removed in deinit.
final class ScratchFile {
    let path: String

    init(_ name: String, contents: Data = Data()) throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("lockstep-snapshot-test-\(getpid())-\(UUID().uuidString)-\(name)").path
        try contents.write(to: URL(fileURLWithPath: path))
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    var contents: Data { FileManager.default.contents(atPath: path) ?? Data() }
}

/// One guest run with Lockstep's own run loop (`LocalSession`), console output to a file, no
/// console input, the disk (if any) on a temporary image.
final class GuestRun {
    let setup: GuestSetup
    let output: ScratchFile
    let disk: ScratchFile?
    let environment: LocalEnvironment
    let machine: any Machine

    init(_ arch: String, _ guest: String, cmdline: String = "", disk diskContents: Data? = nil,
         extra: (inout RunOptions) -> Void = { _ in }) throws
    {
        var options = RunOptions(guestPath: guestPath(arch, guest), commandLine: cmdline)
        if arch == "parisc" { options.epochLength = 2000 }
        output = try ScratchFile("output")
        disk = try diskContents.map { try ScratchFile("disk.img", contents: $0) }
        options.diskPath = disk?.path
        extra(&options)
        setup = try GuestSetup(options)
        let console = HostConsole(input: FileHandle(forReadingAtPath: "/dev/null"),
                                  output: FileHandle(forWritingAtPath: output.path))
        environment = LocalEnvironment(host: HostIO(console: console, disk: try setup.openDisk()))
        machine = try MachineFactory.make(setup, environment: environment)
    }

    func session() -> LocalSession {
        LocalSession(machine: machine, environment: environment, epochLength: setup.epochLength,
                     timing: BoundaryTiming(mode: setup.options.clockMode))
    }

    var text: String { String(decoding: output.contents, as: UTF8.self) }
}
