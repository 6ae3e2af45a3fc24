import Foundation

/// A hand-written SVG document: a few primitives appended as text.
struct SVGDocument {
    let width: Double
    let height: Double
    private var body: [String] = []

    /// Okabe-Ito colours (distinguishable with the common colour-vision deficiencies).
    static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999"]

    init(width: Double, height: Double) {
        self.width = width
        self.height = height
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for ch in text {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(ch)
            }
        }
        return out
    }

    static func number(_ v: Double) -> String {
        String(format: "%.2f", v)
    }

    mutating func rect(x: Double, y: Double, width: Double, height: Double, fill: String,
                       stroke: String? = nil, opacity: Double = 1)
    {
        let n = Self.number
        body.append("<rect x=\"\(n(x))\" y=\"\(n(y))\" width=\"\(n(max(0, width)))\" height=\"\(n(max(0, height)))\" fill=\"\(fill)\"" + (stroke.map { " stroke=\"\($0)\"" } ?? "") + (opacity < 1 ? " fill-opacity=\"\(n(opacity))\"" : "") + "/>")
    }

    mutating func line(x1: Double, y1: Double, x2: Double, y2: Double, stroke: String,
                       width: Double = 1, dash: String? = nil)
    {
        let n = Self.number
        body.append("<line x1=\"\(n(x1))\" y1=\"\(n(y1))\" x2=\"\(n(x2))\" y2=\"\(n(y2))\" stroke=\"\(stroke)\" stroke-width=\"\(n(width))\"" + (dash.map { " stroke-dasharray=\"\($0)\"" } ?? "") + "/>")
    }

    mutating func polyline(_ points: [(Double, Double)], stroke: String, width: Double = 2, dash: String? = nil) {
        guard points.count >= 2 else { return }
        let coordinates = points.map { "\(Self.number($0.0)),\(Self.number($0.1))" }.joined(separator: " ")
        body.append("<polyline points=\"\(coordinates)\" fill=\"none\" stroke=\"\(stroke)\" stroke-width=\"\(Self.number(width))\" stroke-linejoin=\"round\"" + (dash.map { " stroke-dasharray=\"\($0)\"" } ?? "") + "/>")
    }

    /// A marker: a circle, or for `square` / `diamond` / `star` the corresponding shape; `hollow`
    /// draws only its outline, in `fill`'s colour, so that a marker under it stays visible.
    mutating func marker(_ shape: MarkerShape, x: Double, y: Double, size: Double, fill: String, hollow: Bool = false,
                         title: String? = nil)
    {
        let n = Self.number
        let tooltip = title.map { "<title>\(Self.escape($0))</title>" } ?? ""
        let paint = hollow ? "fill=\"none\" stroke=\"\(fill)\" stroke-width=\"1.8\"" : "fill=\"\(fill)\""
        switch shape {
        case .circle:
            body.append("<circle cx=\"\(n(x))\" cy=\"\(n(y))\" r=\"\(n(size))\" \(paint)>\(tooltip)</circle>")
        case .square:
            body.append("<rect x=\"\(n(x - size))\" y=\"\(n(y - size))\" width=\"\(n(2 * size))\" height=\"\(n(2 * size))\" \(paint)>\(tooltip)</rect>")
        case .diamond:
            let s = size * 1.35
            body.append("<polygon points=\"\(n(x)),\(n(y - s)) \(n(x + s)),\(n(y)) \(n(x)),\(n(y + s)) \(n(x - s)),\(n(y))\" \(paint)>\(tooltip)</polygon>")
        case .star:
            var points: [String] = []
            for i in 0..<10 {
                let r = i % 2 == 0 ? size * 1.7 : size * 0.75
                let a = Double.pi / 5 * Double(i) - Double.pi / 2
                points.append("\(n(x + r * cos(a))),\(n(y + r * sin(a)))")
            }
            let outline = hollow ? paint : "\(paint) stroke=\"#000\" stroke-width=\"0.6\""
            body.append("<polygon points=\"\(points.joined(separator: " "))\" \(outline)>\(tooltip)</polygon>")
        }
    }

    enum Anchor: String { case start, middle, end }

    mutating func text(_ content: String, x: Double, y: Double, size: Double = 12, anchor: Anchor = .start,
                       weight: String? = nil, fill: String = "#222", rotate: Double? = nil)
    {
        let n = Self.number
        let transform = rotate.map { " transform=\"rotate(\(n($0)) \(n(x)) \(n(y)))\"" } ?? ""
        body.append("<text x=\"\(n(x))\" y=\"\(n(y))\" font-size=\"\(n(size))\" text-anchor=\"\(anchor.rawValue)\" fill=\"\(fill)\"" + (weight.map { " font-weight=\"\($0)\"" } ?? "") + transform + ">\(Self.escape(content))</text>")
    }

    /// The finished document.
    func rendered() -> String {
        let n = Self.number
        return """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" width="\(n(width))" height="\(n(height))" viewBox="0 0 \(n(width)) \(n(height))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">
            <rect x="0" y="0" width="\(n(width))" height="\(n(height))" fill="#ffffff"/>
            \(body.joined(separator: "\n"))
            </svg>

            """
    }
}
