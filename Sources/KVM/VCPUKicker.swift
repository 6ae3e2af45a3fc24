import CKVM
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A thread-safe handle that makes a vCPU's `run()` return `.interrupted`.
///
/// Obtain it from `VCPU.kicker` on the vCPU's thread and hand it to any other thread. `kick()`
/// works like QEMU's vCPU kick: if the vCPU thread is inside `run()`, it sends that thread the
/// kick signal (`pthread_kill`), whose handler sets `kvm_run.immediate_exit = 1`, so `KVM_RUN`
/// returns EINTR at once or at its next entry; otherwise the kick is remembered and the next
/// `run()` returns `.interrupted` without entering the guest. Several kicks before the vCPU
/// notices them coalesce into one `.interrupted`. Where the guest stops is nondeterministic.
public struct VCPUKicker: Sendable {
    let state: KickState

    /// Makes the vCPU's current or next `run()` return `.interrupted`.
    /// The corresponding C calls are `pthread_kill(thread, SIGUSR1)` and the handler's store to
    /// `kvm_run.immediate_exit`.
    public func kick() {
        state.kick()
    }
}

/// The kick state shared by a `VCPU` and its `VCPUKicker`s.
final class KickState: Sendable {
    private struct State {
        /// The thread currently inside `VCPU.run()`, if any.
        var runningThread: pthread_t?
        /// A kick not yet seen by `run()` returning `.interrupted`: one that arrived while no
        /// thread was inside `run()`, or one signalled to a thread that may already have left
        /// `KVM_RUN` (its signal can then land after the handler's pointer was cleared).
        var pending = false
    }

    // Lock order: this is a leaf lock; nothing else is taken while it is held.
    private let state = Mutex(State())

    /// Called by the vCPU thread just before `KVM_RUN`. Returns false if a kick is pending, in
    /// which case the caller must not enter the guest and reports `.interrupted`.
    func enter() -> Bool {
        state.withLock { state in
            if state.pending {
                state.pending = false
                return false
            }
            state.runningThread = pthread_self()
            return true
        }
    }

    /// Called by the vCPU thread just after `KVM_RUN`; `interrupted` says whether it returned
    /// EINTR (every kick so far is then honoured). `body` runs under the lock (clearing
    /// `immediate_exit` there orders it with concurrent kicks).
    func leave(interrupted: Bool, _ body: () -> Void) {
        state.withLock { state in
            state.runningThread = nil
            if interrupted { state.pending = false }
            body()
        }
    }

    func kick() {
        state.withLock { state in
            if let thread = state.runningThread {
                // The thread is inside run() and cannot leave it while we hold the lock, so the
                // pthread_t is valid. The kick stays pending until a run() returns EINTR, in case
                // the signal arrives only after KVM_RUN returned for another reason.
                _ = pthread_kill(thread, VCPU.kickSignal)
            }
            state.pending = true
        }
    }
}
