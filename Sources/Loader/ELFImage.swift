import CLibElf
import Foundation
import MachineCore

/// The instruction set named in an ELF header's `e_machine`.
public enum ELFMachine: Hashable, Sendable, CustomStringConvertible {
    /// EM_386 (3): also what a Multiboot kernel with 64-bit code inside is, after objcopy.
    case i386
    /// EM_X86_64 (62).
    case x86_64
    /// EM_PARISC (15).
    case parisc
    /// Any other machine, by number.
    case unsupported(UInt16)

    init(raw: UInt16) {
        switch raw {
        case 3: self = .i386
        case 62: self = .x86_64
        case 15: self = .parisc
        default: self = .unsupported(raw)
        }
    }

    /// The guest architecture this machine type runs as, if Lockstep runs it.
    public var architecture: GuestArchitecture? {
        switch self {
        case .i386, .x86_64: .x86_64
        case .parisc: .parisc
        case .unsupported: nil
        }
    }

    public var description: String {
        switch self {
        case .i386: "i386"
        case .x86_64: "x86-64"
        case .parisc: "PA-RISC"
        case .unsupported(let raw): Self.knownNames[raw].map { "\($0) (e_machine \(raw))" } ?? "e_machine \(raw)"
        }
    }

    private static let knownNames: [UInt16: String] = [
        2: "SPARC", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64", 22: "S/390", 40: "ARM",
        43: "SPARC v9", 183: "AArch64", 243: "RISC-V", 258: "LoongArch",
    ]
}

/// A loadable segment (PT_LOAD) of an ELF image.
public struct ELFSegment: Hashable, Sendable {
    /// Virtual address (p_vaddr).
    public let virtualAddress: UInt64
    /// Physical address (p_paddr): where a bare-metal loader places it.
    public let physicalAddress: UInt64
    /// Bytes in memory (p_memsz); the part beyond `bytes` is zero-filled.
    public let memorySize: UInt64
    /// Whether the segment is executable (PF_X).
    public let isExecutable: Bool
    /// Whether the segment is writable (PF_W).
    public let isWritable: Bool
    /// The file bytes (p_filesz of them).
    public let bytes: [UInt8]
}

/// A symbol from the ELF symbol table.
public struct ELFSymbol: Hashable, Sendable {
    public let name: String
    public let value: UInt64
    public let size: UInt64
    /// STT_FUNC.
    public let isFunction: Bool
}

/// A section with code (SHF_EXECINSTR): where the x86 engine looks for environment instructions.
public struct ELFCodeSection: Hashable, Sendable {
    public let name: String
    /// sh_addr (a virtual address).
    public let address: UInt64
    public let bytes: [UInt8]
}

/// A parsed ELF executable: what a bare-metal loader needs. Parsed with Debian's libelf.
public struct ELFImage: Sendable {
    /// Where it was read from (for messages).
    public let path: String
    public let machine: ELFMachine
    /// Whether the file is ELFCLASS64.
    public let is64Bit: Bool
    /// The byte order of the file (EI_DATA).
    public let byteOrder: ByteOrder
    /// e_entry.
    public let entry: UInt64
    /// PT_LOAD segments in file order.
    public let segments: [ELFSegment]
    public let symbols: [ELFSymbol]
    public let codeSections: [ELFCodeSection]
    /// The whole file (a Multiboot header is looked for in its first 8 KiB).
    public let fileBytes: [UInt8]

