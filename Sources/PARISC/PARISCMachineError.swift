import Loader
import MachineCore

/// Why a PA-RISC machine could not be created. Each description is one line for the user.
public enum PARISCMachineError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The RAM size is outside 16 MiB ... 3 GiB or not a multiple of 4 KiB.
    case memorySize(UInt64)
    /// Guest RAM could not be reserved.
    case memory(GuestMemoryError)
    /// The image is not a 32-bit big-endian PA-RISC ELF.
    case notPARISC(path: String, reason: String)
    /// Loading the image failed (a segment outside RAM, ...).
    case image(LoaderError)
    /// A segment would overwrite the boot area (command line, return stub) below 0x6000.
    case segmentInBootArea(path: String, address: UInt64)
    /// The entry point is not in RAM.
    case entryOutsideRAM(path: String, entry: UInt64)
    /// The command line (with Lockstep's announcements) does not fit in 4095 bytes.
    case commandLineTooLong(Int)

    public var description: String {
        switch self {
        case .memorySize(let size):
            "guest memory of \(size) bytes is not usable for a PA-RISC guest: it must be a multiple of 4 KiB between 16 MiB and 3 GiB"
        case .memory(let error): error.description
        case .notPARISC(let path, let reason): "\(path): not a PA-RISC 1.1 kernel: \(reason)"
        case .image(let error): error.description
        case .segmentInBootArea(let path, let address):
            "\(path): a segment at 0x\(String(address, radix: 16)) overlaps the boot area below 0x6000 (command line at 0x4000)"
        case .entryOutsideRAM(let path, let entry):
            "\(path): entry point 0x\(String(entry, radix: 16)) is outside guest RAM"
        case .commandLineTooLong(let length):
            "the command line is \(length) bytes with Lockstep's device announcements; at most 4095 fit at 0x4000"
        }
    }
}
