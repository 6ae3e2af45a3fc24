import Foundation
import Logging

/// Lockstep's own messages on standard error, one line each in the product's words:
/// `lockstep: MESSAGE` for notices, `lockstep: warning: MESSAGE`, `lockstep: error: MESSAGE`;
/// at debug and trace level the logger's label and metadata are added.
struct ConsoleLogHandler: LogHandler {
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    let label: String

    init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        FileHandle.standardError.write(Data(Self.line(for: event, label: label, metadata: metadata).utf8))
    }

    /// The line written for `event` (ending in a newline).
    static func line(for event: LogEvent, label: String, metadata: Logger.Metadata) -> String {
        let prefix: String
        switch event.level {
        case .trace, .debug:
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            let details = all.keys.sorted().map { "\($0)=\(all[$0]!)" }.joined(separator: " ")
            prefix = "\(event.level) [\(label)\(details.isEmpty ? "" : " " + details)]: "
        case .info, .notice: prefix = ""
        case .warning: prefix = "warning: "
        case .error, .critical: prefix = "error: "
        }
        let text = "\(event.message)".replacingOccurrences(of: "\n", with: " ")
        return "lockstep: \(prefix)\(text)\n"
    }
}
