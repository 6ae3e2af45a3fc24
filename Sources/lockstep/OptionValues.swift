import ArgumentParser
import Foundation
import Hypervisor

/// Option values that several commands take, checked the same way everywhere: one line naming
/// the option, the value and what to give instead.
enum OptionValues {
    /// A duration option: `500ms`, `2s`, `1.5m` (ns, us, ms, s, m, h); a bare number keeps the
    /// option's older unit (`bareUnit`: seconds for most, milliseconds for `--timeout`).
    static func duration(_ text: String, option: String, bareUnit: Duration = .seconds(1),
                         range: ClosedRange<Duration>? = nil) throws -> Duration
    {
        let bare = !text.isEmpty && text.allSatisfy { $0.isASCII && ($0.isNumber || $0 == ".") }
        let parsed = bare && bareUnit == .milliseconds(1) ? DurationParser.duration(text + "ms") : DurationParser.duration(text)
        guard let value = parsed else {
            throw ValidationError("\(option) \(text): expected a duration such as 500ms, 2s or 1m (ns, us, ms, s, m, h)")
        }
        if let range, !range.contains(value) {
            let unit = bare ? (bareUnit == .milliseconds(1) ? " (a bare number is in milliseconds)" : " (a bare number is in seconds)") : ""
            throw ValidationError("\(option) \(text)\(unit): expected \(DurationParser.describe(range.lowerBound)) to \(DurationParser.describe(range.upperBound))")
        }
        return value
    }

    /// A file an option names for writing: its directory must exist and it must not be one.
    static func checkOutputFile(_ path: String, option: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw ValidationError("\(option) \(path): is a directory: give a file name in it")
        }
        let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
        if !FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory) || !isDirectory.boolValue {
            throw ValidationError("\(option) \(path): the directory \(parent) does not exist: create it or give another path")
        }
        if !FileManager.default.isWritableFile(atPath: parent) && !FileManager.default.isWritableFile(atPath: path) {
            throw ValidationError("\(option) \(path): \(parent) is not writable: give another path")
        }
    }
}
