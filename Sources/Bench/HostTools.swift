import Foundation
import X86

/// What the bench can drive on this host: the lockstep binary, the QEMU peers, and KVM (from
/// `lockstep doctor`).
struct HostTools: Sendable {
    /// The lockstep executable the bench drives (the one running it).
    var lockstep: String
    /// The QEMU binaries, or why they are missing.
    var qemuHPPA: Result<String, Unavailable>
    var qemuX86: Result<String, Unavailable>
    /// KVM through Lockstep: the epoch clocks `lockstep doctor` reports, or why there is none.
    var kvm: Result<KVMReport, Unavailable>
    /// The KVM device Lockstep and QEMU use.
    var kvmDevice: String

    /// Why a tool cannot be used, in one line.
    struct Unavailable: Error, Sendable, CustomStringConvertible {
        let reason: String
        init(_ reason: String) { self.reason = reason }
        var description: String { reason }
    }

    /// The KVM part of `lockstep doctor --json`'s report.
    struct KVMReport: Sendable {
        /// The whole report.
        var doctor: HostReport
        /// Epoch clock name (e.g. "exits", "single-step") to doctor's verdict: the guests it
        /// works for ("any x86 guest", "x86 ring0 (CPL0) guests"), or "no: " and why not.
        var epochClocks: [String: String] {
            Dictionary(doctor.epochClocks.map { ($0.name, $0.available ? $0.guests : "no: \($0.note)") },
                       uniquingKeysWith: { first, _ in first })
        }

        /// Whether `clock` works on this host for some guest.
        func supports(_ clock: String) -> Bool {
            doctor.epochClocks.contains { $0.name == clock && $0.available }
        }

        /// Whether `clock` works only for CPL0 (`ring0`) guests.
        func onlyRing0(_ clock: String) -> Bool {
            doctor.epochClocks.first { $0.name == clock }?.guests.contains("CPL0") ?? false
        }
    }

    /// Where `scripts/qemu-run-guest` (whose `--probe` finds the QEMU CPU model that runs here)
    /// is: in the checkout the guests were built in, else above the executable. When there is
    /// none, the first place looked (the probe then reports it missing).
    static func probeScript(guests: GuestCatalog, executable: String) -> String {
        let relative = "scripts/qemu-run-guest"
        var places = [URL(fileURLWithPath: guests.directory).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(relative).path]
        var url = URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent()
        while url.path != "/" {
            places.append(url.appendingPathComponent(relative).path)
            url.deleteLastPathComponent()
        }
        return places.first { FileManager.default.isExecutableFile(atPath: $0) } ?? places[0]
    }

    /// Looks for an executable named `name` on PATH.
    static func which(_ name: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        for directory in (environment["PATH"] ?? "").split(separator: ":") {
            let path = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// Probes the host. `qemuHPPA`/`qemuX86` override the PATH lookup.
    static func probe(lockstep: String, qemuHPPA: String?, qemuX86: String?, log: ProgressLog) -> HostTools {
        let environment = ProcessInfo.processInfo.environment
        func find(_ name: String, _ override: String?) -> Result<String, Unavailable> {
            if let override {
                return FileManager.default.isExecutableFile(atPath: override)
                    ? .success(override) : .failure(Unavailable("\(override) is not an executable"))
            }
            return which(name).map { .success($0) }
                ?? .failure(Unavailable("\(name) is not installed (not on PATH); apt-get install \(name == "qemu-system-hppa" ? "qemu-system-misc" : "qemu-system-x86")"))
        }
        let device = environment["LOCKSTEP_KVM_DEVICE"] ?? "/dev/kvm"
        var kvm: Result<KVMReport, Unavailable>
        if !FileManager.default.fileExists(atPath: device) {
            kvm = .failure(Unavailable("\(device) does not exist (no KVM on this host)"))
        } else if !FileManager.default.isWritableFile(atPath: device) {
            kvm = .failure(Unavailable("\(device) is not accessible to this user"))
        } else {
            log.line("probing KVM with lockstep doctor --json")
            do {
                let outcome = try RunningProcess.run(lockstep, ["doctor", "--json"], timeout: 120)
                if outcome.exited(with: 0) {
                    if let report = try? JSONDecoder().decode(HostReport.self, from: Data(outcome.stdout.utf8)) {
                        kvm = .success(KVMReport(doctor: report))
                    } else {
                        kvm = .failure(Unavailable("lockstep doctor --json printed no report"))
                    }
                } else {
                    let why = outcome.lastErrorLine
                    kvm = .failure(Unavailable("lockstep doctor failed (\(outcome.ending)): \(why.isEmpty ? "no message" : why)"))
                }
            } catch {
                kvm = .failure(Unavailable("cannot run lockstep doctor: \(error)"))
            }
        }
        return HostTools(lockstep: lockstep, qemuHPPA: find("qemu-system-hppa", qemuHPPA),
                         qemuX86: find("qemu-system-x86_64", qemuX86), kvm: kvm, kvmDevice: device)
    }
}