    /// Reads and parses the ELF file at `path`.
    public static func load(contentsOf path: String) throws(LoaderError) -> ELFImage {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .fileNotFound(path: path)
        }
        guard !isDirectory.boolValue else { throw .isDirectory(path: path) }
        // A device or FIFO could be read forever (/dev/zero) or block (a pipe nobody writes).
        let type = (try? FileManager.default.attributesOfItem(atPath: path))?[.type] as? FileAttributeType
        guard type == .typeRegular else { throw .notRegularFile(path: path) }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadable(path: path)
        }
        return try ELFImage(bytes: [UInt8](data), path: path)
    }

    /// Parses an ELF file held in memory.
    public init(bytes: [UInt8], path: String) throws(LoaderError) {
        guard bytes.count >= 16, bytes[0] == 0x7F, bytes[1] == 0x45, bytes[2] == 0x4C,
              bytes[3] == 0x46
        else { throw .notELF(path: path) }
        let parsed: Result<Parsed, LoaderError> = ELFParser.parse(bytes, path: path)
        let p = try parsed.get()
        guard p.machine.architecture != nil else {
            throw .unsupportedMachine(path: path, machine: p.machine.description)
        }
        guard !p.segments.isEmpty else { throw .noLoadableSegments(path: path) }
        self.path = path
        self.machine = p.machine
        self.is64Bit = p.is64Bit
        self.byteOrder = p.byteOrder
        self.entry = p.entry
        self.segments = p.segments
        self.symbols = p.symbols
        self.codeSections = p.codeSections
        self.fileBytes = bytes
    }

    struct Parsed {
        var machine: ELFMachine
        var is64Bit: Bool
        var byteOrder: ByteOrder
        var entry: UInt64
        var segments: [ELFSegment] = []
        var symbols: [ELFSymbol] = []
        var codeSections: [ELFCodeSection] = []
    }

    /// Copies every segment into `memory` at `place(segment)` (a guest-physical address) and
    /// zero-fills the rest of its memory size.
    public func load(into memory: GuestMemory, placing place: (ELFSegment) -> UInt64)
        throws(LoaderError)
    {
        // Overlapping segments would overwrite each other (a later zero-filled tail wiping an
        // earlier segment's bytes): refuse them.
        let placed = segments.filter { $0.memorySize > 0 }.map { (start: place($0), size: $0.memorySize) }
            .sorted { $0.start < $1.start }
        for (a, b) in zip(placed, placed.dropFirst()) where b.start - a.start < a.size {
            throw .malformed(path: path, reason: "segments at 0x\(String(a.start, radix: 16)) and 0x\(String(b.start, radix: 16)) overlap in guest memory")
        }
        for segment in segments where segment.memorySize > 0 {
            let address = GuestAddress(place(segment))
            guard segment.memorySize >= UInt64(segment.bytes.count),
                  memory.contains(address, count: segment.memorySize)
            else {
                throw .segmentOutsideRAM(path: path, address: address.rawValue,
                                         size: segment.memorySize, ramSize: memory.size)
            }
            do {
                try memory.write(segment.bytes, at: address)
                let tail = segment.memorySize - UInt64(segment.bytes.count)
                if tail > 0, let start = address.advanced(by: UInt64(segment.bytes.count)) {
                    try memory.fill(0, at: start, count: Int(tail))
                }
            } catch {
                throw .segmentOutsideRAM(path: path, address: address.rawValue,
                                         size: segment.memorySize, ramSize: memory.size)
            }
        }
    }

    /// The address of the symbol called `name`, if the image has one.
    public func symbol(named name: String) -> ELFSymbol? {
        symbols.first { $0.name == name }
    }
}

/// The libelf calls. libelf works on a pointer to the file image, so this is the one place in
/// the loader that handles C pointers; every value it returns is copied into Swift types.
enum ELFParser {
    static func parse(_ bytes: [UInt8], path: String) -> Result<ELFImage.Parsed, LoaderError> {
        var copy = bytes
        return copy.withUnsafeMutableBytes { buffer -> Result<ELFImage.Parsed, LoaderError> in
            guard elf_version(UInt32(EV_CURRENT)) != UInt32(EV_NONE) else {
                return .failure(.malformed(path: path, reason: "libelf is out of date"))
            }
            // SAFETY: `buffer` stays alive and unmoved for the whole closure; elf_end releases
            // the descriptor before we return, and libelf only reads the image.
            guard let elf = elf_memory(buffer.baseAddress!.assumingMemoryBound(to: CChar.self),
                                       buffer.count)
            else { return .failure(.malformed(path: path, reason: libelfError())) }
            defer { elf_end(elf) }
            return parse(elf, bytes: bytes, path: path)
        }
    }

    static func libelfError() -> String {
        guard let message = elf_errmsg(-1) else { return "unknown libelf error" }
        return String(cString: message)
    }

