import TestSupport
import Foundation
import PARISC

/// A minimal static hppa32 ELF executable: one RWX PT_LOAD segment holding `code` at
/// `codeAddress` and `data` at `codeAddress + dataOffset`. Enough for qemu-hppa-static and for
/// Lockstep's loader.
enum MinimalELF {
    static let codeAddress: UInt32 = 0x10000
    static let dataOffset: UInt32 = 0x8000
    static var dataAddress: UInt32 { codeAddress + dataOffset }

    static func make(code: [UInt32], data: [UInt8]) -> [UInt8] {
        precondition(code.count * 4 <= Int(dataOffset))
        var segment = [UInt8](repeating: 0, count: Int(dataOffset) + data.count)
        for (i, word) in code.enumerated() {
            for b in 0..<4 { segment[4 * i + b] = UInt8(truncatingIfNeeded: word >> (24 - 8 * UInt32(b))) }
        }
        segment.replaceSubrange(Int(dataOffset)..<Int(dataOffset) + data.count, with: data)
        var file: [UInt8] = []
        func half(_ v: UInt16) { file += [UInt8(v >> 8), UInt8(v & 0xFF)] }
        func word(_ v: UInt32) {
            file += [UInt8(v >> 24), UInt8(truncatingIfNeeded: v >> 16),
                     UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)]
        }
        file += [0x7F, 0x45, 0x4C, 0x46, 1, 2, 1, 3] + [UInt8](repeating: 0, count: 8)
        half(2); half(15); word(1)                          // ET_EXEC, EM_PARISC, EV_CURRENT
        word(codeAddress); word(52); word(0)                // entry, phoff, shoff
        word(0x210)                                         // e_flags: PA-RISC 1.1
        half(52); half(32); half(1); half(40); half(0); half(0)
        word(1); word(0x1000); word(codeAddress); word(codeAddress)   // PT_LOAD at file 0x1000
        word(UInt32(segment.count)); word(UInt32(segment.count)); word(7); word(0x1000)
        file += [UInt8](repeating: 0, count: 0x1000 - file.count)
        return file + segment
    }
}

/// One entry of a `qemu-hppa-static -singlestep -d cpu,nochain` trace: the state before an
/// instruction (QEMU 7.2's `hppa_cpu_dump_state`).
///
/// QEMU 7.2 folds the eight digit carries into the PSW value incorrectly (a carry out of digit 4
/// shows as C/B bit 1, digits 5 and 6 are lost), while its internal carry vector — what ADDC,
/// SUBB, DS and DCOR use — is right. So entries compare the PSW without C/B bits 0-6 and the
/// digit carries from the trace's `CB` column (the carry vector shifted right by 4: the carry out
/// of digit k is bit 4k).
struct QEMUTraceEntry: Equatable, CustomStringConvertible {
    var front: UInt32 = 0
    var back: UInt32 = 0
    /// The PSW without C/B bits 0-6 (the word carry, bit 15, stays).
    var psw: UInt32 = 0
    /// The carries out of digits 0...6 (bit k = digit k).
    var digitCarries: UInt32 = 0
    var gr = [UInt32](repeating: 0, count: 32)

    static let digitCarryMask: UInt32 = 0x7F00

    var description: String {
        "IA_F \(hex(front)) IA_B \(hex(back)) PSW \(hex(psw)) digits \(String(digitCarries, radix: 2)) "
            + (1..<32).map { "r\($0)=\(hex(gr[$0]))" }.joined(separator: " ")
    }

    static func parse(_ log: String) -> [QEMUTraceEntry] {
        var entries: [QEMUTraceEntry] = []
        var current: QEMUTraceEntry?
        for line in log.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let key = fields.first else { continue }
            if key == "IA_F", fields.count >= 4 {
                if let c = current { entries.append(c) }
                current = QEMUTraceEntry()
                current?.front = UInt32(fields[1], radix: 16) ?? 0
                current?.back = UInt32(fields[3], radix: 16) ?? 0
            } else if key == "PSW", fields.count >= 4 {
                current?.psw = (UInt32(fields[1], radix: 16) ?? 0) & ~digitCarryMask
                let vector = UInt32(fields[3], radix: 16) ?? 0
                var digits: UInt32 = 0
                for k in 0..<7 where vector & (1 << UInt32(4 * k)) != 0 { digits |= 1 << UInt32(k) }
                current?.digitCarries = digits
            } else if key.hasPrefix("GR") {
                var i = 0
                while i + 1 < fields.count {
                    if let n = Int(fields[i].dropFirst(2)), n < 32 {
                        current?.gr[n] = UInt32(fields[i + 1], radix: 16) ?? 0
                    }
                    i += 2
                }
            }
        }
        if let c = current { entries.append(c) }
        return entries
    }

    /// The same fields of a Lockstep CPU state.
    init(_ state: PARISCCPUState) {
        front = state.iaoqFront
        back = state.iaoqBack
        psw = state.psw & ~Self.digitCarryMask
        digitCarries = state.carryBorrowBits & 0x7F
        gr = (0..<32).map { state[gr: $0] }
    }

    init() {}

    /// QEMU skips a nullified instruction on the same page without a trace entry (its
    /// `use_nullify_skip`): when `self` (Lockstep: front = the nullified instruction, N = 1) and
    /// `qemu` (front = the instruction after it) differ only in that, `self` advanced past it.
    func skippingNullified(toMatch qemu: QEMUTraceEntry) -> QEMUTraceEntry {
        guard psw & PSW.n != 0, qemu.psw & PSW.n == 0, qemu.front == back else { return self }
        var skipped = self
        skipped.front = back
        skipped.back = back &+ 4
        skipped.psw &= ~PSW.n
        return skipped
    }
}

func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}

