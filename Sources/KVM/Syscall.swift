import CKVM

#if canImport(Glibc)
import Glibc
#endif

/// The one place where this module calls `ioctl`: call, check, return errno.
///
/// Every ioctl except `KVM_RUN` is retried on EINTR, as swift-system does with `retryOnInterrupt`;
/// `KVM_RUN` reports EINTR to its caller because it is how a kick arrives.
enum Syscall {
    /// `ioctl(fd, request, value)`; returns the non-negative result or throws with `name` and errno.
    @discardableResult
    static func ioctl(
        _ fd: Int32, _ request: UInt, _ value: UInt = 0, name: String, detail: String? = nil
    ) throws(KVMError) -> Int32 {
        while true {
            let result = ckvm_ioctl_val(fd, request, value)
            if result >= 0 { return result }
            let error = Glibc.errno
            if error == EINTR { continue }
            throw KVMError(operation: name, errno: error, detail: detail)
        }
    }

    /// `ioctl(fd, request, pointer)`; returns the non-negative result or throws with `name` and errno.
    @discardableResult
    static func ioctl(
        _ fd: Int32, _ request: UInt, _ pointer: UnsafeMutableRawPointer?, name: String,
        detail: String? = nil
    ) throws(KVMError) -> Int32 {
        while true {
            let result = ckvm_ioctl_ptr(fd, request, pointer)
            if result >= 0 { return result }
            let error = Glibc.errno
            if error == EINTR { continue }
            throw KVMError(operation: name, errno: error, detail: detail)
        }
    }

    /// `ioctl(fd, request, &value)` for a fixed-size C struct, in and out.
    @discardableResult
    static func ioctl<T>(
        _ fd: Int32, _ request: UInt, _ value: inout T, name: String, detail: String? = nil
    ) throws(KVMError) -> Int32 {
        // SAFETY: `value` is a plain C struct the kernel reads or writes in place; the pointer
        // does not escape the closure, and the ioctl's size matches `T` (the request number
        // encodes sizeof(T) for every caller).
        let result: Result<Int32, KVMError> = withUnsafeMutableBytes(of: &value) { buffer in
            do throws(KVMError) {
                return .success(try ioctl(fd, request, buffer.baseAddress, name: name, detail: detail))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Closes `fd`, ignoring errors: there is nothing a deinit could do about them.
    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }
}
