import Foundation
import MachineCore
import PARISC
import Testing

/// The platform: the bundled guest kernels (guests/build/parisc, built with scripts/build-guests)
/// on PARISCMachine.
@Suite("PA-RISC machine and platform", .enabled(if: MachineDriver.guestsAvailable, "guests/build/parisc is missing and cannot be built (hppa-linux-gnu-gcc)"))
struct MachineTests {
    @Test("hello prints its greeting and halts")
    func hello() throws {
        let driver = try MachineDriver(guest: "hello")
        let stop = try driver.run()
        print("hello: \(stop) \(driver.environment.output.debugDescription)")
        #expect(stop == .exited(status: 0))
        #expect(driver.environment.output == "Hello from parisc\n")
    }
}
