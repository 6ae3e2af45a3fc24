import MachineCore

extension VirtioMMIOBlock {
    /// VIRTQ_DESC_F_NEXT.
    static let descriptorNext: UInt16 = 1
    /// VIRTQ_DESC_F_WRITE: device-writable.
    static let descriptorWrite: UInt16 = 2
    /// VIRTQ_DESC_F_INDIRECT.
    static let descriptorIndirect: UInt16 = 4
    /// VIRTQ_AVAIL_F_NO_INTERRUPT.
    static let availableNoInterrupt: UInt16 = 1
    /// `struct virtio_blk_req` header: le32 type, le32 reserved, le64 sector.
    static let headerLength: UInt64 = 16

    /// One descriptor of a chain.
    struct ChainSegment {
        var address: UInt64
        var length: UInt64
        var writable: Bool
    }

    /// What to do with one parsed request.
    enum RequestPlan {
        /// Complete at once with this status, writing nothing else.
        case fail(BlockStatus, Misbehavior, String)
        /// Complete at once with VIRTIO_BLK_S_OK, after writing `bytes` into `segments`.
        case answer(bytes: [UInt8], into: [Segment])
        /// Hand to the submit sink; data for reads and GET_ID goes to `destination`.
        case submit(kind: BlockRequest.Kind, sector: UInt64, length: UInt64, data: [UInt8],
                    destination: [Segment])
    }

    // MARK: - Completion (machine interface)

    /// Completes the outstanding request `completion.id` (called by the machine at an epoch
    /// boundary): writes read or GET_ID data into the request's buffers, the status byte, and a
    /// used-ring entry, then raises the used-buffer interrupt. A completion for an unknown id
    /// (abandoned by a reset, or already completed) is logged and ignored; a successful read
    /// whose data is not exactly the requested length completes with VIRTIO_BLK_S_IOERR.
    public func complete(_ completion: BlockCompletion) {
        guard let index = s.outstanding.firstIndex(where: { $0.id == completion.id }) else {
            log.report(.unknownCompletion, "virtio-blk: completion for request \(completion.id), which is not outstanding; ignored")
            return
        }
        let request = s.outstanding.remove(at: index)
        guard s.queue.ready else {
            log.report(.unknownCompletion, "virtio-blk: request \(completion.id) completed after its queue was disabled; dropped")
            return
        }
        var status = completion.status
        var written: UInt64 = 0
        switch request.kind {
        case .read:
            if status == .ok {
                if UInt64(completion.data.count) == request.dataLength {
                    guard scatter(completion.data, into: request.dataSegments) else { return }
                    written = request.dataLength
                } else {
                    log.report(.badCompletion, "virtio-blk: read \(request.id) completed with \(completion.data.count) bytes instead of \(request.dataLength); reported as an I/O error")
                    status = .ioError
                }
            }
        case .getID:
            if status == .ok {
                let bytes = Self.idString(completion.data, room: request.dataLength)
                guard scatter(bytes, into: request.dataSegments) else { return }
                written = UInt64(bytes.count)
            }
        case .write, .flush:
            break
        }
        guard finish(head: request.head, statusAddress: request.statusAddress, status: status,
                     written: written)
        else { return }
        signalUsedBuffers()
    }

    /// A device ID string as GET_ID returns it: at most 20 bytes, zero-padded, cut to `room`.
    static func idString(_ bytes: [UInt8], room: UInt64) -> [UInt8] {
        let padded = Array(bytes.prefix(idLength)) + [UInt8](repeating: 0, count: max(0, idLength - bytes.count))
        return Array(padded.prefix(Int(min(room, UInt64(idLength)))))
    }

    // MARK: - The available ring

