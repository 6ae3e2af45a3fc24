import Foundation
import Testing

/// A command line longer than the bundled guests keep: the guest says so and exits with its
/// usage status instead of running on a cut command line; Lockstep's own device tokens come
/// first, so the guest still reaches its debug-exit register to report it.
@Suite struct GuestCommandLineTests {
    @Test(arguments: ["parisc", "x86"])
    func anOverlongCommandLineIsAGuestUsageError(_ arch: String) throws {
        try #require(Lockstep.hasGuest(arch, "hello"), "guests are not built: run scripts/build-guests")
        if arch == "x86" && !Lockstep.hasKVM {
            try Test.cancel("the x86 case needs a usable /dev/kvm (lockstep doctor fails here)")
        }
        let long = "pad=" + String(repeating: "x", count: 1100)
        let result = try Lockstep.run(["run", "--cmdline", long, Lockstep.guest(arch, "hello")])
        #expect(result.status == 2 << 1 | 1, "status \(result.status): \(result.stderr)")
        #expect(result.stdout == "error: the command line is longer than 1023 bytes\n")
        let fits = try Lockstep.run(["run", "--cmdline", "pad=" + String(repeating: "x", count: 900),
                                     Lockstep.guest(arch, "hello")])
        #expect(fits.status == 0, "status \(fits.status): \(fits.stderr)")
    }
}
