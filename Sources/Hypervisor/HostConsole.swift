import Foundation
import Logging

/// The host end of the guest console: bytes typed on standard input, waiting to be delivered at
/// an epoch boundary, and the guest's output written to standard output.
///
/// Standard input is read on its own thread; everything else is called from the machine's thread.
/// All state is guarded by `condition`. With a `bufferLimit`, the reader stops reading while that
/// many bytes wait, so a fast writer (`yes | lockstep run ...`) is held back by its pipe instead of
/// filling memory: the guest's UART takes input only as fast as the guest reads it.
public final class HostConsole: @unchecked Sendable {
    private let condition = NSCondition()
    private var pending: [UInt8] = []
    private var closed = false
    private var received: UInt64 = 0
    private var skip: UInt64 = 0
    /// All the bytes `discardInput` was asked to drop.
    private var discarded: UInt64 = 0
    private let output: FileHandle?
    private let framing: Framing
    private let bufferLimit: Int?

    /// How guest output is written.
    public enum Framing: Sendable {
        /// The bytes as they are.
        case raw
        /// Numbered frames (`ConsoleFrame`), for the console of `lockstep pair`.
        case frames
    }

    /// The buffer limit of a console whose input is taken only by the guest (`lockstep run`,
    /// a primary): 1 MiB.
    public static let defaultBufferLimit = 1 << 20

    /// A console reading `input` (nil: no input, closed from the start) and writing `output`
    /// (nil: output is discarded), holding at most `bufferLimit` bytes of input not yet taken
    /// (nil: no limit, for a backup, which takes nothing until it is live).
    public init(input: FileHandle?, output: FileHandle?, framing: Framing = .raw, bufferLimit: Int? = nil) {
        self.output = output
        self.framing = framing
        self.bufferLimit = bufferLimit
        if let input {
            let thread = Thread { [self] in readLoop(input) }
            thread.name = "lockstep-console-input"
            thread.start()
        } else {
            closed = true
        }
    }

    private static let logger = Logger(label: "lockstep.console")

    /// The next bytes from `handle` (whatever is available, up to 64 KiB), waiting for them;
    /// empty at end of input. A read error (a directory or a failing device as input) is
    /// reported once as `what` and taken as end of input; a handle left non-blocking by whoever
    /// started us is waited for with poll(2). (Foundation's `availableData` traps on either, and
    /// its `read(upToCount:)` waits for the whole count.)
    public static func readChunk(from handle: FileHandle, what: String) -> Data {
        let fd = handle.fileDescriptor
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            // The corresponding C call is read(2) into the array's storage.
            let count = read(fd, &buffer, buffer.count)
            if count >= 0 { return Data(buffer[0..<count]) }
            switch errno {
            case EINTR:
                continue
            case EAGAIN:
                var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                _ = poll(&ready, 1, -1)
            case let error:
                logger.warning("\(what) cannot be read (\(String(cString: strerror(error)))); taking it as ended")
                return Data()
            }
        }
    }

    private func readLoop(_ input: FileHandle) {
        while true {
            if let bufferLimit {
                condition.lock()
                while pending.count >= bufferLimit { condition.wait() }
                condition.unlock()
            }
            let data = Self.readChunk(from: input, what: "console input")
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
        defer {
            condition.broadcast()
            condition.unlock()
        }
        let now = Int(min(count, UInt64(pending.count)))
        pending.removeFirst(now)
        skip += count - UInt64(now)
        discarded += count
    }

    /// How many bytes of input `discardInput` has dropped in all: a backup that goes on to join
    /// another replica with this console counts from there.
    public var inputDiscarded: UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return discarded
    }

    /// Takes the bytes typed so far, at most `limit` of them (the rest wait for the next call).
    public func takeInput(limit: Int = .max) -> [UInt8] {
        condition.lock()
        defer {
            condition.broadcast()
            condition.unlock()
        }
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

    /// Makes guest output visible: output record `sequence` (0: not a numbered record), which
    /// only framed output carries. If standard output fails (a closed pipe, a full disk), the
    /// run goes on: the failure is reported once and the guest's further output is dropped.
    public func write(_ bytes: [UInt8], sequence: UInt64 = 0) {
        guard !bytes.isEmpty, let output, !outputFailed else { return }
        do {
            switch framing {
            case .raw: try output.write(contentsOf: Data(bytes))
            case .frames: try output.write(contentsOf: Data(ConsoleFrame.encode(sequence: sequence, bytes: bytes)))
            }
        } catch {
            outputFailed = true
            if Self.posixCode(of: error) == EPIPE {
                Self.logger.warning("standard output was closed: the guest's further console output is dropped")
            } else {
                Self.logger.error("console output cannot be written (\(Self.describe(error))); the guest's further output is dropped")
            }
        }
    }

    /// Set once writing guest output failed (machine thread only).
    private var outputFailed = false

    /// The errno behind a Foundation file error, if there is one.
    static func posixCode(of error: any Error) -> Int32? {
        let e = error as NSError
        if e.domain == NSPOSIXErrorDomain { return Int32(e.code) }
        if let underlying = e.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return Int32(underlying.code)
        }
        return nil
    }

    static func describe(_ error: any Error) -> String {
        posixCode(of: error).map { String(cString: strerror($0)) } ?? "\(error)"
    }
}
