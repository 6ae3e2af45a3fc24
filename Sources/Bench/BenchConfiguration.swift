import Foundation

/// What `lockstep bench` was asked to do.
public struct BenchConfiguration: Sendable {
    /// Where the CSV, JSON, SVG and Markdown files go.
    public var outputDirectory: String
    /// The tiny setting (a few seconds; for tests and smoke checks).
    public var quick: Bool
    /// Repetitions of each timed run (the median is reported); nil for the setting's default.
    public var repetitions: Int?
    /// Failover trials at the main timeout (the other timeouts get about a seventh of them, at
    /// least 2); nil for the setting's default.
    public var failoverTrials: Int?
    /// The experiments to run, in any order (they run in `Experiment.allCases` order).
    public var experiments: [Experiment]
    /// The guests' build directory (with x86/ and parisc/); nil looks for guests/build.
    public var guestDirectory: String?
    /// A Markdown file whose generated section (between the bench markers) is replaced.
    public var documentPath: String?
    /// qemu-system-hppa to compare with; nil looks it up on PATH.
    public var qemuHPPA: String?
    /// qemu-system-x86_64 to compare with; nil looks it up on PATH.
    public var qemuX86: String?
    /// The lockstep executable to drive.
    public var lockstep: String
    /// Another lockstep executable the boundary experiment measures the same way (before/after).
    public var baseline: String?
    /// The command as typed, for the report.
    public var commandLine: String

    /// All the settings, as the command line gave them.
    public init(outputDirectory: String, quick: Bool, repetitions: Int?, failoverTrials: Int?,
                experiments: [Experiment], guestDirectory: String?, documentPath: String?,
                qemuHPPA: String?, qemuX86: String?, lockstep: String, commandLine: String, baseline: String? = nil)
    {
        self.baseline = baseline
        self.outputDirectory = outputDirectory
        self.quick = quick
        self.repetitions = repetitions
        self.failoverTrials = failoverTrials
        self.experiments = experiments
        self.guestDirectory = guestDirectory
        self.documentPath = documentPath
        self.qemuHPPA = qemuHPPA
        self.qemuX86 = qemuX86
        self.lockstep = lockstep
        self.commandLine = commandLine
    }
}
