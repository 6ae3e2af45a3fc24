import CKVM

#if canImport(Glibc)
import Glibc
#endif

extension VirtualMachine {
    /// The pages of `slot` written by the guest since the last call (which resets them, unless
    /// `MANUAL_DIRTY_LOG_PROTECT2` is enabled; then use `clearDirtyLog`).
    /// The slot must have `MemoryRegionFlags.logDirtyPages`. The corresponding ioctl is
    /// `KVM_GET_DIRTY_LOG`.
    public func dirtyLog(slot: UInt32) throws(KVMError) -> DirtyBitmap {
        guard let region = memoryRegions[slot] else {
            throw KVMError(operation: "KVM_GET_DIRTY_LOG", errno: ENOENT, detail: "slot \(slot) is not in use")
        }
        var bitmap = DirtyBitmap(pageCount: region.pageCount)
        let fd = self.fd
        // SAFETY: `words` has one bit per page of the slot, rounded up to 64-bit words, which is
        // the size KVM writes; the pointer lives only for the ioctl inside the closure.
        let result: Result<Int32, KVMError> = bitmap.words.withUnsafeMutableBytes { buffer in
            var log = kvm_dirty_log()
            log.slot = slot
            ckvm_dirty_log_set_bitmap(&log, buffer.baseAddress)
            return Result { () throws(KVMError) in
                try Syscall.ioctl(fd, ckvm_KVM_GET_DIRTY_LOG, &log, name: "KVM_GET_DIRTY_LOG", detail: "slot \(slot)")
            }
        }
        _ = try result.get()
        return bitmap
    }

    /// Re-protects the pages set in `bitmap`, starting at page `firstPage` of `slot` (a
    /// multiple of 64), so that their next guest write is logged again. Needs
    /// `Capability.manualDirtyLogProtect2` enabled before the slot was created.
    /// The corresponding ioctl is `KVM_CLEAR_DIRTY_LOG`.
    public func clearDirtyLog(slot: UInt32, firstPage: Int = 0, bitmap: DirtyBitmap) throws(KVMError) {
        var words = bitmap.words
        let fd = self.fd
        // SAFETY: `words` holds `pageCount` bits rounded up to 64-bit words, as num_pages tells
        // the kernel; the pointer lives only for the ioctl inside the closure.
        let result: Result<Int32, KVMError> = words.withUnsafeMutableBytes { buffer in
            var log = kvm_clear_dirty_log()
            log.slot = slot
            log.num_pages = UInt32(bitmap.pageCount)
            log.first_page = UInt64(firstPage)
            ckvm_clear_dirty_log_set_bitmap(&log, buffer.baseAddress)
            return Result { () throws(KVMError) in
                try Syscall.ioctl(fd, ckvm_KVM_CLEAR_DIRTY_LOG, &log, name: "KVM_CLEAR_DIRTY_LOG", detail: "slot \(slot)")
            }
        }
        _ = try result.get()
    }
}
