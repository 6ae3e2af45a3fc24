import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A status line on a terminal that never mixes with the console: it lives on the terminal's
/// last row, outside a scrolling region that holds everything else (the guest's output, messages,
/// the user's typing, echoed by the terminal). The status is redrawn with the cursor saved and
/// restored around it, in one write(2), so the cursor, a half-typed line and a guest's partial
/// line stay where they are. (apt draws its progress bar the same way.)
///
/// Off when the file descriptor is no terminal or the terminal has fewer than 3 rows. `finish()`
/// clears the row and gives the whole screen back; call it before exiting.
public final class TerminalStatus: @unchecked Sendable {
    /// Where the display is; guarded by `lock`.
    private enum State {
        /// Not a terminal, too small, or not wanted: nothing is ever drawn.
        case off
        /// A terminal, the region not yet set up.
        case ready
        /// The last row of a terminal of `rows` rows and `columns` columns is the status row.
        case shown(rows: Int, columns: Int)
        /// Given back: nothing is drawn any more.
        case finished
    }

    private let lock = NSLock()
    private let fd: Int32
    private var state: State
    private var text = ""
    private var resizeSource: (any DispatchSourceSignal)?

    /// A status display on `fd` (standard error by default), if `wanted` and it is a terminal.
    public init(wanted: Bool, fd: Int32 = STDERR_FILENO) {
        self.fd = fd
        state = wanted && isatty(fd) != 0 ? .ready : .off
    }

    /// Whether the status is drawn at all.
    public var isOn: Bool {
        lock.withLock {
            switch state {
            case .ready, .shown: true
            case .off, .finished: false
            }
        }
    }

    /// The terminal's size, if `fd` is one.
    static func size(of fd: Int32) -> (rows: Int, columns: Int)? {
        var size = winsize()
        // TIOCGWINSZ fills the winsize structure passed by address.
        guard ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0, size.ws_col > 0 else { return nil }
        return (Int(size.ws_row), Int(size.ws_col))
    }

    /// Shows `status` (one line; cut to the terminal's width) on the status row.
    public func show(_ status: String) {
        lock.withLock {
            text = status
            switch state {
            case .off, .finished:
                return
            case .ready:
                guard let (rows, columns) = Self.size(of: fd), rows >= 3 else {
                    state = .off
                    return
                }
                // A new line first, so that a cursor on the last row gets a row of the region to
                // go back to; the region (rows 1 to rows-1) homes the cursor, hence the save and
                // restore; up one row, back to where the cursor was.
                emit("\n\u{1B}7\u{1B}[1;\(rows - 1)r\u{1B}8\u{1B}[1A")
                state = .shown(rows: rows, columns: columns)
                startWatchingResizes()
                draw(rows: rows, columns: columns)
            case .shown(let rows, let columns):
                draw(rows: rows, columns: columns)
            }
        }
    }

    /// Writes `line` (a message: no newline in it) on rows of its own inserted above the cursor's
    /// row, so that neither a line the guest has not finished nor one the user is typing (the
    /// terminal's echo, which no program sees before Enter) is split or erased: the cursor goes
    /// back to where it was, on its row moved down. Returns false, writing nothing, when the
    /// status is not shown (the caller writes the message as usual).
    ///
    /// How: k line feeds (IND) make k blank rows below the cursor's (scrolling the region if needed),
    /// up k rows to the cursor's line, insert k rows there (pushing it down onto the blank ones),
    /// write the message in them, restore the cursor and move it down k rows (clamped at the
    /// region's bottom, which is exactly where the scrolled line went).
    public func message(_ line: String) -> Bool {
        lock.withLock {
            guard case .shown(_, let columns) = state else { return false }
            let text = String(line.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.map(Character.init))
            let k = max(1, (text.count + columns - 1) / columns)
            // IND (ESC D) and CHA (ESC [ 1 G) rather than LF and CR, which the terminal's output
            // processing treats apart: the whole sequence stays one block, never split by an echo.
            emit("\u{1B}7" + String(repeating: "\u{1B}D", count: k) + "\u{1B}[\(k)A\u{1B}[1G\u{1B}[\(k)L" + text
                 + "\u{1B}8\u{1B}[\(k)B")
            return true
        }
    }

    /// Clears the status row and gives the whole screen back to scrolling.
    public func finish() {
        lock.withLock {
            resizeSource?.cancel()
            resizeSource = nil
            if case .shown(let rows, _) = state {
                emit("\u{1B}7\u{1B}[\(rows);1H\u{1B}[2K\u{1B}[r\u{1B}8")
            }
            state = .finished
        }
    }

    /// Called with `lock` held.
    private func draw(rows: Int, columns: Int) {
        let line = String(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.prefix(columns - 1).map(Character.init))
        emit("\u{1B}7\u{1B}[\(rows);1H\u{1B}[2K\u{1B}[7m\(line)\u{1B}[0m\u{1B}8")
    }

    /// One write(2): the terminal never interleaves another writer's bytes (the guest's output,
    /// the echo of typed keys) inside it.
    private func emit(_ sequence: String) {
        var rest = Array(sequence.utf8)
        while !rest.isEmpty {
            let n = write(fd, rest, rest.count)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            rest.removeFirst(n)
        }
    }

    /// On SIGWINCH: the region follows the new size and the status is drawn again.
    private func startWatchingResizes() {
        signal(SIGWINCH, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGWINCH, queue: .global())
        source.setEventHandler { [weak self] in self?.resized() }
        source.resume()
        resizeSource = source
    }

    private func resized() {
        lock.withLock {
            guard case .shown(let oldRows, _) = state else { return }
            guard let (rows, columns) = Self.size(of: fd), rows >= 3 else {
                emit("\u{1B}7\u{1B}[\(oldRows);1H\u{1B}[2K\u{1B}[r\u{1B}8")
                state = .off
                return
            }
            emit("\u{1B}7\u{1B}[\(oldRows);1H\u{1B}[2K\u{1B}[1;\(rows - 1)r\u{1B}8")
            state = .shown(rows: rows, columns: columns)
            draw(rows: rows, columns: columns)
        }
    }
}
