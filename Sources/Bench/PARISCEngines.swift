import PARISC

/// Lockstep's PA-RISC engines (`lockstep run --emulator ...`) in the qemu-system-hppa comparison.
enum PARISCEngines {
    /// The row name of `engine`'s runs.
    static func name(_ engine: PARISCEngine) -> String { "lockstep run --emulator \(engine)" }

    /// The engines this host runs, the default one (the fastest) first: it is the base of the
    /// comparison's ratios. An engine the host cannot run (the JIT off x86-64) is left out.
    static func lockstepCommands(_ context: BenchContext) -> [PeerCommand] {
        let fastest = PARISCEngine.fastestAvailable
        let others = [PARISCEngine.interpreter, .threaded, .jit].filter { $0 != fastest && $0.unavailableReason == nil }
        return ([fastest] + others).map {
            .lockstep(context, name: name($0), options: ["--emulator", $0.rawValue])
        }
    }

    /// One sentence per comparison the engine work is judged by: each Lockstep engine's guest
    /// instruction rate over qemu-system-hppa's, with and without -icount (above 1: Lockstep is
    /// faster), from the cpu workload's time per round.
    static func speedNote(_ results: [PeerResult]) -> String {
        let cpu = results.filter { $0.workload == "cpu" }
        func perRound(_ engine: String) -> Double? { cpu.first { $0.engine == engine }?.secondsPerRound }
        let peers = [PeerCommand.qemuHPPA("", icount: true).name, PeerCommand.qemuHPPA("", icount: false).name]
        var sentences: [String] = []
        for engine in PARISCEngine.allCases {
            guard let mine = perRound(name(engine)), mine > 0 else { continue }
            let ratios = peers.compactMap { peer in perRound(peer).map { "\(NumberFormat.ratio($0 / mine)) \(peer)'s" } }
            guard !ratios.isEmpty else { continue }
            sentences.append("\(engine): \(ratios.joined(separator: ", "))")
        }
        guard !sentences.isEmpty else { return "" }
        return " Speed on the cpu guest, Lockstep's engine over QEMU (time per round inverted; above 1.00x Lockstep is faster): "
            + sentences.joined(separator: "; ") + "."
    }
}
