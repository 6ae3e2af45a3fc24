/// The PA-RISC 1.1 condition tables (manual chapter 5, "Conditions"). A condition is `cf =
/// c << 1 | f`: `c` selects the test, `f` negates it.
enum Conditions {
    /// Add conditions (ADD, ADDI, ADDB, ADDIB, DS): never, =, <, <=, NUV, ZNV, SV, OD.
    /// `carry` is the carry out of the most significant bit; `overflow` the signed overflow.
    @inline(__always)
    static func add(_ cf: UInt8, result: UInt32, carry: Bool, overflow: Bool) -> Bool {
        let negative = Int32(bitPattern: result) < 0
        let value: Bool
        switch cf >> 1 {
        case 0: value = false
        case 1: value = result == 0
        case 2: value = negative != overflow
        case 3: value = negative != overflow || result == 0
        case 4: value = !carry
        case 5: value = !carry || result == 0
        case 6: value = overflow
        default: value = result & 1 != 0
        }
        return value != (cf & 1 != 0)
    }

    /// Compare/subtract conditions (SUB, COMCLR, COMB, COMIB, SUBI, COMICLR): never, =, <, <=,
    /// <<, <<=, SV, OD, evaluated on the operands `a - b`.
    @inline(__always)
    static func compare(_ cf: UInt8, _ a: UInt32, _ b: UInt32, result: UInt32, overflow: Bool)
        -> Bool
    {
        let value: Bool
        switch cf >> 1 {
        case 0: value = false
        case 1: value = a == b
        case 2: value = Int32(bitPattern: a) < Int32(bitPattern: b)
        case 3: value = Int32(bitPattern: a) <= Int32(bitPattern: b)
        case 4: value = a < b
        case 5: value = a <= b
        case 6: value = overflow
        default: value = result & 1 != 0
        }
        return value != (cf & 1 != 0)
    }

    /// Logical conditions (OR, AND, XOR, ANDCM): never, =, <, <=, (undefined x3), OD. The
    /// undefined tests behave as "never" (as the hardware and QEMU do).
    @inline(__always)
    static func logical(_ cf: UInt8, _ result: UInt32) -> Bool {
        let value: Bool
        switch cf >> 1 {
        case 1: value = result == 0
        case 2: value = Int32(bitPattern: result) < 0
        case 3: value = Int32(bitPattern: result) <= 0
        case 7: value = result & 1 != 0
        default: value = false
        }
        return value != (cf & 1 != 0)
    }

    /// Converts a 3-bit shift/extract/deposit condition (never, =, <, OD, TR, <>, >=, EV) into
    /// the equivalent logical `cf`.
    static func logicalCF(fromShiftCondition c: UInt8) -> UInt8 {
        let test: UInt8 = c & 3 == 3 ? 7 : c & 3
        return test << 1 | (c >> 2)
    }

    /// Unit conditions (UXOR, UADDCM, DCOR): never, (undefined), SBZ, SHZ, SDC, (undefined), SBC,
    /// SHC. `carries` has bit i set when there was a carry out of bit i.
    @inline(__always)
    static func unit(_ cf: UInt8, result: UInt32, carries: UInt32) -> Bool {
        let value: Bool
        switch cf >> 1 {
        case 2: value = (result &- 0x0101_0101) & ~result & 0x8080_8080 != 0  // some byte zero
        case 3: value = (result &- 0x0001_0001) & ~result & 0x8000_8000 != 0  // some halfword zero
        case 4: value = carries & 0x8888_8888 != 0                             // some digit carry
        case 6: value = carries & 0x8080_8080 != 0                             // some byte carry
        case 7: value = carries & 0x8000_8000 != 0                             // some halfword carry
        default: value = false
        }
        return value != (cf & 1 != 0)
    }
}
