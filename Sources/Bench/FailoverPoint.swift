import Foundation

/// Summary of the trials of one engine, guest, failure kind and timeout.
struct FailoverPoint: Codable, Sendable {
    var engine: String
    var guest: String
    var failure: String
    var timeoutMilliseconds: Int
    var trials: Int
    var succeeded: Int
    var live: Summary?
    var detection: Summary?
}
