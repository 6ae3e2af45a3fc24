import Foundation
import KVM
import Testing

/// Tests of the KVM layer's pure value logic; they need no /dev/kvm.
@Suite("KVM values and decoding")
struct ValueTests {
    @Test("an unknown exit reason decodes to .unsupported(raw); a synthetic IO page decodes like a live one")
    func unsupportedExitReason() {
        var page = [UInt8](repeating: 0, count: 4096)
        let reasonOffset = VCPUExit.exitReasonOffset
        #expect(reasonOffset == 8)  // struct kvm_run ABI
        func setReason(_ raw: UInt32) {
            for i in 0..<4 { page[reasonOffset + i] = UInt8(truncatingIfNeeded: raw >> (8 * UInt32(i))) }
        }
        setReason(0xDEAD)
        #expect(VCPUExit.decode(kvmRun: page) == .unsupported(0xDEAD))
        setReason(41)  // past every KVM_EXIT_* this module knows
        #expect(VCPUExit.decode(kvmRun: page) == .unsupported(41))

        // KVM_EXIT_IO (2): the union starts at byte 32: direction, size, port, count, data_offset.
        setReason(2)
        page[32] = 1                        // KVM_EXIT_IO_OUT
        page[33] = 1                        // size
        page[34] = 0xF8; page[35] = 0x03    // port 0x3F8
        page[36] = 2                        // count
        page[40] = 0x00; page[41] = 0x08    // data_offset 0x800
        page[0x800] = 0x48; page[0x801] = 0x69
        #expect(VCPUExit.decode(kvmRun: page) == .ioOut(port: 0x3F8, size: 1, count: 2, data: [0x48, 0x69]))

        // KVM_EXIT_HLT (5) and KVM_EXIT_SHUTDOWN (8) carry no data.
        setReason(5)
        #expect(VCPUExit.decode(kvmRun: page) == .hlt)
        setReason(8)
        #expect(VCPUExit.decode(kvmRun: page) == .shutdown)
    }

    @Test("XSAVE and FPU bytes encode as hexadecimal, decode from it or from older arrays, and refuse anything else")
    func vcpuByteStrings() throws {
        let xsave = XSAVEState(bytes: (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        let encoded = try JSONEncoder().encode(xsave)
        #expect(String(decoding: encoded, as: UTF8.self).hasPrefix("{\"bytes\":\"00070e15"))
        #expect(try JSONDecoder().decode(XSAVEState.self, from: encoded) == xsave)
        // Snapshots written before: arrays of numbers.
        #expect(try JSONDecoder().decode(XSAVEState.self, from: Data(#"{"bytes":[1,2,255]}"#.utf8)).bytes == [1, 2, 255])
        #expect(try JSONDecoder().decode(XSAVEState.self, from: Data(#"{"bytes":"0A0b"}"#.utf8)).bytes == [10, 11])
        for hostile in [#"{"bytes":"abc"}"#, #"{"bytes":"zz"}"#, #"{"bytes":"0x"}"#, #"{"bytes":[256]}"#, #"{"bytes":7}"#, "{}"] {
            #expect(throws: (any Error).self, "\(hostile)") { try JSONDecoder().decode(XSAVEState.self, from: Data(hostile.utf8)) }
        }
        var fpu = FPUState()
        fpu.xmm[3] = Array(0..<16)
        fpu.fpr[7] = Array(repeating: 0xFF, count: 16)
        fpu.lastIP = 0x1234
        let fpuEncoded = try JSONEncoder().encode(fpu)
        #expect(String(decoding: fpuEncoded, as: UTF8.self).contains("000102030405060708090a0b0c0d0e0f"))
        #expect(try JSONDecoder().decode(FPUState.self, from: fpuEncoded) == fpu)
        // The synthesized encoding of before (arrays of arrays of numbers) still decodes.
        let legacy = #"{"fpr":[[1]],"fcw":895,"fsw":0,"ftwx":0,"lastOpcode":0,"lastIP":5,"lastDP":0,"xmm":[[2,3]],"mxcsr":8064}"#
        let old = try JSONDecoder().decode(FPUState.self, from: Data(legacy.utf8))
        #expect(old.fpr == [[1]] && old.xmm == [[2, 3]] && old.lastIP == 5 && old.mxcsr == 0x1F80)
    }

    @Test("DirtyBitmap sets, clears and lists pages")
    func bitmapValue() {
        var bitmap = DirtyBitmap(pageCount: 130, dirtyPages: [0, 63, 64, 129])
        #expect(bitmap.words.count == 3)
        #expect(bitmap.dirtyPages == [0, 63, 64, 129])
        #expect(bitmap.dirtyCount == 4)
        bitmap[63] = false
        #expect(!bitmap[63] && bitmap[64])
        #expect(bitmap.dirtyPages == [0, 64, 129])
    }

    @Test("hardware breakpoints encode DR7 (L, R/W and LEN per slot, plus GE)")
    func dr7Encoding() {
        let debug = GuestDebug.hardwareBreakpoints([
            HardwareBreakpoint(address: 0x1000),
            HardwareBreakpoint(address: 0x2000, kind: .write(length: 4)),
        ])
        #expect(debug.control == [.enable, .useHardwareBreakpoints])
        #expect(debug.debugRegisters[0] == 0x1000 && debug.debugRegisters[1] == 0x2000)
        // GE (bit 9) | L0 (bit 0) | L1 (bit 2) | RW1 = 01 (bits 20-21) | LEN1 = 11 (bits 22-23)
        #expect(debug.debugRegisters[7] == 0x200 | 0x1 | 0x4 | 1 << 20 | 3 << 22)
        #expect(GuestDebug.singleStep.control == [.enable, .singleStep])
    }

    @Test("MP states and exit sub-kinds decode with an escape hatch")
    func enums() {
        #expect(MPState(rawValue: 3) == .halted)
        #expect(MPState(rawValue: 99) == .unsupported(99))
        #expect(MPState.unsupported(99).rawValue == 99)
        let debug = DebugExit(exception: 1, pc: 0x1003, dr6: 0xFFFF_4FF0, dr7: 0x400)
        #expect(debug.isSingleStep && debug.hardwareBreakpointsHit.isEmpty)
        #expect(DebugExit(exception: 1, pc: 0, dr6: 0xFFFF_0FF1, dr7: 0).hardwareBreakpointsHit == [0])
    }
}
