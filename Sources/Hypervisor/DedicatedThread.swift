import Foundation

/// Runs work on a thread of its own, never on Swift's cooperative pool: a vCPU or an emulator
/// loop blocks for long stretches, and KVM_RUN must always be entered from the same thread.
public enum DedicatedThread {
    /// Runs `body` on a new thread named `name` and waits for its result.
    public static func run<T: Sendable>(name: String, stackSize: Int = 16 << 20,
                                        _ body: @escaping @Sendable () -> T) -> T
    {
        let box = ResultBox<T>()
        let thread = Thread { box.put(body()) }
        thread.name = name
        thread.stackSize = stackSize
        thread.start()
        return box.take()
    }

    /// Starts `body` on a new thread named `name` and returns at once.
    public static func start(name: String, stackSize: Int = 16 << 20,
                             _ body: @escaping @Sendable () -> Void)
    {
        let thread = Thread(block: body)
        thread.name = name
        thread.stackSize = stackSize
        thread.start()
    }
}

/// A one-shot value handed from one thread to another. Guarded by `condition`.
public final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var value: T?

    public init() {}

    public func put(_ newValue: T) {
        condition.lock()
        value = newValue
        condition.broadcast()
        condition.unlock()
    }

    public func take() -> T {
        condition.lock()
        defer { condition.unlock() }
        while value == nil { condition.wait() }
        return value!
    }
}
