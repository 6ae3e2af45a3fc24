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
        // The target is the first argument, or LOCKSTEP_FUZZ_TARGET: libFuzzer starts copies of
        // itself (to merge corpora) with its own arguments only, and they inherit the variable.
        let named = arguments.count >= 2 ? FuzzTarget(rawValue: arguments[1]) : nil
        guard let target = named ?? ProcessInfo.processInfo.environment["LOCKSTEP_FUZZ_TARGET"].flatMap(FuzzTarget.init) else {
            let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
            FileHandle.standardError.write(Data("usage: lockstep-fuzz TARGET [options] [FILE...] (targets: \(names))\n".utf8))
            exit(64)
        }
        setenv("LOCKSTEP_FUZZ_TARGET", target.rawValue, 1)
        Current.target = target
        // The devices log each misbehaving guest once per instance: millions of instances here.
        LoggingSystem.bootstrap { _ in SwiftLogNoOpLogHandler() }
        #if LOCKSTEP_FUZZ
        // libFuzzer sees the arguments after the target's name (if it was given as one).
        let skip: Int32 = named == nil ? 0 : 1
        var argc = CommandLine.argc - skip
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv.advanced(by: Int(skip))
        // SAFETY: the slot before the remaining arguments becomes libFuzzer's argv[0] (the
        // program); the array and its strings live for the whole process, libFuzzer only reads them.
        argv![0] = CommandLine.unsafeArgv[0]
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            // SAFETY: libFuzzer passes `size` readable bytes at `data` for the call's duration;
            // they are copied before use.
            let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
            Current.target.run(bytes)
            return 0
        })
        #else
        for path in arguments.dropFirst(named == nil ? 1 : 2) {
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
