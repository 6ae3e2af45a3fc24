import KVM
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("errors")
struct ErrorTests {
    @Test("opening a missing KVM device says so plainly")
    func missingDevice() {
        #expect {
            _ = try KVMSystem(path: "/nonexistent/kvm")
        } throws: { error in
            guard let error = error as? KVMError else { return false }
            return error.operation == "open" && error.errno == ENOENT
                && error.description == "/nonexistent/kvm: no such device (is KVM enabled?); open: errno 2"
        }
        #expect(KVMSystem.unavailabilityReason(path: "/nonexistent/kvm")?.contains("is KVM enabled?") == true)
    }

    @Test("a KVMError describes operation, detail and errno in one line")
    func description() {
        let error = KVMError(operation: "KVM_RUN", errno: EFAULT, detail: "vCPU 0")
        #expect(error.description == "KVM_RUN (vCPU 0): Bad address (errno 14)")
        #expect(!error.description.contains("\n"))
        #expect(KVMError(operation: "KVM_GET_API_VERSION", errno: 0, detail: "version 11").description
            == "KVM_GET_API_VERSION (version 11)")
    }

    @Test("an invalid memory slot fails with the ioctl name and EINVAL", .enabled(if: KVMHost.available, "needs a usable /dev/kvm"))
    func invalidSlot() throws {
        let system = try KVMSystem()
        let vm = try system.createVM()
        let memory = try HostMemory(size: 0x1000)
        do {
            try vm.setUserMemoryRegion(slot: 0x7FFF, guestPhysicalAddress: 0, memory: memory)
            Issue.record("slot 0x7FFF was accepted")
        } catch {
            #expect(error.operation == "KVM_SET_USER_MEMORY_REGION")
            #expect(error.errno == EINVAL)
            #expect(error.description.contains("KVM_SET_USER_MEMORY_REGION"))
            #expect(error.description.contains("Invalid argument"))
            print("KVMTests: \(error)")
        }
        #expect(vm.memoryRegions.isEmpty)

        // A slot without KVM_MEM_LOG_DIRTY_PAGES has no dirty log: the kernel says ENOENT.
        try vm.setUserMemoryRegion(slot: 0, guestPhysicalAddress: 0, memory: memory)
        #expect(throws: KVMError.self) { try vm.dirtyLog(slot: 0) }
        do {
            _ = try vm.dirtyLog(slot: 0)
        } catch {
            #expect(error.operation == "KVM_GET_DIRTY_LOG")
            #expect(error.errno == ENOENT)
        }
        // A slot never registered is refused before any ioctl.
        do {
            _ = try vm.dirtyLog(slot: 5)
        } catch {
            #expect(error.errno == ENOENT)
        }
    }
}
