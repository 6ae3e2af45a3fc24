import ArgumentParser
import Hypervisor

/// `--console-frames`, taken by `primary` and `backup`: how `pair` starts its replicas.
struct ConsoleFramingOption: ParsableArguments {
    @Flag(name: .customLong("console-frames"),
          help: "Write the guest's console output as numbered frames instead of bytes: lockstep pair starts its replicas so, and writes a record that a failover repeats only once.")
    var consoleFrames = false

    var framing: HostConsole.Framing { consoleFrames ? .frames : .raw }

    /// The console of a replica command: standard input and output.
    var console: HostConsole { HostConsole(input: .standardInput, output: .standardOutput, framing: framing) }
}
