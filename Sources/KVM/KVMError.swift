#if canImport(Glibc)
import Glibc
#endif

/// A failed KVM operation: which ioctl (or system call) failed, and the errno it returned.
///
/// Every throwing API of this module throws `KVMError`. `errno` is 0 when the kernel call
/// succeeded but its result was unusable (for example an unexpected API version); `detail` then
/// says why.
public struct KVMError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The ioctl or system call, spelled as in C (`KVM_SET_USER_MEMORY_REGION`, `open`, `mmap`).
    public var operation: String
    /// The errno the call failed with (`EINVAL`, `ENOENT`, ...), or 0 if it did not set one.
    public var errno: Int32
    /// What the operation was applied to or why its result was rejected, if that helps the reader.
    public var detail: String?

    /// An error for `operation` failing with `errno`.
    public init(operation: String, errno: Int32, detail: String? = nil) {
        self.operation = operation
        self.errno = errno
        self.detail = detail
    }

    /// The C library's name for `errno` ("Invalid argument").
    public var errnoDescription: String {
        errno == 0 ? "no errno" : String(cString: strerror(errno))
    }

    /// One line: the operation, its target or reason, and the errno. A failed `open` of a
    /// device reads like "/dev/kvm: no such device (is KVM enabled?); open: errno 2".
    public var description: String {
        if operation == "open", let detail { return "\(detail); open: errno \(errno)" }
        var line = operation
        if let detail { line += " (\(detail))" }
        if errno != 0 { line += ": \(errnoDescription) (errno \(errno))" }
        return line
    }
}
