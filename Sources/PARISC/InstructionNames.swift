/// PA-RISC 1.1 instruction names (as in the manual) by encoding, for messages.
public enum InstructionNames {
    /// The manual's name of the instruction `word` encodes, or nil if the encoding is not a PA-RISC
    /// 1.1 instruction (QEMU's private HALT is named too).
    public static func mnemonic(_ word: UInt32) -> String? {
        let op = word >> 26
        switch op {
        case 0x00: return system[(word >> 5) & 0xFF]
        case 0x01: return memoryManagement(word)
        case 0x02: return arithmetic[(word >> 6) & 0x3F]
        case 0x03: return indexedMemory(word)
        case 0x25: return (word >> 11) & 1 != 0 ? "SUBIO" : "SUBI"
        case 0x2C: return (word >> 11) & 1 != 0 ? "ADDITO" : "ADDIT"
        case 0x2D: return (word >> 11) & 1 != 0 ? "ADDIO" : "ADDI"
        case 0x34: return ["VSHD", nil, "SHD", nil, "VEXTRU", "VEXTRS", "EXTRU", "EXTRS"][Int((word >> 10) & 7)]
        case 0x35: return ["ZVDEP", "VDEP", "ZDEP", "DEP", "ZVDEPI", "VDEPI", "ZDEPI", "DEPI"][Int((word >> 10) & 7)]
        case 0x3A: return [0: "BL", 1: "GATE", 2: "BLR", 6: "BV"][(word >> 13) & 7]
        case 0x3F: return word == 0xFFFD_EAD0 ? "HALT (QEMU)" : nil
        default: return major[op]
        }
    }

    static let major: [UInt32: String] = [
        0x04: "SPOP", 0x05: "DIAG", 0x06: "FMPYADD", 0x08: "LDIL", 0x09: "FLDW/FSTW (coprocessor)",
        0x0A: "ADDIL", 0x0B: "FLDD/FSTD (coprocessor)", 0x0C: "COPR (floating point)", 0x0D: "LDO",
        0x0E: "floating point (class 0E)", 0x10: "LDB", 0x11: "LDH", 0x12: "LDW", 0x13: "LDWM",
        0x18: "STB", 0x19: "STH", 0x1A: "STW", 0x1B: "STWM", 0x20: "COMBT", 0x21: "COMIBT",
        0x22: "COMBF", 0x23: "COMIBF", 0x24: "COMICLR", 0x26: "FMPYSUB", 0x28: "ADDBT",
        0x29: "ADDIBT", 0x2A: "ADDBF", 0x2B: "ADDIBF", 0x30: "BVB", 0x31: "BB", 0x32: "MOVB",
        0x33: "MOVIB", 0x38: "BE", 0x39: "BLE",
    ]

    static let system: [UInt32: String] = [
        0x00: "BREAK", 0x20: "SYNC", 0x60: "RFI", 0x65: "RFIR", 0x6B: "SSM", 0x73: "RSM",
        0xC3: "MTSM", 0x85: "LDSID", 0xC1: "MTSP", 0x25: "MFSP", 0xC2: "MTCTL", 0x45: "MFCTL",
    ]

    static let arithmetic: [UInt32: String] = [
        0x00: "ANDCM", 0x08: "AND", 0x09: "OR", 0x0A: "XOR", 0x0E: "UXOR", 0x11: "DS",
        0x22: "COMCLR", 0x26: "UADDCM", 0x27: "UADDCMT", 0x2E: "DCOR", 0x2F: "IDCOR",
        0x18: "ADD", 0x19: "SH1ADD", 0x1A: "SH2ADD", 0x1B: "SH3ADD", 0x28: "ADDL",
        0x29: "SH1ADDL", 0x2A: "SH2ADDL", 0x2B: "SH3ADDL", 0x38: "ADDO", 0x39: "SH1ADDO",
        0x3A: "SH2ADDO", 0x3B: "SH3ADDO", 0x1C: "ADDC", 0x3C: "ADDCO", 0x10: "SUB", 0x30: "SUBO",
        0x13: "SUBT", 0x33: "SUBTO", 0x14: "SUBB", 0x34: "SUBBO",
    ]

    static func memoryManagement(_ word: UInt32) -> String? {
        if (word >> 7) & 0x3F == 0x23 {
            return ((word >> 6) & 1 != 0 ? "PROBEW" : "PROBER") + ((word >> 13) & 1 != 0 ? "I" : "")
        }
        if (word >> 12) & 1 != 0 {
            return [0x4A: "FDC", 0xCA: "FDC", 0x4B: "FDCE", 0x4E: "PDC", 0x48: "PDTLB",
                    0x49: "PDTLBE", 0x40: "IDTLBA", 0x41: "IDTLBP", 0x4D: "LPA", 0x4C: "LCI",
            ][(word >> 6) & 0xFF]
        }
        return [0x0A: "FIC", 0x0B: "FICE", 0x08: "PITLB", 0x09: "PITLBE", 0x00: "IITLBA",
                0x01: "IITLBP"][(word >> 6) & 0x3F]
    }

    static func indexedMemory(_ word: UInt32) -> String? {
        let short = (word >> 12) & 1 != 0
        let names = ["LDB", "LDH", "LDW", nil, nil, nil, "LDWA", "LDCW", "STB", "STH", "STW",
                     nil, "STBY", nil, "STWA", nil]
        guard let name = names[Int((word >> 6) & 0xF)] else { return nil }
        if name.hasPrefix("ST") { return short ? name + "S" : nil }
        return name + (short ? "S" : "X")
    }
}