    /// Processes every available-ring entry the device has not seen yet.
    func processAvailableRing() {
        // A restored state could hold a queue that was never validated.
        if let problem = queueProblem(s.queue) {
            needsReset("queue is unusable: \(problem)")
            return
        }
        guard let availableIndex = load16(s.queue.driverArea &+ 2) else {
            needsReset("available ring index is outside guest RAM")
            return
        }
        let size = UInt64(s.queue.size)
        let waiting = availableIndex &- s.queue.nextAvailable
        guard UInt64(waiting) <= size else {
            needsReset("available index \(availableIndex) is \(waiting) entries ahead of the device's \(s.queue.nextAvailable), more than the queue size \(size)")
            return
        }
        var usedAny = false
        while s.queue.nextAvailable != availableIndex, s.queue.ready,
            !deviceStatus.contains(.deviceNeedsReset)
        {
            let slot = UInt64(s.queue.nextAvailable) % size
            guard let head = load16(s.queue.driverArea &+ 4 &+ 2 * slot) else {
                needsReset("available ring entry is outside guest RAM")
                return
            }
            s.queue.nextAvailable &+= 1
            if handleChain(head: head) { usedAny = true }
        }
        if usedAny { signalUsedBuffers() }
    }

    /// Handles the descriptor chain starting at `head`. Returns true if it was completed at once.
    private func handleChain(head: UInt16) -> Bool {
        let segments: [ChainSegment]
        switch walkChain(head: head) {
        case .success(let chain): segments = chain
        case .failure(let problem):
            needsReset(problem.message)
            return false
        }
        guard let last = segments.last, last.writable, last.length >= 1,
            case (let statusAddress, false) = last.address.addingReportingOverflow(last.length - 1),
            memory.contains(GuestAddress(statusAddress))
        else {
            needsReset("request at descriptor \(head) has no device-writable status byte in guest RAM")
            return false
        }
        switch plan(segments) {
        case .fail(let status, let kind, let message):
            log.report(kind, "virtio-blk: request at descriptor \(head): \(message); completed with \(status)")
            return finish(head: head, statusAddress: statusAddress, status: status, written: 0)
        case .answer(let bytes, let segments):
            guard scatter(bytes, into: segments) else { return false }
            return finish(head: head, statusAddress: statusAddress, status: .ok,
                          written: UInt64(bytes.count))
        case .submit(let kind, let sector, let length, let data, let destination):
            let request = BlockRequest(id: s.nextRequestID, kind: kind, sector: sector,
                                       length: Int(length), data: data)
            s.nextRequestID &+= 1
            s.outstanding.append(OutstandingRequest(
                id: request.id, kind: kind, head: head, dataSegments: destination,
                dataLength: kind == .read || kind == .getID ? length : 0,
                statusAddress: statusAddress))
            submit(request)
            return false
        }
    }

    /// Why a descriptor chain could not be walked.
    struct ChainProblem: Error {
        var message: String
    }

    /// Reads the descriptors of the chain starting at `head`.
    private func walkChain(head: UInt16) -> Result<[ChainSegment], ChainProblem> {
        let size = UInt64(s.queue.size)
        guard UInt64(head) < size else {
            return .failure(ChainProblem(message: "available ring names descriptor \(head), beyond the queue size \(size)"))
        }
        var segments: [ChainSegment] = []
        var index = UInt64(head)
        while true {
            guard UInt64(segments.count) < size else {
                return .failure(ChainProblem(message: "descriptor chain from \(head) is longer than the queue (a loop?)"))
            }
            let entry = s.queue.descriptorTable &+ 16 * index
            guard let address = load64(entry), let length = load32(entry &+ 8),
                let flags = load16(entry &+ 12), let next = load16(entry &+ 14)
            else {
                return .failure(ChainProblem(message: "descriptor \(index) is outside guest RAM"))
            }
            guard flags & Self.descriptorIndirect == 0 else {
                return .failure(ChainProblem(message: "descriptor \(index) is indirect, but VIRTIO_F_INDIRECT_DESC was not offered"))
            }
            segments.append(ChainSegment(address: address, length: UInt64(length),
                                         writable: flags & Self.descriptorWrite != 0))
            guard flags & Self.descriptorNext != 0 else { return .success(segments) }
            guard UInt64(next) < size else {
                return .failure(ChainProblem(message: "descriptor \(index) chains to \(next), beyond the queue size \(size)"))
            }
            index = UInt64(next)
        }
    }

