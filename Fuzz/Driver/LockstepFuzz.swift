import Foundation
import FuzzTargets
import Logging

#if LOCKSTEP_FUZZ
import CFuzz
#endif

/// `lockstep-fuzz TARGET [libFuzzer options] [CORPUS...]`.
///
/// Built by scripts/fuzz with `-sanitize=fuzzer -DLOCKSTEP_FUZZ`, it hands control to libFuzzer
/// for TARGET (frames, messages or virtio-block). In an ordinary build it replays files
/// (`lockstep-fuzz TARGET FILE...`), to reproduce a finding under a debugger; `lockstep-fuzz
/// seed TARGET DIR` writes the target's seed inputs.
@main
enum LockstepFuzz {
    static func main() {
        let arguments = CommandLine.arguments
        if arguments.count == 4, arguments[1] == "seed", let target = FuzzTarget(rawValue: arguments[2]) {
            let directory = URL(fileURLWithPath: arguments[3])
            try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            for (index, seed) in target.seeds().enumerated() {
                try? Data(seed).write(to: directory.appendingPathComponent("seed-\(index)"))
            }
            return
        }
        guard arguments.count >= 2, let target = FuzzTarget(rawValue: arguments[1]) else {
            let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
            FileHandle.standardError.write(Data("usage: lockstep-fuzz TARGET [options] [FILE...] (targets: \(names))\n".utf8))
            exit(64)
        }
        Current.target = target
        // The devices log each misbehaving guest once per instance: millions of instances here.
        LoggingSystem.bootstrap { _ in SwiftLogNoOpLogHandler() }
        #if LOCKSTEP_FUZZ
        // libFuzzer sees the arguments after the target's name.
        var argc = CommandLine.argc - 1
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv.advanced(by: 1)
        // SAFETY: argv[1] becomes libFuzzer's argv[0]; the array and its strings live for the
        // whole process, and libFuzzer only reads them.
        argv![0] = CommandLine.unsafeArgv[0]
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            // SAFETY: libFuzzer passes `size` readable bytes at `data` for the call's duration;
            // they are copied before use.
            let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
            Current.target.run(bytes)
            return 0
        })
        #else
        for path in arguments.dropFirst(2) {
            guard let data = FileManager.default.contents(atPath: path) else {
                FileHandle.standardError.write(Data("lockstep-fuzz: cannot read \(path)\n".utf8))
                exit(66)
            }
            target.run(Array(data))
            print("\(path): ok")
        }
        #endif
    }
}

/// The target libFuzzer's C callback runs (it cannot capture context).
enum Current {
    nonisolated(unsafe) static var target = FuzzTarget.frames
}
