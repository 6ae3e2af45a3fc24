/// What executes instructions between the run loop's checks (stops, the budget, group-2
/// interruptions), which `Interpreter.run(until:core:)` makes the same for every engine.
///
/// The contract is the interpreter's `runFast(limit:)`: execute counted instructions from the
/// interpreter's state (`s`, `progress`) and return when `progress` reaches `limit` (never past
/// it), after an instruction that asks for a re-check (`.recheck`: system instructions, device
/// accesses), or with a trap or stop. The state on return is exactly the interpreter's at that
/// point; a core may return earlier than the interpreter would (the loop's checks are idempotent
/// between re-check points), never later.
protocol ExecutionCore {
    func run(_ interpreter: inout Interpreter, limit: UInt64) -> Step
    /// Drops every translation (guest memory was written behind the CPU's back: DMA, a restore).
    func invalidate()
}

/// The reference: the interpreter's own loop.
struct InterpreterCore: ExecutionCore {
    @inline(__always)
    func run(_ interpreter: inout Interpreter, limit: UInt64) -> Step {
        interpreter.runFast(limit: limit)
    }

    func invalidate() {}
}

/// The engine a CPU was created with, and its translations.
enum EngineCore {
    case interpreter
    case threaded(BlockCache)
    case jit(JITCore)

    var engine: PARISCEngine {
        switch self {
        case .interpreter: .interpreter
        case .threaded: .threaded
        case .jit: .jit
        }
    }

    var codeLines: CodeLineMap? {
        switch self {
        case .interpreter: nil
        case .threaded(let cache): cache.lines
        case .jit(let core): core.lines
        }
    }

    func invalidate() {
        switch self {
        case .interpreter: break
        case .threaded(let cache): cache.invalidate()
        case .jit(let core): core.invalidate()
        }
    }
}
