import Crypto
import Foundation
import Hypervisor
import MachineCore
import Testing
import TestSupport

/// The snapshot format: a round trip, refusals, and hostile bytes (a fuzz-style test).
@Suite("Snapshot format", .serialized)
struct SnapshotFormatTests {
    /// A PA-RISC ticks guest saved at its boundary 3, and the run it was saved from.
    static func saved(arch: String = "parisc", cmdline: String = "ticks=4") throws -> (bytes: [UInt8], run: GuestRun) {
        let run = try GuestRun(arch, "ticks", cmdline: cmdline)
        let buffer = SnapshotBuffer()
        let session = run.session()
        session.boundaryObserver = { epoch in
            guard epoch == 3 else { return .proceed }
            _ = try MachineSnapshot.write(run.machine, identity: run.setup.snapshotIdentity,
                                          host: SnapshotHostState(epoch: epoch, pendingEvents: [
                                              .consoleInput(Array("typed".utf8)),
                                              .blockCompletion(BlockCompletion(id: 7, status: .ok, data: [1, 2, 3])),
                                          ]),
                                          to: buffer)
            return .pause
        }
        _ = try session.run()
        return (buffer.bytes, run)
    }

    /// Restores `bytes` into a fresh machine of `run`'s setup.
    static func restore(_ bytes: [UInt8], like run: GuestRun) throws -> GuestRun {
        let target = try GuestRun(run.setup.architecture == .parisc ? "parisc" : "x86", "ticks",
                                  cmdline: run.setup.options.commandLine)
        let reader = try SnapshotReader(input: SnapshotBuffer(bytes))
        if let why = target.setup.snapshotIdentity.refusal(of: reader.identity) { throw SnapshotError.foreign(why) }
        try reader.restore(into: target.machine)
        return target
    }

