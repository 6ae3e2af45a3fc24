import Foundation

/// Rows of text under a header, written as a Markdown table or as CSV (RFC 4180 quoting).
struct Table: Sendable, Equatable {
    var header: [String]
    var rows: [[String]] = []
    /// Columns to right-align in Markdown (numbers).
    var numericColumns: Set<Int> = []

    init(_ header: [String], numericColumns: Set<Int> = []) {
        self.header = header
        self.numericColumns = numericColumns
    }

    mutating func append(_ row: [String]) {
        rows.append(row)
    }

    func markdown() -> String {
        func cell(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ") }
        var lines = ["| " + header.map(cell).joined(separator: " | ") + " |"]
        lines.append("|" + header.indices.map { numericColumns.contains($0) ? "---:|" : "---|" }.joined())
        for row in rows {
            let padded = row + Array(repeating: "", count: max(0, header.count - row.count))
            lines.append("| " + padded.map(cell).joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    func csv() -> String {
        func field(_ s: String) -> String {
            s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        return ([header] + rows).map { $0.map(field).joined(separator: ",") }.joined(separator: "\n") + "\n"
    }
}
