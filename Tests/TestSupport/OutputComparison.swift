/// Console output after a failover: equal to the fault-free run's, except that one output record
/// (a line, or the partial line that ended an epoch) may appear twice in a row at the failover point.
public enum OutputComparison {
    /// Whether `actual` is `expected`, or `expected` with one record repeated.
    public static func equalUpToOneRepeatedRecord(_ actual: String, _ expected: String) -> Bool {
        if actual == expected { return true }
        let a = Array(actual.utf8), e = Array(expected.utf8)
        let extra = a.count - e.count
        guard extra > 0 else { return false }
        // The first difference is where the repeat starts (or ends).
        var prefix = 0
        while prefix < e.count && a[prefix] == e[prefix] { prefix += 1 }
        // With actual = A B B C and expected = A B C, the first difference lies within the second
        // B or C, so A ends between `prefix - 2 * extra` and `prefix`: try every record B there
        // that is immediately followed by itself.
        let earliest = max(0, prefix - 2 * extra)
        for start in stride(from: prefix, through: earliest, by: -1) {
            let end = start + extra
            guard end + extra <= a.count else { continue }
            let record = Array(a[start..<end])
            guard Array(a[end..<end + extra]) == record else { continue }
            // A record is at most one line: a newline, if any, only at its end.
            guard !record.dropLast().contains(UInt8(ascii: "\n")) else { continue }
            // It must start at a record boundary (start of output, or after a newline, or where an
            // epoch cut a line: accept any position) and removing it must give the expected output.
            if Array(a[..<start]) + Array(a[end...]) == e { return true }
        }
        return false
    }

    /// Whether `actual` is `expected`, or `expected` with one whole line repeated: the repeated
    /// record starts at the beginning of a line and ends with its newline (or ends the output,
    /// as a prompt does). Console records are whole lines on both engines, so a failover may
    /// repeat a line, never a fragment of one.
    public static func equalUpToOneRepeatedLine(_ actual: String, _ expected: String) -> Bool {
        if actual == expected { return true }
        let a = Array(actual.utf8), e = Array(expected.utf8)
        let extra = a.count - e.count
        guard extra > 0 else { return false }
        let newline = UInt8(ascii: "\n")
        var start = 0
        while start + 2 * extra <= a.count {
            let end = start + extra
            let record = a[start..<end]
            if !record.dropLast().contains(newline), record.last == newline || end + extra == a.count,
               a[end..<end + extra] == record, Array(a[..<start]) + Array(a[end...]) == e
            {
                return true
            }
            // The next line start.
            guard let next = a[start...].firstIndex(of: newline) else { break }
            start = next + 1
        }
        return false
    }
}
