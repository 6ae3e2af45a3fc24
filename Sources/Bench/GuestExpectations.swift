import Crypto
import Foundation

/// What the bundled guests must print, computed independently of any engine from the
/// definitions in guests/README.md (xorshift32 pattern, SHA-256 chain). The bench checks every
/// run against it, and so do the tests.
public enum GuestExpectations {
    /// The xorshift32 byte stream of the cpu and disk guests: each 32-bit output least
    /// significant byte first.
    public static func pattern(seed: UInt32, count: Int) -> [UInt8] {
        var state = seed
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        while bytes.count < count {
            state ^= state << 13
            state ^= state >> 17
            state ^= state << 5
            for b in 0..<4 where bytes.count < count { bytes.append(UInt8(truncatingIfNeeded: state >> (8 * UInt32(b)))) }
        }
        return bytes
    }

    public static func hex(_ digest: some Sequence<UInt8>) -> String {
        digest.map { String(format: "%02x", $0) }.joined()
    }

    /// The `cpu` guest's digest (hexadecimal) after `rounds` rounds of its SHA-256 chain.
    public static func cpuDigest(rounds: Int, seed: UInt32 = 1) -> String {
        let buffer = pattern(seed: seed, count: 16384)
        var digest = [UInt8](repeating: 0, count: 32)
        for _ in 0..<rounds {
            var hasher = SHA256()
            hasher.update(data: digest)
            hasher.update(data: buffer)
            digest = Array(hasher.finalize())
        }
        return hex(digest)
    }

    /// The `cpu` guest's line for `rounds` rounds and `seed`.
    public static func cpuLine(rounds: Int, seed: UInt32 = 1) -> String {
        "cpu rounds=\(rounds) seed=\(seed) buffer=16384 sha256=\(cpuDigest(rounds: rounds, seed: seed))"
    }

    /// The `disk` guest's last line for `blocks` sectors and `seed`.
    public static func diskLine(blocks: Int, seed: UInt32 = 1) -> String {
        "disk verify ok sha256=\(hex(SHA256.hash(data: pattern(seed: seed, count: blocks * 512))))"
    }
}