    @Test func roundTripKeepsEveryField() throws {
        let (bytes, run) = try Self.saved()
        let reader = try SnapshotReader(input: SnapshotBuffer(bytes))
        #expect(reader.identity == run.setup.snapshotIdentity)
        #expect(reader.host.epoch == 3)
        #expect(reader.host.pendingEvents == [
            .consoleInput(Array("typed".utf8)), .blockCompletion(BlockCompletion(id: 7, status: .ok, data: [1, 2, 3])),
        ])
        #expect(reader.machineState == (try run.machine.captureState()))
        let target = try GuestRun("parisc", "ticks", cmdline: "ticks=4")
        try reader.restore(into: target.machine)
        #expect(try target.machine.stateDigest() == run.machine.stateDigest())
        #expect(target.machine.progress == run.machine.progress)
        // Written again from the restored machine, the snapshot is byte for byte the same.
        let again = SnapshotBuffer()
        _ = try MachineSnapshot.write(target.machine, identity: reader.identity, host: reader.host, to: again)
        #expect(again.bytes == bytes)
    }

    @Test func onlyNonZeroPagesAreCarriedAndStalePagesAreZeroed() throws {
        let (bytes, run) = try Self.saved()
        let pages = try run.machine.memoryDigest.nonZeroPages()
        #expect(pages.count < 64, "\(pages.count) pages for a tiny guest")
        // A target whose RAM has garbage in a page the snapshot does not carry.
        let target = try GuestRun("parisc", "ticks", cmdline: "ticks=4")
        let spare = try #require((0..<target.machine.memory.pageCount).last { !pages.contains($0) })
        try target.machine.memory.fill(0xA5, at: GuestAddress(UInt64(spare) << 12), count: 4096)
        try SnapshotReader(input: SnapshotBuffer(bytes)).restore(into: target.machine)
        #expect(try target.machine.memory.read(at: GuestAddress(UInt64(spare) << 12), count: 4096).allSatisfy { $0 == 0 })
        #expect(try target.machine.memoryDigest.nonZeroPages() == pages)
    }

    @Test func foreignSnapshotsAreRefusedInOneLine() throws {
        let (bytes, run) = try Self.saved()
        let reader = try SnapshotReader(input: SnapshotBuffer(bytes))
        var other = run.setup.options
        other.memorySize = 128 << 20
        let why = try #require(try GuestSetup(other).snapshotIdentity.refusal(of: reader.identity))
        #expect(why == "it was taken with memory=67108864, this run has memory=134217728")
        other = run.setup.options
        other.guestPath = guestPath("parisc", "hello")
        #expect(try GuestSetup(other).snapshotIdentity.refusal(of: reader.identity)?.hasPrefix("it is of another guest image") == true)
        // A machine of another size refuses the RAM even without the identity check.
        let big = try GuestRun("parisc", "ticks", cmdline: "ticks=4") { $0.memorySize = 32 << 20 }
        #expect(throws: SnapshotError.foreign("its RAM has 16384 pages, this machine's 8192")) {
            try SnapshotReader(input: SnapshotBuffer(bytes)).restore(into: big.machine)
        }
    }

    @Test func damageIsRefused() throws {
        let (bytes, run) = try Self.saved()
        var flipped = bytes
        flipped[bytes.count - 40] ^= 1
        #expect(throws: SnapshotError.checksumMismatch(record: "end")) { _ = try Self.restore(flipped, like: run) }
        #expect(throws: SnapshotError.notASnapshot) { _ = try Self.restore(Array("LOCKSNAQ".utf8) + bytes.dropFirst(8), like: run) }
        var version = bytes
        version[8] = 2
        #expect(throws: SnapshotError.unsupportedVersion(2)) { _ = try Self.restore(version, like: run) }
        #expect(throws: SnapshotError.truncated("the data is empty")) { _ = try Self.restore([], like: run) }
        #expect(throws: SnapshotError.malformed("data follows the end record")) { _ = try Self.restore(bytes + [0], like: run) }
        for error in [SnapshotError.notASnapshot, .checksumMismatch(record: "pages"), .unsupportedVersion(9),
                      .recordTooLarge(record: "host", length: 1 << 40, limit: 80 << 20)] {
            #expect(!error.description.contains("\n"))
        }
    }

    // MARK: - Hostile bytes

    /// The records of a snapshot: (offset of the record, type, payload range).
    static func records(_ bytes: [UInt8]) -> [(start: Int, type: UInt16, payload: Range<Int>)] {
        var result: [(Int, UInt16, Range<Int>)] = []
        var i = 12
        while i + 8 <= bytes.count {
            let type = UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8
            let length = Int(bytes[i + 4]) | Int(bytes[i + 5]) << 8 | Int(bytes[i + 6]) << 16 | Int(bytes[i + 7]) << 24
            result.append((i, type, i + 8 ..< i + 8 + length))
            i += 8 + length + 32
        }
        return result
    }

    /// `bytes` with the record at `start` given a correct checksum again.
    static func resealed(_ bytes: [UInt8], record start: Int) -> [UInt8] {
        let length = Int(bytes[start + 4]) | Int(bytes[start + 5]) << 8 | Int(bytes[start + 6]) << 16 | Int(bytes[start + 7]) << 24
        var out = bytes
        let end = start + 8 + length
        guard end + 32 <= out.count else { return out }
        out.replaceSubrange(end ..< end + 32, with: Array(SHA256.hash(data: out[start..<end])))
        return out
    }

    @Test("hostile bytes, resealed with valid checksums, are refused or restored, never a trap")
    func hostileBytes() throws {
        let (bytes, run) = try Self.saved()
        let records = Self.records(bytes)
        #expect(records.map(\.type) == [1, 2, 3, 4] + Array(repeating: 5, count: records.count - 5) + [6])
        var random = SplitMix64(seed: 0x5EED)
        var outcomes: [String: Int] = [:]
        for _ in 0..<400 {
            var mutated = bytes
            let record = records[Int(random.next() % UInt64(records.count))]
            switch random.next() % 6 {
            case 0:  // a random byte of the payload (and resealed)
                guard !record.payload.isEmpty else { continue }
                mutated[record.payload.lowerBound + Int(random.next() % UInt64(record.payload.count))] ^=
                    UInt8(truncatingIfNeeded: random.next() | 1)
                mutated = Self.resealed(mutated, record: record.start)
            case 1:  // a 32-bit field of the payload set to an extreme value (a length, a count)
                guard record.payload.count >= 4 else { continue }
                let at = record.payload.lowerBound + Int(random.next() % UInt64(record.payload.count - 3))
                let value: UInt32 = [0, 1, 0xFFFF_FFFF, 0x8000_0000, 0x7FFF_FFFF][Int(random.next() % 5)]
                for k in 0..<4 { mutated[at + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(k))) }
                mutated = Self.resealed(mutated, record: record.start)
            case 2:  // the record's length
                let value: UInt32 = [0, 1, 0xFFFF_FFFF, UInt32(record.payload.count + 1), UInt32(max(record.payload.count, 1) - 1)][Int(random.next() % 5)]
                for k in 0..<4 { mutated[record.start + 4 + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(k))) }
            case 3:  // the record's type or reserved field
                mutated[record.start + Int(random.next() % 4)] = UInt8(truncatingIfNeeded: random.next())
                mutated = Self.resealed(mutated, record: record.start)
            case 4:  // cut anywhere
                mutated = Array(bytes.prefix(Int(random.next() % UInt64(bytes.count))))
            default:  // a record dropped or repeated
                let range = record.start ..< record.payload.upperBound + 32
                if random.next() % 2 == 0 { mutated.removeSubrange(range) } else { mutated.insert(contentsOf: bytes[range], at: range.upperBound) }
            }
            do {
                let target = try Self.restore(mutated, like: run)
                outcomes["restored", default: 0] += 1
                // Whatever got through runs on without trapping.
                _ = try? target.session().run(epochs: 3)
            } catch let error as SnapshotError {
                outcomes[String(error.description.prefix(24)), default: 0] += 1
            }
        }
        print("SnapshotTests: hostile snapshots: \(outcomes.sorted { $0.value > $1.value }.map { "\($0.value) \($0.key)" }.joined(separator: "; "))")
        #expect(outcomes["restored", default: 0] < 400)
    }

    @Test("hostile machine states are refused by the digest check, and the machine does not trap on them",
          arguments: ["parisc", "x86"])
    func hostileMachineStates(_ arch: String) throws {
        guard arch == "parisc" || Host.hasKVM else { return }
        let (bytes, _) = try Self.saved(arch: arch, cmdline: "ticks=4")
        let state = try SnapshotReader(input: SnapshotBuffer(bytes)).machineState
        var random = SplitMix64(seed: 0xD1CE)
        var refused = 0
        let rounds = arch == "parisc" ? 120 : 25
        for _ in 0..<rounds {
            var hostile = state
            if random.next() % 3 == 0 {
                hostile.processor = Self.mutate(state.processor, &random)
            } else {
                let d = Int(random.next() % UInt64(state.devices.count))
                hostile.devices[d].bytes = Self.mutate(state.devices[d].bytes, &random)
            }
            let target = try GuestRun(arch, "ticks", cmdline: "ticks=4")
            do {
                try target.machine.restoreState(hostile)
            } catch is SnapshotError {
                refused += 1
            } catch {
                refused += 1  // KVM refused a value
            }
            // The machine is unusable now, but must not trap when run anyway.
            for _ in 0..<5 {
                guard let stop = try? target.machine.run(budget: 500) else { break }
                if case .exited = stop { break }
                if case .crashed = stop { break }
                _ = try? target.machine.applyBoundary(time: target.machine.clock.now, events: [])
            }
        }
        print("SnapshotTests: \(arch): \(refused) of \(rounds) hostile machine states refused")
        #expect(refused >= rounds - 2)
    }

    /// `bytes` with digits of JSON numbers changed, or bytes flipped in a binary record.
    static func mutate(_ bytes: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
        var out = bytes
        let digits = out.indices.filter { out[$0] >= 0x30 && out[$0] <= 0x39 }
        if !digits.isEmpty, random.next() % 4 != 0 {
            for _ in 0..<(1 + random.next() % 3) {
                let at = digits[Int(random.next() % UInt64(digits.count))]
                out[at] = 0x30 + UInt8(random.next() % 10)
                if random.next() % 4 == 0 { out.insert(contentsOf: Array("99999999999".utf8), at: at) }
            }
        } else if !out.isEmpty {
            out[Int(random.next() % UInt64(out.count))] ^= UInt8(truncatingIfNeeded: random.next() | 1)
        }
        return out
    }
}
