import Foundation

/// Reads a child's pipe to its end on a thread of its own, remembering when the first byte and
/// a marker string first arrived (monotonic seconds).
final class OutputCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private var firstByteAt: Double?
    private var markerAt: Double?
    private let marker: [UInt8]
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle, marker: String?) {
        self.marker = marker.map { Array($0.utf8) } ?? []
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData
                let now = BenchClock.now()
                if chunk.isEmpty { break }
                lock.withLock {
                    if firstByteAt == nil { firstByteAt = now }
                    let searchFrom = max(0, data.count - self.marker.count)
                    data.append(chunk)
                    if markerAt == nil, !self.marker.isEmpty, contains(self.marker, from: searchFrom) {
                        markerAt = now
                    }
                }
            }
            done.signal()
        }
    }

    private func contains(_ needle: [UInt8], from start: Int) -> Bool {
        guard data.count >= needle.count else { return false }
        let bytes = [UInt8](data[(data.startIndex + start)...])
        guard bytes.count >= needle.count else { return false }
        for i in 0...(bytes.count - needle.count) where bytes[i] == needle[0] {
            if Array(bytes[i..<i + needle.count]) == needle { return true }
        }
        return false
    }

    /// What has arrived so far.
    func snapshot() -> String { lock.withLock { String(decoding: data, as: UTF8.self) } }

    /// Everything, once the pipe is closed (at most `seconds` of waiting).
    func finish(waiting seconds: Double) -> (text: String, firstByteAt: Double?, markerAt: Double?) {
        _ = done.wait(timeout: .now() + seconds)
        return lock.withLock { (String(decoding: data, as: UTF8.self), firstByteAt, markerAt) }
    }
}
