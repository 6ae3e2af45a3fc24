import Testing

@testable import MachineCore

@Suite("GuestAddress")
struct GuestAddressTests {
    @Test func advancingReportsOverflow() {
        #expect(GuestAddress(0x1000).advanced(by: 0x10) == GuestAddress(0x1010))
        #expect(GuestAddress(UInt64.max - 1).advanced(by: 1) == GuestAddress(UInt64.max))
        #expect(GuestAddress(UInt64.max).advanced(by: 1) == nil)
    }

    @Test func offsetFromABaseBelowOnly() {
        #expect(GuestAddress(0x1010).offset(from: GuestAddress(0x1000)) == 0x10)
        #expect(GuestAddress(0x1000).offset(from: GuestAddress(0x1000)) == 0)
        #expect(GuestAddress(0xfff).offset(from: GuestAddress(0x1000)) == nil)
    }

    @Test func describesItselfInHexadecimal() {
        #expect(GuestAddress(0xffd0_5800).description == "0xffd05800")
        #expect(GuestAddress(0).description == "0x0")
    }
}

@Suite("GuestMemory")
struct GuestMemoryTests {
    @Test(arguments: [
        (UInt64(0), "it must not be zero"),
        (UInt64(4095), "it must be a multiple of 4096"),
        (UInt64(4097), "it must be a multiple of 4096"),
        (GuestMemory.maximumSize + 4096, "the limit is 64 GiB"),
    ])
    func refusesInvalidSizes(size: UInt64, reason: String) {
        #expect(throws: GuestMemoryError.invalidSize(size, reason: reason)) {
            _ = try GuestMemory(size: size)
        }
    }

    @Test func refusesRAMThatWrapsTheAddressSpace() {
        #expect(throws: GuestMemoryError.self) {
            _ = try GuestMemory(size: 8192, base: GuestAddress(UInt64.max - 4095))
        }
    }

    @Test func startsZeroed() throws {
        let memory = try GuestMemory(size: 8192)
        #expect(try memory.read(at: GuestAddress(0), count: 8192).allSatisfy { $0 == 0 })
    }

    @Test func readsBackWhatWasWrittenAtANonZeroBase() throws {
        let memory = try GuestMemory(size: 4096, base: GuestAddress(0x10_0000))
        try memory.write([1, 2, 3, 4], at: GuestAddress(0x10_0ffc))
        #expect(try memory.read(at: GuestAddress(0x10_0ffc), count: 4) == [1, 2, 3, 4])
        try memory.fill(0xaa, at: GuestAddress(0x10_0010), count: 3)
        #expect(try memory.read(at: GuestAddress(0x10_000f), count: 5) == [0, 0xaa, 0xaa, 0xaa, 0])
    }

    @Test func boundsAreExactAtBothEnds() throws {
        let memory = try GuestMemory(size: 4096, base: GuestAddress(0x2000))
        #expect(memory.contains(GuestAddress(0x2000)))
        #expect(memory.contains(GuestAddress(0x2fff)))
        #expect(memory.contains(GuestAddress(0x2000), count: 4096))
        #expect(!memory.contains(GuestAddress(0x1fff)))
        #expect(!memory.contains(GuestAddress(0x3000)))
        #expect(!memory.contains(GuestAddress(0x2001), count: 4096))
        #expect(!memory.contains(GuestAddress(0x2fff), count: UInt64.max))
        // An empty access at the very end is inside; one byte past it is not.
        #expect(memory.contains(GuestAddress(0x3000), count: 0))
        #expect(!memory.contains(GuestAddress(0x3001), count: 0))
    }

    @Test func outOfRangeAccessesThrowAndChangeNothing() throws {
        let memory = try GuestMemory(size: 4096)
        let before = MemoryDigest.recomputed(memory)
        #expect(throws: GuestMemoryError.outOfRange(address: GuestAddress(4094), count: 4)) {
            try memory.write([9, 9, 9, 9], at: GuestAddress(4094))
        }
        #expect(throws: GuestMemoryError.outOfRange(address: GuestAddress(4096), count: 1)) {
            try memory.fill(1, at: GuestAddress(4096), count: 1)
        }
        #expect(throws: GuestMemoryError.outOfRange(address: GuestAddress(4093), count: 4)) {
            _ = try memory.load(UInt32.self, at: GuestAddress(4093), order: .little)
        }
        #expect(throws: GuestMemoryError.outOfRange(address: GuestAddress(UInt64.max), count: 8)) {
            try memory.store(UInt64(1), at: GuestAddress(UInt64.max), order: .big)
        }
        #expect(MemoryDigest.recomputed(memory) == before)
    }

    @Test func integersUseTheRequestedByteOrderWithoutAlignment() throws {
        let memory = try GuestMemory(size: 4096)
        try memory.store(UInt32(0x1122_3344), at: GuestAddress(1), order: .little)
        #expect(try memory.read(at: GuestAddress(1), count: 4) == [0x44, 0x33, 0x22, 0x11])
        try memory.store(UInt32(0x1122_3344), at: GuestAddress(9), order: .big)
        #expect(try memory.read(at: GuestAddress(9), count: 4) == [0x11, 0x22, 0x33, 0x44])
        #expect(try memory.load(UInt32.self, at: GuestAddress(9), order: .little) == 0x4433_2211)
        try memory.store(UInt64(0x0102_0304_0506_0708), at: GuestAddress(0xff8), order: .big)
        #expect(try memory.load(UInt16.self, at: GuestAddress(0xffe), order: .big) == 0x0708)
        #expect(try memory.load(UInt8.self, at: GuestAddress(0xff8), order: .big) == 0x01)
    }

    @Test func emulatorAccessorsAreBigEndianAndAgreeWithTheCheckedOnes() throws {
        let memory = try GuestMemory(size: 8192)
        memory.storeBigEndianWord(0xdead_beef, atOffset: 0x101)
        #expect(try memory.load(UInt32.self, at: GuestAddress(0x101), order: .big) == 0xdead_beef)
        #expect(memory.loadBigEndianHalfword(atOffset: 0x103) == 0xbeef)
        #expect(memory.loadByte(atOffset: 0x101) == 0xde)
        memory.storeBigEndianHalfword(0x1234, atOffset: 8190)
        memory.storeByte(0x56, atOffset: 0)
        #expect(try memory.read(at: GuestAddress(8190), count: 2) == [0x12, 0x34])
        #expect(memory.loadBigEndianWord(atOffset: 0) == 0x5600_0000)
        #expect(memory.emulatorLimit == 8192)
    }

    @Test func errorsDescribeThemselvesInOneLine() {
        let messages = [
            GuestMemoryError.invalidSize(5, reason: "it must be a multiple of 4096").description,
            GuestMemoryError.outOfRange(address: GuestAddress(0x1000), count: 4).description,
            GuestMemoryError.allocationFailed(size: 1 << 30, errno: 12).description,
        ]
        #expect(messages[0] == "invalid guest memory size 5 bytes: it must be a multiple of 4096")
        #expect(messages[1] == "guest access of 4 bytes at 0x1000 is outside guest RAM")
        #expect(messages[2] == "cannot reserve 1073741824 bytes of guest memory: Cannot allocate memory")
        #expect(messages.allSatisfy { !$0.contains("\n") })
    }
}
