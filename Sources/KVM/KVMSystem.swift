import CKVM

#if canImport(Glibc)
import Glibc
#endif

/// The KVM subsystem: an open `/dev/kvm`.
///
/// The first level of the kernel's fd hierarchy (`/dev/kvm` -> VM -> vCPU), like rust-vmm's
/// `Kvm`. Owns its file descriptor and closes it in `deinit`.
public final class KVMSystem {
    /// The only KVM API version this module speaks (`KVM_API_VERSION`).
    public static let supportedAPIVersion: Int32 = 12

    /// The device path this system was opened from.
    public let path: String
    /// The `/dev/kvm` file descriptor.
    public let fd: Int32
    /// The KVM API version (always `supportedAPIVersion`, else `init` fails).
    public let apiVersion: Int32

    /// Opens `path` (normally `/dev/kvm`) and checks the API version.
    ///
    /// The corresponding calls are `open("/dev/kvm", O_RDWR | O_CLOEXEC)` and the ioctl
    /// `KVM_GET_API_VERSION`. A missing device or missing permission gives an error whose
    /// description says so plainly ("/dev/kvm: no such device (is KVM enabled?)").
    public init(path: String = "/dev/kvm") throws(KVMError) {
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
        if fd < 0 {
            let error = Glibc.errno
            throw KVMError(operation: "open", errno: error, detail: Self.openFailureReason(path, error))
        }
        let version: Int32
        do {
            version = try Syscall.ioctl(fd, ckvm_KVM_GET_API_VERSION, name: "KVM_GET_API_VERSION")
        } catch {
            Syscall.close(fd)
            throw error
        }
        guard version == Self.supportedAPIVersion else {
            Syscall.close(fd)
            throw KVMError(
                operation: "KVM_GET_API_VERSION", errno: 0,
                detail: "\(path) speaks KVM API version \(version), Lockstep needs \(Self.supportedAPIVersion)")
        }
        self.path = path
        self.fd = fd
        self.apiVersion = version
    }

    deinit {
        Syscall.close(fd)
    }

    static func openFailureReason(_ path: String, _ error: Int32) -> String {
        switch error {
        case ENOENT, ENODEV, ENXIO: "\(path): no such device (is KVM enabled?)"
        case EACCES, EPERM: "\(path): permission denied (add the user to the kvm group)"
        default: "\(path): \(String(cString: strerror(error)).lowercased())"
        }
    }

    /// Whether KVM is usable here: nil if `/dev/kvm` opens and speaks API 12, else the reason.
    public static func unavailabilityReason(path: String = "/dev/kvm") -> String? {
        do {
            _ = try KVMSystem(path: path)
            return nil
        } catch {
            return error.description
        }
    }

    /// The value of `capability` for the system: 0 if unsupported, else 1 or a
    /// capability-specific number. The corresponding ioctl is `KVM_CHECK_EXTENSION`.
    public func checkExtension(_ capability: Capability) -> Int32 {
        // KVM_CHECK_EXTENSION returns 0 for unknown capabilities; an error means the same.
        (try? Syscall.ioctl(
            fd, ckvm_KVM_CHECK_EXTENSION, UInt(capability.rawValue), name: "KVM_CHECK_EXTENSION"))
            ?? 0
    }

    /// The size of each vCPU's shared mapping (`kvm_run` and the pages after it).
    /// The corresponding ioctl is `KVM_GET_VCPU_MMAP_SIZE`.
    public func vcpuMmapSize() throws(KVMError) -> Int {
        Int(try Syscall.ioctl(fd, ckvm_KVM_GET_VCPU_MMAP_SIZE, name: "KVM_GET_VCPU_MMAP_SIZE"))
    }

    /// The CPUID leaves KVM can present to a guest. The corresponding ioctl is
    /// `KVM_GET_SUPPORTED_CPUID` (retried with a larger buffer on E2BIG).
    public func supportedCPUID() throws(KVMError) -> [CPUIDEntry] {
        var capacity = 128
        while true {
            do {
                return try CPUIDEntry.withCPUID2Buffer(capacity: capacity) { pointer throws(KVMError) in
                    try Syscall.ioctl(
                        fd, ckvm_KVM_GET_SUPPORTED_CPUID, pointer, name: "KVM_GET_SUPPORTED_CPUID")
                }
            } catch where error.errno == E2BIG && capacity < 65536 {
                capacity *= 2
            }
        }
    }

    /// The MSRs whose state KVM saves and restores (the set a snapshot captures).
    /// The corresponding ioctl is `KVM_GET_MSR_INDEX_LIST`.
    public func msrIndexList() throws(KVMError) -> [UInt32] {
        try Self.msrList(fd, ckvm_KVM_GET_MSR_INDEX_LIST, name: "KVM_GET_MSR_INDEX_LIST")
    }

    /// The MSRs that describe host CPU features. The corresponding ioctl is
    /// `KVM_GET_MSR_FEATURE_INDEX_LIST`.
    public func msrFeatureIndexList() throws(KVMError) -> [UInt32] {
        try Self.msrList(fd, ckvm_KVM_GET_MSR_FEATURE_INDEX_LIST, name: "KVM_GET_MSR_FEATURE_INDEX_LIST")
    }

    private static func msrList(_ fd: Int32, _ request: UInt, name: String) throws(KVMError) -> [UInt32] {
        // struct kvm_msr_list { __u32 nmsrs; __u32 indices[]; }: ask with nmsrs = 0 first, which
        // fails with E2BIG and sets nmsrs to the real count.
        var count: UInt32 = 0
        do {
            try Syscall.ioctl(fd, request, &count, name: name)
            return []
        } catch where error.errno == E2BIG {}
        var words = [UInt32](repeating: 0, count: Int(count) + 1)
        words[0] = count
        // SAFETY: `words` holds the 4-byte header plus `count` indices, exactly the size the
        // kernel was told in nmsrs; the pointer does not outlive the closure.
        let result: Result<Int32, KVMError> = words.withUnsafeMutableBytes { buffer in
            Result { () throws(KVMError) in try Syscall.ioctl(fd, request, buffer.baseAddress, name: name) }
        }
        _ = try result.get()
        return Array(words.dropFirst().prefix(Int(min(words[0], count))))
    }

    /// Creates a virtual machine of `type` (0 is the default x86 VM).
    /// The corresponding ioctl is `KVM_CREATE_VM`.
    public func createVM(type: UInt = 0) throws(KVMError) -> VirtualMachine {
        let vmFD = try Syscall.ioctl(fd, ckvm_KVM_CREATE_VM, type, name: "KVM_CREATE_VM")
        return VirtualMachine(fd: vmFD, system: self)
    }
}