    /// Validates a walked chain (whose status byte is known to be in RAM) and decides what to do.
    private func plan(_ chain: [ChainSegment]) -> RequestPlan {
        var readable: [Segment] = []
        var writable: [Segment] = []
        for segment in chain {
            if segment.writable {
                writable.append(Segment(address: segment.address, length: segment.length))
            } else {
                guard writable.isEmpty else {
                    return .fail(.ioError, .badRequest, "a device-readable descriptor follows a device-writable one")
                }
                readable.append(Segment(address: segment.address, length: segment.length))
            }
        }
        for segment in readable + writable
        where !memory.contains(GuestAddress(segment.address), count: segment.length) {
            return .fail(.ioError, .badRequest, "buffer of \(segment.length) bytes at 0x\(String(segment.address, radix: 16)) is outside guest RAM")
        }
        let readableLength = Self.totalLength(readable)
        guard readableLength >= Self.headerLength else {
            return .fail(.ioError, .badRequest, "the request header is \(readableLength) bytes, not 16")
        }
        let (headerSegments, outData) = Self.split(readable, at: Self.headerLength)
        let (inData, _) = Self.split(writable, at: Self.totalLength(writable) - 1)
        guard let header = gather(headerSegments) else {
            return .fail(.ioError, .badRequest, "the request header is outside guest RAM")
        }
        let type = header[0..<4].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let sector = header[8..<16].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let inLength = Self.totalLength(inData)
        let outLength = Self.totalLength(outData)

        switch RequestType(rawValue: type) {
        case .read:
            guard outLength == 0 else {
                return .fail(.ioError, .badRequest, "a read carries \(outLength) device-readable data bytes")
            }
            if let problem = transferProblem(sector: sector, length: inLength, segments: inData) {
                return .fail(.ioError, .badRequest, "read: \(problem)")
            }
            guard inLength > 0 else { return .answer(bytes: [], into: []) }
            return .submit(kind: .read, sector: sector, length: inLength, data: [],
                           destination: inData)
        case .write:
            guard inLength == 0 else {
                return .fail(.ioError, .badRequest, "a write has \(inLength) device-writable bytes besides the status")
            }
            guard !configuration.readOnly else {
                return .fail(.ioError, .badRequest, "write to a read-only disk")
            }
            if let problem = transferProblem(sector: sector, length: outLength, segments: outData) {
                return .fail(.ioError, .badRequest, "write: \(problem)")
            }
            guard outLength > 0 else { return .answer(bytes: [], into: []) }
            guard let data = gather(outData) else {
                return .fail(.ioError, .badRequest, "write data is outside guest RAM")
            }
            return .submit(kind: .write, sector: sector, length: outLength, data: data,
                           destination: [])
        case .flush:
            return .submit(kind: .flush, sector: 0, length: 0, data: [], destination: [])
        case .getID:
            if let serial = configuration.serial {
                return .answer(bytes: Self.idString(serial, room: inLength), into: inData)
            }
            return .submit(kind: .getID, sector: 0, length: min(inLength, UInt64(Self.idLength)),
                           data: [], destination: inData)
        case .getLifetime, .discard, .writeZeroes, .secureErase, .unsupported:
            return .fail(.unsupported, .unsupportedRequest, "request type \(type) is not supported")
        }
    }

    /// What is wrong with a read or write of `length` bytes at `sector`, if anything.
    private func transferProblem(sector: UInt64, length: UInt64, segments: [Segment]) -> String? {
        guard length % Self.sectorSize == 0 else {
            return "\(length) bytes is not a whole number of 512-byte sectors"
        }
        guard length <= configuration.maxRequestBytes else {
            return "\(length) bytes is more than the device's limit of \(configuration.maxRequestBytes)"
        }
        guard segments.count <= Int(configuration.segmentMaximum) else {
            return "\(segments.count) data segments is more than seg_max \(configuration.segmentMaximum)"
        }
        let capacity = configuration.capacity
        guard sector <= capacity, length / Self.sectorSize <= capacity - sector else {
            return "sectors \(sector)..<\(sector &+ length / Self.sectorSize) are beyond the capacity of \(capacity)"
        }
        return nil
    }

