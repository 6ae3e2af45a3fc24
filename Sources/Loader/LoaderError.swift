import MachineCore

/// Why a guest image could not be loaded. Each case's description is one line for the user.
public enum LoaderError: Error, Equatable, Sendable, CustomStringConvertible {
    /// There is no file at the path.
    case fileNotFound(path: String)
    /// The path names a directory, not a file.
    case isDirectory(path: String)
    /// The path names something other than a regular file (a device, a FIFO, a socket).
    case notRegularFile(path: String)
    /// The file exists but cannot be read.
    case unreadable(path: String)
    /// The file does not start with the ELF magic.
    case notELF(path: String)
    /// libelf rejected the file, or a header is inconsistent.
    case malformed(path: String, reason: String)
    /// The ELF is for an instruction set Lockstep does not run.
    case unsupportedMachine(path: String, machine: String)
    /// The ELF has no loadable segment.
    case noLoadableSegments(path: String)
    /// A loadable segment does not fit in guest RAM.
    case segmentOutsideRAM(path: String, address: UInt64, size: UInt64, ramSize: UInt64)
    /// A Multiboot header is present but invalid.
    case invalidMultibootHeader(path: String, reason: String)
    /// The Multiboot information (command line, memory map) does not fit where it must go.
    case bootInfoTooLarge(reason: String)

    public var description: String {
        switch self {
        case .fileNotFound(let path): "\(path): no such file"
        case .isDirectory(let path): "\(path): is a directory, not a guest kernel"
        case .notRegularFile(let path): "\(path): not a regular file, not a guest kernel"
        case .unreadable(let path): "\(path): cannot be read"
        case .notELF(let path): "\(path): not an ELF file"
        case .malformed(let path, let reason): "\(path): malformed ELF: \(reason)"
        case .unsupportedMachine(let path, let machine):
            "\(path): ELF for \(machine), but Lockstep runs x86 and PA-RISC guests"
        case .noLoadableSegments(let path): "\(path): ELF has no loadable segments"
        case .segmentOutsideRAM(let path, let address, let size, let ramSize):
            "\(path): segment at 0x\(String(address, radix: 16)) (\(size) bytes) is outside guest RAM (\(ramSize >> 20) MiB)"
        case .invalidMultibootHeader(let path, let reason): "\(path): invalid Multiboot header: \(reason)"
        case .bootInfoTooLarge(let reason): "boot information does not fit: \(reason)"
        }
    }
}
