import Foundation

/// The host end of the guest console: bytes typed on standard input, waiting to be delivered at
/// an epoch boundary, and the guest's output written to standard output.
///
/// Standard input is read on its own thread; everything else is called from the machine's thread.
/// All state is guarded by `condition`.
public final class HostConsole: @unchecked Sendable {
    private let condition = NSCondition()
    private var pending: [UInt8] = []
    private var closed = false
    private var received: UInt64 = 0
    private var skip: UInt64 = 0
    private let output: FileHandle?

    /// A console reading `input` (nil: no input, closed from the start) and writing `output`
    /// (nil: output is discarded).
    public init(input: FileHandle?, output: FileHandle?) {
        self.output = output
        if let input {
            let thread = Thread { [self] in readLoop(input) }
            thread.name = "lockstep-console-input"
            thread.start()
        } else {
            closed = true
        }
    }

    private func readLoop(_ input: FileHandle) {
        while true {
            let data = input.availableData
            condition.lock()
            if data.isEmpty {
                closed = true
            } else {
                var bytes = [UInt8](data)
                received += UInt64(bytes.count)
                if skip > 0 {
                    let dropped = Int(min(skip, UInt64(bytes.count)))
                    bytes.removeFirst(dropped)
                    skip -= UInt64(dropped)
                }
                pending += bytes
            }
            condition.broadcast()
            condition.unlock()
            if data.isEmpty { return }
        }
    }

    /// Discards the first `count` bytes of input (already delivered to the guest by other means,
    /// such as a primary's log), including bytes not yet read.
    public func discardInput(count: UInt64) {
        condition.lock()
        defer { condition.unlock() }
        let now = Int(min(count, UInt64(pending.count)))
        pending.removeFirst(now)
        skip += count - UInt64(now)
    }

    /// Takes the bytes typed so far, at most `limit` of them (the rest wait for the next call).
    public func takeInput(limit: Int = .max) -> [UInt8] {
        condition.lock()
        defer { condition.unlock() }
        guard pending.count > limit else {
            defer { pending.removeAll() }
            return pending
        }
        let bytes = Array(pending.prefix(limit))
        pending.removeFirst(limit)
        return bytes
    }

    /// Whether bytes are waiting to be taken.
    public var hasInput: Bool {
        condition.lock()
        defer { condition.unlock() }
        return !pending.isEmpty
    }

    /// Whether input is closed and every byte has been taken.
    public var isExhausted: Bool {
        condition.lock()
        defer { condition.unlock() }
        return closed && pending.isEmpty
    }

    /// Blocks until input is available or until `deadline`; without a deadline, until input is
    /// available or closed. Returns whether input is available. (Closed input does not cut a
    /// deadline's wait short: the caller is waiting for a timer too.)
    @discardableResult
    public func waitForInput(until deadline: Date? = nil) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while pending.isEmpty {
            if let deadline {
                if !condition.wait(until: deadline) { break }
            } else {
                if closed { break }
                condition.wait()
            }
        }
        return !pending.isEmpty
    }

    /// Makes guest output visible.
    public func write(_ bytes: [UInt8]) {
        guard !bytes.isEmpty, let output else { return }
        output.write(Data(bytes))
    }
}
