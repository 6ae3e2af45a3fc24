/// Bits of the PA-RISC 1.1 Processor Status Word, as masks on the 32-bit value (bit names as in
/// the manual and Linux `arch/parisc/include/asm/psw.h`).
public enum PSW {
    /// I: external interrupts enabled.
    public static let i: UInt32 = 0x0000_0001
    /// D: data address translation enabled (ignored: Lockstep runs in real mode).
    public static let d: UInt32 = 0x0000_0002
    /// P: protection identifier validation enabled (ignored).
    public static let p: UInt32 = 0x0000_0004
    /// Q: interruption state collection enabled.
    public static let q: UInt32 = 0x0000_0008
    /// R: recovery counter enabled.
    public static let r: UInt32 = 0x0000_0010
    /// F: performance monitor interrupt unmasked.
    public static let f: UInt32 = 0x0000_0020
    /// G: debug trap enable (PA 1.x).
    public static let g: UInt32 = 0x0000_0040
    /// C/B: the eight carry/borrow bits (bit 8 + k is the carry out of nibble k, counting from the
    /// least significant nibble; bit 15 is the word carry).
    public static let carryBorrow: UInt32 = 0x0000_FF00
    /// M: high-priority machine check mask.
    public static let m: UInt32 = 0x0001_0000
    /// V: divide step correction.
    public static let v: UInt32 = 0x0002_0000
    /// C: code address translation enabled (ignored).
    public static let c: UInt32 = 0x0004_0000
    /// B: taken branch (not tracked by Lockstep: reads as 0).
    public static let b: UInt32 = 0x0008_0000
    /// X: data memory break disable.
    public static let x: UInt32 = 0x0010_0000
    /// N: nullify the next instruction.
    public static let n: UInt32 = 0x0020_0000
    /// L: lower-privilege transfer trap enable.
    public static let l: UInt32 = 0x0040_0000
    /// H: higher-privilege transfer trap enable.
    public static let h: UInt32 = 0x0080_0000
    /// T: taken branch trap enable.
    public static let t: UInt32 = 0x0100_0000
    /// S: secure interval timer (CR16 reads privileged).
    public static let s: UInt32 = 0x0200_0000
    /// E: little-endian memory access (stored, not honoured).
    public static let e: UInt32 = 0x0400_0000

    /// The system mask: the bits SSM, RSM and MTSM change (PA 1.1: E, G, F, R, Q, P, D, I).
    public static let systemMask: UInt32 = e | g | f | r | q | p | d | i

    /// Converts an SSM/RSM immediate to PSW bits: bits 0..6 are I..G in place; immediate bit 8
    /// (0x100) names E, which lives elsewhere in the PSW.
    @inlinable public static func systemMask(fromImmediate imm: UInt32) -> UInt32 {
        (imm & 0x7F) | (imm & 0x100 != 0 ? e : 0)
    }
}
