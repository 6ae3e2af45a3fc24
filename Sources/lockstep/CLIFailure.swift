import Foundation
import Hypervisor
import Loader
import MachineCore
import Replication
import X86

/// An error the command reports as one line on standard error, with an exit status.
struct CLIFailure: Error, CustomStringConvertible {
    let message: String
    let status: Int32

    init(_ message: String, status: Int32) {
        self.message = message
        self.status = status
    }

    /// The line and status for any error a command can meet.
    init(_ error: any Error) {
        switch error {
        case let e as CLIFailure:
            self = e
        case let e as SetupError:
            switch e {
            case .hostUnavailable: self.init(e.description, status: ExitStatus.unavailable)
            case .memorySize, .epochClockMismatch, .epochLength, .engineMismatch, .emulatorOption:
                self.init(e.description, status: ExitStatus.usage)
            case .disk(.inUse): self.init(e.description, status: ExitStatus.unavailable)
            case .image, .userProgram, .disk: self.init(e.description, status: ExitStatus.badInput)
            }
        case let e as LoaderError:
            self.init(e.description, status: ExitStatus.badInput)
        case let e as ReplicationError:
            switch e {
            case .lostArbiter: self.init(e.description, status: ExitStatus.lostArbiter)
            case .mismatch: self.init(e.description, status: ExitStatus.outputMismatch)
            case .outvoted: self.init(e.description, status: ExitStatus.outvoted)
            default: self.init(e.description, status: ExitStatus.replicationFailed)
            }
        case let e as RejoinBehind:
            self.init(e.description, status: ExitStatus.lostArbiter)
        case let e as BackupLostArbiter:
            self.init(e.description, status: ExitStatus.lostArbiter)
        case let e as HandshakeFailure:
            self.init("replication handshake failed: \(e)", status: ExitStatus.replicationFailed)
        case let e as SoftErrorSyntaxError:
            self.init(e.description, status: ExitStatus.usage)
        case let e as KeyFileError:
            self.init(e.description, status: ExitStatus.usage)
        case let e as ArbiterError:
            self.init(e.description, status: ExitStatus.unavailable)
        case let e as X86Error:
            switch e {
            case .kvmUnavailable, .epochClockUnavailable, .needsCPL0:
                self.init(e.description, status: ExitStatus.unavailable)
            case .image, .layout:
                self.init(e.description, status: ExitStatus.badInput)
            case .memory:
                self.init(e.description, status: ExitStatus.unavailable)
            case .kvm, .disassembler, .counterOvershoot:
                self.init(e.description, status: ExitStatus.internalError)
            }
        case let e as SnapshotError:
            switch e {
            case .unsupported: self.init(e.description, status: ExitStatus.usage)
            case .writeFailed: self.init(e.description, status: ExitStatus.hostIO)
            case .notASnapshot, .unsupportedVersion, .truncated, .checksumMismatch, .recordTooLarge,
                 .malformed, .foreign, .digestMismatch, .io:
                self.init(e.description, status: ExitStatus.badInput)
            }
        case let e as EnvironmentError:
            self.init(e.description, status: ExitStatus.internalError)
        case let e as CustomStringConvertible:
            self.init(e.description, status: ExitStatus.internalError)
        default:
            self.init("\(error)", status: ExitStatus.internalError)
        }
    }

    var description: String { message }

    /// Prints the line and exits.
    func exit() -> Never {
        FileHandle.standardError.write(Data("lockstep: \(message)\n".utf8))
        Foundation.exit(status)
    }
}
