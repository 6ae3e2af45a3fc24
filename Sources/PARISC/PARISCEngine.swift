/// How the PA-RISC CPU executes guest code. Every engine gives the same results (instruction by
/// instruction, interruption by interruption, count by count): the interpreter is the reference,
/// and the differential tests run the others against it.
public enum PARISCEngine: String, CaseIterable, Sendable, Codable, CustomStringConvertible {
    /// One instruction at a time from a predecoded-instruction cache (the reference).
    case interpreter
    /// A block cache: basic blocks predecoded once, their budget checked once per block, the
    /// interpreter's handlers run back to back. Measured slower than the interpreter's own loop
    /// (docs/parisc.md), so never the default.
    case threaded
    /// Guest blocks translated to x86-64 machine code (W^X pages), chained, with the interpreter
    /// for system instructions, device accesses, traps and the last instructions of a budget.
    case jit

    public var description: String { rawValue }

    /// The fastest engine this host can run: the JIT where it generates x86-64 code and the host
    /// lets it map executable pages, else the interpreter.
    public static var fastestAvailable: PARISCEngine {
        JITHost.unavailableReason == nil ? .jit : .interpreter
    }

    /// Why this engine cannot run on this host, or nil if it can.
    public var unavailableReason: String? {
        switch self {
        case .interpreter, .threaded: nil
        case .jit: JITHost.unavailableReason
        }
    }

    /// `engine` if it can run here, else the fastest one that can.
    static func resolved(_ engine: PARISCEngine) -> PARISCEngine {
        engine.unavailableReason == nil ? engine : fastestAvailable
    }
}