    // MARK: - The used ring

    /// Writes the status byte and a used-ring entry for the chain at `head`. Returns false (and
    /// sets DEVICE_NEEDS_RESET) if guest memory rejects the writes.
    private func finish(head: UInt16, statusAddress: UInt64, status: BlockStatus, written: UInt64)
        -> Bool
    {
        let size = UInt64(s.queue.size)
        let entry = s.queue.deviceArea &+ 4 &+ 8 * (UInt64(s.queue.nextUsed) % max(size, 1))
        let nextUsed = s.queue.nextUsed &+ 1
        do {
            try memory.store(status.rawValue, at: GuestAddress(statusAddress), order: .little)
            try memory.store(UInt32(head), at: GuestAddress(entry), order: .little)
            try memory.store(UInt32(truncatingIfNeeded: written &+ 1), at: GuestAddress(entry &+ 4),
                             order: .little)
            try memory.store(nextUsed, at: GuestAddress(s.queue.deviceArea &+ 2), order: .little)
        } catch {
            needsReset("cannot complete the request at descriptor \(head): \(error)")
            return false
        }
        s.queue.nextUsed = nextUsed
        return true
    }

    /// Sends the used-buffer notification unless the driver suppressed it.
    private func signalUsedBuffers() {
        guard let flags = load16(s.queue.driverArea) else {
            needsReset("available ring flags are outside guest RAM")
            return
        }
        guard flags & Self.availableNoInterrupt == 0 else { return }
        s.interruptStatus |= Self.usedBufferInterrupt
        updateInterrupt()
    }

    // MARK: - Guest memory

    private func load16(_ address: UInt64) -> UInt16? {
        try? memory.load(UInt16.self, at: GuestAddress(address), order: .little)
    }

    private func load32(_ address: UInt64) -> UInt32? {
        try? memory.load(UInt32.self, at: GuestAddress(address), order: .little)
    }

    private func load64(_ address: UInt64) -> UInt64? {
        try? memory.load(UInt64.self, at: GuestAddress(address), order: .little)
    }

    /// The bytes of `segments`, concatenated, or nil if any is outside RAM.
    private func gather(_ segments: [Segment]) -> [UInt8]? {
        var bytes: [UInt8] = []
        for segment in segments {
            guard let part = try? memory.read(at: GuestAddress(segment.address), count: Int(clamping: segment.length))
            else { return nil }
            bytes += part
        }
        return bytes
    }

    /// Writes `bytes` across `segments` in order. Returns false (and sets DEVICE_NEEDS_RESET)
    /// if guest memory rejects a write.
    private func scatter(_ bytes: [UInt8], into segments: [Segment]) -> Bool {
        var offset = 0
        for segment in segments where offset < bytes.count {
            let count = min(Int(clamping: segment.length), bytes.count - offset)
            do {
                try memory.write(bytes[offset..<offset + count], at: GuestAddress(segment.address))
            } catch {
                needsReset("cannot write request data: \(error)")
                return false
            }
            offset += count
        }
        return true
    }

    static func totalLength(_ segments: [Segment]) -> UInt64 {
        segments.reduce(0) { $0 + $1.length }
    }

    /// Splits byte ranges at `offset` bytes from their start; empty ranges are dropped.
    static func split(_ segments: [Segment], at offset: UInt64) -> ([Segment], [Segment]) {
        var head: [Segment] = []
        var tail: [Segment] = []
        var remaining = offset
        for segment in segments where segment.length > 0 {
            if remaining >= segment.length {
                head.append(segment)
                remaining -= segment.length
            } else if remaining == 0 {
                tail.append(segment)
            } else {
                head.append(Segment(address: segment.address, length: remaining))
                tail.append(Segment(address: segment.address + remaining,
                                    length: segment.length - remaining))
                remaining = 0
            }
        }
        return (head, tail)
    }
}