    private static func parse(_ elf: OpaquePointer, bytes: [UInt8], path: String)
        -> Result<ELFImage.Parsed, LoaderError>
    {
        guard elf_kind(elf) == ELF_K_ELF else { return .failure(.notELF(path: path)) }
        var ehdr = GElf_Ehdr()
        guard gelf_getehdr(elf, &ehdr) != nil else {
            return .failure(.malformed(path: path, reason: libelfError()))
        }
        let elfClass = gelf_getclass(elf)
        let machine = ELFMachine(raw: ehdr.e_machine)
        var parsed = ELFImage.Parsed(
            machine: machine, is64Bit: elfClass == ELFCLASS64,
            byteOrder: ehdr.e_ident.5 == UInt8(ELFDATA2MSB) ? .big : .little,
            entry: ehdr.e_entry)
        guard machine.architecture != nil else { return .success(parsed) }

        var phnum = 0
        guard elf_getphdrnum(elf, &phnum) == 0 else {
            return .failure(.malformed(path: path, reason: libelfError()))
        }
        for index in 0..<phnum {
            var phdr = GElf_Phdr()
            guard gelf_getphdr(elf, Int32(index), &phdr) != nil else {
                return .failure(.malformed(path: path, reason: libelfError()))
            }
            guard phdr.p_type == UInt32(PT_LOAD) else { continue }
            guard let range = fileRange(offset: phdr.p_offset, size: phdr.p_filesz, in: bytes) else {
                return .failure(.malformed(
                    path: path, reason: "segment \(index) extends past the end of the file"))
            }
            guard phdr.p_memsz >= phdr.p_filesz else {
                return .failure(.malformed(
                    path: path, reason: "segment \(index) is smaller in memory than in the file"))
            }
            parsed.segments.append(ELFSegment(
                virtualAddress: phdr.p_vaddr, physicalAddress: phdr.p_paddr,
                memorySize: phdr.p_memsz,
                isExecutable: phdr.p_flags & UInt32(PF_X) != 0,
                isWritable: phdr.p_flags & UInt32(PF_W) != 0,
                bytes: Array(bytes[range])))
        }

        var shstrndx = 0
        guard elf_getshdrstrndx(elf, &shstrndx) == 0 else { return .success(parsed) }
        var section = elf_nextscn(elf, nil)
        while let scn = section {
            defer { section = elf_nextscn(elf, scn) }
            var shdr = GElf_Shdr()
            guard gelf_getshdr(scn, &shdr) != nil else { continue }
            let name = elf_strptr(elf, shstrndx, Int(shdr.sh_name)).map { String(cString: $0) } ?? ""
            if shdr.sh_type == UInt32(SHT_SYMTAB) {
                parsed.symbols += symbols(in: scn, header: shdr, elf: elf)
            } else if shdr.sh_type == UInt32(SHT_PROGBITS), shdr.sh_flags & UInt64(SHF_EXECINSTR) != 0 {
                guard let range = fileRange(offset: shdr.sh_offset, size: shdr.sh_size, in: bytes) else {
                    return .failure(.malformed(
                        path: path, reason: "code section \(name.isEmpty ? "?" : name) extends past the end of the file"))
                }
                parsed.codeSections.append(ELFCodeSection(
                    name: name, address: shdr.sh_addr, bytes: Array(bytes[range])))
            }
        }
        return .success(parsed)
    }

    /// The file bytes `[offset, offset + size)`, or nil if they are not all inside the file
    /// (including when the sum overflows).
    static func fileRange(offset: UInt64, size: UInt64, in bytes: [UInt8]) -> Range<Int>? {
        let (end, overflow) = offset.addingReportingOverflow(size)
        guard !overflow, end <= UInt64(bytes.count) else { return nil }
        return Int(offset)..<Int(end)
    }

    private static func symbols(in scn: OpaquePointer, header: GElf_Shdr, elf: OpaquePointer)
        -> [ELFSymbol]
    {
        guard header.sh_entsize > 0, let data = elf_getdata(scn, nil) else { return [] }
        var result: [ELFSymbol] = []
        // libelf read the section's data from the file: its size, not the header's claim,
        // bounds the table.
        let count = data.pointee.d_size / Int(clamping: header.sh_entsize)
        for index in 0..<count {
            var sym = GElf_Sym()
            guard gelf_getsym(data, Int32(index), &sym) != nil else { continue }
            guard sym.st_name != 0,
                  let cName = elf_strptr(elf, Int(header.sh_link), Int(sym.st_name))
            else { continue }
            let type = Int32(sym.st_info & 0xF)
            result.append(ELFSymbol(name: String(cString: cName), value: sym.st_value,
                                    size: sym.st_size, isFunction: type == STT_FUNC))
        }
        return result
    }
}
