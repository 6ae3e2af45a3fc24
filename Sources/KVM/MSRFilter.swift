import CKVM

/// Which guest MSR accesses KVM refuses (and, with user-space MSR exits enabled for
/// `MSRExitReasons.filter`, hands to user space as `VCPUExit.rdmsr`/`.wrmsr`).
///
/// The corresponding C struct is `struct kvm_msr_filter`; set it with
/// `VirtualMachine.setMSRFilter(_:)`.
public struct MSRFilter: Hashable, Sendable {
    /// One range of MSRs. A set bit allows the access kinds in `operations`, a clear bit denies.
    /// The corresponding C struct is `struct kvm_msr_filter_range`.
    public struct Range: Hashable, Sendable {
        /// `KVM_MSR_FILTER_READ` and/or `KVM_MSR_FILTER_WRITE`.
        public struct Operations: OptionSet, Hashable, Sendable {
            public let rawValue: UInt32
            public init(rawValue: UInt32) { self.rawValue = rawValue }
            /// `KVM_MSR_FILTER_READ`: the range applies to RDMSR.
            public static let read = Operations(rawValue: UInt32(KVM_MSR_FILTER_READ))
            /// `KVM_MSR_FILTER_WRITE`: the range applies to WRMSR.
            public static let write = Operations(rawValue: UInt32(KVM_MSR_FILTER_WRITE))
        }
        /// The accesses this range applies to.
        public var operations: Operations
        /// The first MSR index covered.
        public var base: UInt32
        /// The number of MSRs covered.
        public var count: UInt32
        /// One bit per MSR from `base`: 1 allows, 0 denies.
        public var bitmap: [UInt8]

        /// A range of `count` MSRs from `base`; `bitmap` has a bit per MSR (1 allows).
        public init(operations: Operations, base: UInt32, count: UInt32, bitmap: [UInt8]) {
            precondition(bitmap.count * 8 >= Int(count), "the bitmap needs a bit for each of the \(count) MSRs")
            self.operations = operations
            self.base = base
            self.count = count
            self.bitmap = bitmap
        }

        /// A range that denies `operations` on the single MSR `index`.
        public static func deny(_ operations: Operations, msr index: UInt32) -> Range {
            Range(operations: operations, base: index, count: 1, bitmap: [0])
        }
    }

    /// `KVM_MSR_FILTER_DEFAULT_DENY` if true: MSRs outside every range are denied.
    public var defaultDeny: Bool
    /// At most 16 ranges (`KVM_MSR_FILTER_MAX_RANGES`).
    public var ranges: [Range]

    /// A filter of at most 16 ranges.
    public init(defaultDeny: Bool = false, ranges: [Range]) {
        precondition(ranges.count <= Int(KVM_MSR_FILTER_MAX_RANGES), "at most \(KVM_MSR_FILTER_MAX_RANGES) MSR filter ranges")
        self.defaultDeny = defaultDeny
        self.ranges = ranges
    }
}

/// Which failed guest MSR accesses exit to user space.
///
/// The corresponding C constants are `KVM_MSR_EXIT_REASON_*`, the argument of
/// `KVM_ENABLE_CAP(KVM_CAP_X86_USER_SPACE_MSR)`.
public struct MSRExitReasons: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// `KVM_MSR_EXIT_REASON_INVAL`: accesses that would raise #GP.
    public static let invalid = MSRExitReasons(rawValue: UInt32(KVM_MSR_EXIT_REASON_INVAL))
    /// `KVM_MSR_EXIT_REASON_UNKNOWN`: MSRs KVM does not know.
    public static let unknown = MSRExitReasons(rawValue: UInt32(KVM_MSR_EXIT_REASON_UNKNOWN))
    /// `KVM_MSR_EXIT_REASON_FILTER`: accesses denied by the MSR filter.
    public static let filter = MSRExitReasons(rawValue: UInt32(KVM_MSR_EXIT_REASON_FILTER))
}

extension VirtualMachine {
    /// Installs `filter` for all vCPUs. The corresponding ioctl is `KVM_X86_SET_MSR_FILTER`.
    public func setMSRFilter(_ filter: MSRFilter) throws(KVMError) {
        var c = kvm_msr_filter()
        c.flags = UInt32(filter.defaultDeny ? KVM_MSR_FILTER_DEFAULT_DENY : KVM_MSR_FILTER_DEFAULT_ALLOW)
        let total = max(1, filter.ranges.reduce(0) { $0 + $1.bitmap.count })
        // SAFETY: `total` bytes, freed by the defer below after the ioctl; see the loop.
        let storage = UnsafeMutablePointer<UInt8>.allocate(capacity: total)
        defer { storage.deallocate() }
        var offset = 0
        for (index, range) in filter.ranges.enumerated() {
            // SAFETY: `storage` has room for every range's bitmap (`total` bytes); each range points
            // at its own part of it, which stays allocated until the ioctl (which copies the
            // bitmaps) has returned. `c.ranges` is a tuple of 16 kvm_msr_filter_range and
            // `index` < 16 (checked by MSRFilter.init).
            (storage + offset).initialize(from: range.bitmap, count: range.bitmap.count)
            var r = kvm_msr_filter_range()
            r.flags = range.operations.rawValue
            r.nmsrs = range.count
            r.base = range.base
            r.bitmap = storage + offset
            withUnsafeMutableBytes(of: &c.ranges) { ranges in
                ranges.storeBytes(
                    of: r, toByteOffset: index * MemoryLayout<kvm_msr_filter_range>.stride,
                    as: kvm_msr_filter_range.self)
            }
            offset += range.bitmap.count
        }
        try Syscall.ioctl(fd, ckvm_KVM_X86_SET_MSR_FILTER, &c, name: "KVM_X86_SET_MSR_FILTER")
    }

    /// Makes the guest MSR accesses in `reasons` exit to user space as `VCPUExit.rdmsr`/`.wrmsr`.
    /// The corresponding ioctl is `KVM_ENABLE_CAP(KVM_CAP_X86_USER_SPACE_MSR)`.
    public func enableUserSpaceMSR(_ reasons: MSRExitReasons) throws(KVMError) {
        try enableCapability(.x86UserSpaceMSR, arguments: [UInt64(reasons.rawValue)])
    }
}
