import Logging

/// Logs what a guest did wrong to a device, at most `limit` lines per kind, and counts every
/// occurrence. Not part of any device's replicated state: it only reports.
///
/// A device never crashes on a guest-controlled value; it does what the hardware would do and
/// records the event here, so a misbehaving guest cannot flood the host's log either.
struct MisbehaviorLog<Kind: Hashable & RawRepresentable & Sendable> where Kind.RawValue == String {
    /// Lines logged per kind before the log goes quiet for that kind.
    static var limit: Int { 4 }

    let logger: Logger
    private(set) var counts: [Kind: Int] = [:]

    init(logger: Logger) { self.logger = logger }

    /// Records one occurrence of `kind`; logs `message` unless this kind has been logged
    /// `limit` times already.
    mutating func report(_ kind: Kind, _ message: @autoclosure () -> String) {
        let seen = counts[kind, default: 0]
        counts[kind] = seen + 1
        if seen < Self.limit {
            logger.warning("\(message())", metadata: ["guest-error": "\(kind.rawValue)"])
        } else if seen == Self.limit {
            logger.warning(
                "further '\(kind.rawValue)' guest errors on this device are counted, not logged",
                metadata: ["guest-error": "\(kind.rawValue)"])
        }
    }
}
