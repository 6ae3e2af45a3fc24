import MachineCore
import Testing

@testable import Hypervisor

@Suite struct SoftErrorTests {
    @Test func wellFormedFaultsParse() throws {
        #expect(try SoftError(parsing: "primary:12:reg:rax:63")
                == SoftError(replica: .primary, epoch: 12, target: .register(name: "rax", bit: 63)))
        #expect(try SoftError(parsing: "backup:0:mem:0x10000:5")
                == SoftError(replica: .backup(1), epoch: 0, target: .memory(GuestAddress(0x10000), bit: 5)))
        #expect(try SoftError(parsing: "backup2:7:sym:buffer+100:0")
                == SoftError(replica: .backup(2), epoch: 7, target: .symbol(name: "buffer", offset: 100, bit: 0)))
        #expect(try SoftError(parsing: "primary:1:sym:buffer:3").target == .symbol(name: "buffer", offset: 0, bit: 3))
        #expect(try SoftError(parsing: "primary:1:reg:GR3:31").target == .register(name: "gr3", bit: 31))
        for text in ["primary:12:reg:rax:63", "backup:0:mem:0x10000:5", "backup2:7:sym:buffer+100:0"] {
            #expect(try SoftError(parsing: text).description == text)
        }
    }

    @Test func malformedFaultsAreOneLineEach() {
        let bad = [
            "", "primary", "primary:1:reg:rax", "primary:1:reg:rax:1:2", "nobody:1:reg:rax:1",
            "backup0:1:reg:rax:1", "backup17:1:reg:rax:1", "backupx:1:reg:rax:1", "primary:-1:reg:rax:1",
            "primary:18446744073709551616:reg:rax:1", "primary:0x1:reg:rax:1", "primary:1:reg:rax:64",
            "primary:1:reg::1", "primary:1:reg:r-x:1", "primary:1:mem:zz:1", "primary:1:mem:0x:1",
            "primary:1:mem:0x10000000000000000:1", "primary:1:sym::1", "primary:1:sym:a b:1",
            "primary:1:sym:buffer+:1", "primary:1:disk:0:1", "primary:1:reg:rax: 1", "primary: 1:reg:rax:1",
        ]
        for text in bad {
            #expect(throws: SoftErrorSyntaxError.self, "\(text)") { _ = try SoftError(parsing: text) }
            do { _ = try SoftError(parsing: text) } catch {
                #expect(!error.description.contains("\n"))
                #expect(error.description.hasPrefix("--inject-fault "))
            }
        }
    }
}
