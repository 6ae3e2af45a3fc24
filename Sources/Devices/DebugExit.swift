import Logging
import MachineCore

/// QEMU's isa-debug-exit: a write of value `v` asks the machine to stop with exit status
/// `(v << 1) | 1` (so a guest can never report 0, "success", by accident).
///
/// On x86 it is port 0xF4 (a 4-byte window, as `-device isa-debug-exit,iobase=0xf4,iosize=4`).
/// On PA-RISC it serves as a 32-bit MMIO register: register it with the CPU's byte order
/// (`.big`) so the value the device sees is the integer the guest stored. The value of any write,
/// of any size and at any offset in the window, is used as written (zero-extended), as in QEMU.
/// Reads return 0. The engine checks `exitStatus` after each write it routes here and stops the
/// machine with `MachineStop.exited(status:)`; the operating system keeps the low 8 bits of a
/// process exit status, so 0x31 written gives status 0x63 = 99.
/// The counterpart is QEMU's `hw/misc/debugexit.c`.
public final class DebugExit: BusDevice {
    /// The complete, replicated state.
    public struct State: Codable, Equatable, Sendable {
        /// The requested exit status, once the guest has written.
        public var exitStatus: Int32? = nil
        /// No exit requested.
        public init() {}
    }

    /// What a guest did wrong, as counted in `misbehaviorCounts`.
    public enum Misbehavior: String, Sendable, CaseIterable {
        case read = "read"
        case repeatedExit = "repeated-exit"
    }

    private var s: State
    private var log: MisbehaviorLog<Misbehavior>

    /// Creates the device in `state` (by default: no exit requested).
    public init(state: State = State(), logger: Logger = Logger(label: "lockstep.devices.debug-exit")) {
        self.s = state
        self.log = MisbehaviorLog(logger: logger)
    }

    /// The complete device state, for snapshots and replica comparison.
    public var state: State { s }

    /// Replaces the device state.
    public func restore(_ state: State) { s = state }

    /// How often the guest misbehaved, by kind. Diagnostics only: not part of `state`.
    public var misbehaviorCounts: [Misbehavior: Int] { log.counts }

    /// The exit status the guest asked for, `(value << 1) | 1` truncated to 32 bits, or nil.
    /// The first write wins; the engine should stop the machine as soon as it is set.
    public var exitStatus: Int32? { s.exitStatus }

    /// The value the guest wrote (truncated to 31 bits), once it has: what `lockstep run` exits
    /// with, where QEMU would exit with `exitStatus`.
    public var guestStatus: Int32? {
        s.exitStatus.map { Int32(bitPattern: UInt32(bitPattern: $0) >> 1) }
    }

    /// The exit status QEMU's isa-debug-exit gives for a write of `value`.
    public static func exitStatus(forValue value: UInt64) -> Int32 {
        Int32(truncatingIfNeeded: (value << 1) | 1)
    }

    /// Reads return 0 (QEMU's isa-debug-exit has no readable register).
    public func read(offset: UInt64, size: Int) -> UInt64 {
        log.report(.read, "debug-exit: read at offset \(offset) returns 0")
        return 0
    }

    /// Requests exit with status `(value << 1) | 1`, `value` truncated to `size` bytes.
    public func write(offset: UInt64, size: Int, value: UInt64) {
        let bits = size >= 8 ? 64 : max(size, 1) * 8
        let written = bits == 64 ? value : value & ((1 << UInt64(bits)) - 1)
        guard s.exitStatus == nil else {
            log.report(.repeatedExit, "debug-exit: write of \(written) after an exit was already requested; ignored")
            return
        }
        s.exitStatus = Self.exitStatus(forValue: written)
    }
}
