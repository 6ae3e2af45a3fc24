import Foundation

/// Whether a QEMU configuration runs on this host, and with which CPU model: the answer of
/// `scripts/qemu-run-guest --probe`, the one probe that the bench, scripts/qemu-compare and the
/// CLI tests share. The probe boots the hello guest with each candidate model in turn (`host`,
/// then `max`, then `qemu64` under KVM, each with the flags the guest needs) and takes the first
/// that prints its line and exits with the guest's success status. On some AMD EPYC hosts
/// `-cpu host` and `-cpu max` abort under KVM ("failed to set MSR 0x10a"): such a peer runs
/// with `qemu64`, and a configuration where no model runs is skipped with the reason, never
/// counted as a failure of Lockstep.
struct PeerProbe: Codable, Sendable, Equatable {
    /// The configuration, e.g. "qemu-system-x86_64 KVM microvm".
    var peer: String
    /// The QEMU executable probed (nil when there is none).
    var qemu: String?
    /// The model chosen ("host", "max", "qemu64"; "default" where QEMU has one model), or nil.
    var cpu: String?
    /// What `-cpu` gets for the chosen model (model plus the guest's flags), nil for no `-cpu`.
    var cpuArgument: String?
    /// Every model tried, in order.
    var tried: [Trial]
    /// Why the configuration cannot run here (nil when a model was found).
    var skipped: String?

    /// One candidate model and how its boot went.
    struct Trial: Codable, Sendable, Equatable {
        var cpu: String
        var ok: Bool
        /// QEMU's first error line, the exit status or the timeout (nil when it booted).
        var reason: String?
        var seconds: Double
    }

    /// What a peer can do on this host.
    enum Verdict: Equatable {
        /// It runs: with `-cpu cpuArgument` (nil: QEMU's default model).
        case runs(model: String, cpuArgument: String?)
        /// It cannot run here, with the reason for the report.
        case cannotRun(String)
    }

    /// The verdict: a peer runs only when the probe named a model that it saw boot.
    var verdict: Verdict {
        if let skipped { return .cannotRun(skipped) }
        guard let cpu, tried.contains(where: { $0.cpu == cpu && $0.ok }) else {
            return .cannotRun("the probe named no CPU model that booted")
        }
        return .runs(model: cpu, cpuArgument: cpuArgument)
    }

    /// One line for the report: the model used (and the models that failed), or why it is skipped.
    var summary: String {
        switch verdict {
        case .cannotRun(let why):
            return "\(peer): skipped: \(why)"
        case .runs(_, let argument):
            let failed = tried.filter { !$0.ok }.map { "\($0.cpu) failed: \($0.reason ?? "no reason given")" }
            return "\(peer): " + (argument.map { "-cpu \($0)" } ?? "QEMU's default CPU")
                + (failed.isEmpty ? "" : " (\(failed.joined(separator: "; ")))")
        }
    }

    /// A probe that could not even be asked (no script, no python3): the peer is skipped.
    static func unavailable(_ peer: String, _ reason: String) -> PeerProbe {
        PeerProbe(peer: peer, qemu: nil, cpu: nil, cpuArgument: nil, tried: [], skipped: reason)
    }

    /// Decodes the probe's JSON line (its standard output).
    static func decode(_ text: String) throws -> PeerProbe {
        try JSONDecoder().decode(PeerProbe.self, from: Data(text.utf8))
    }

    /// Runs `script --probe` for `arch` (`x86` or `parisc`) with `qemu`; `candidates` overrides
    /// the models tried. Whatever goes wrong becomes a skipped peer with the reason.
    static func run(script: String, arch: String, kvm: Bool = false, microvm: Bool = false, qemu: String,
                    candidates: [String] = [], timeout: Double = 400) -> PeerProbe
    {
        let flags = (kvm ? ["--kvm"] : []) + (microvm ? ["--microvm"] : [])
        let peer = "\(URL(fileURLWithPath: qemu).lastPathComponent) \(flags.joined(separator: " "))"
            .trimmingCharacters(in: .whitespaces)
        guard FileManager.default.isExecutableFile(atPath: script) else {
            return .unavailable(peer, "the QEMU probe \(script) is missing (the bench runs from a Lockstep checkout)")
        }
        let arguments = ["--probe", "--qemu", qemu] + flags + candidates.flatMap { ["--candidate", $0] } + [arch]
        let outcome: ProcessOutcome
        do {
            outcome = try RunningProcess.run(script, arguments, timeout: timeout)
        } catch {
            return .unavailable(peer, "cannot run the QEMU probe \(script): \(error)")
        }
        let line = outcome.stdout.split(separator: "\n").last.map(String.init) ?? ""
        guard !outcome.timedOut, !outcome.signaled, let probe = try? decode(line) else {
            let why = outcome.lastErrorLine
            return .unavailable(peer, "the QEMU probe failed (\(outcome.ending))" + (why.isEmpty ? "" : ": \(why)"))
        }
        return probe
    }
}
