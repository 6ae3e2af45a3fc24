import Foundation

/// What an experiment hands back: Markdown for people, CSV and SVG files, rows for the overall
/// summary, and what it had to skip.
struct ExperimentReport {
    var experiment: Experiment
    var title: String
    /// The section body; the argument is the prefix of chart links (where the SVGs are,
    /// relative to the Markdown file).
    var markdown: (String) -> String
    /// File name to SVG text.
    var charts: [String: String] = [:]
    /// File name to table.
    var csv: [String: Table] = [:]
    /// Rows of the overall summary: experiment, measure, Lockstep, reference, ratio.
    var summary: [[String]] = []
    /// Parts not run, each with the reason.
    var skipped: [String] = []

    /// A report for an experiment that could not run at all.
    static func skipped(_ experiment: Experiment, title: String, reason: String) -> ExperimentReport {
        ExperimentReport(experiment: experiment, title: title,
                         markdown: { _ in "Skipped: \(reason)\n" }, skipped: [reason])
    }
}
