/// What a snapshot is a snapshot of: the guest image (by digest) and the configuration a
/// restoring run must match (memory size, command line, disk size, clocks, ...). The keys and
/// values are the hypervisor's; this type only stores and compares them.
public struct SnapshotIdentity: Equatable, Sendable {
    /// The guest's architecture.
    public var architecture: GuestArchitecture
    /// SHA-256 of the guest's ELF file.
    public var imageDigest: StateDigest
    /// The configuration, in a fixed order of (key, value).
    public var configuration: [Setting]

    /// One configuration setting.
    public struct Setting: Equatable, Sendable {
        public var key: String
        public var value: String
        public init(_ key: String, _ value: String) {
            self.key = key
            self.value = value
        }
    }

    public init(architecture: GuestArchitecture, imageDigest: StateDigest, configuration: [Setting]) {
        self.architecture = architecture
        self.imageDigest = imageDigest
        self.configuration = configuration
    }

    /// Why a snapshot of `snapshot` cannot continue in a run of `self`, in one line naming the
    /// first difference; nil when they match.
    public func refusal(of snapshot: SnapshotIdentity) -> String? {
        if snapshot.architecture != architecture {
            return "it is of an \(snapshot.architecture) guest, and this run's guest is \(architecture)"
        }
        if snapshot.imageDigest != imageDigest {
            return "it is of another guest image (SHA-256 \(snapshot.imageDigest.description.prefix(16))…, this one \(imageDigest.description.prefix(16))…)"
        }
        let mine = Dictionary(configuration.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        let theirs = Dictionary(snapshot.configuration.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        for setting in configuration where theirs[setting.key] != setting.value {
            let was = theirs[setting.key].map { "\($0.prefix(80))" } ?? "(not set)"
            return "it was taken with \(setting.key)=\(was), this run has \(setting.key)=\(setting.value.prefix(80))"
        }
        if let extra = snapshot.configuration.first(where: { mine[$0.key] == nil }) {
            return "it was taken with a setting this run does not have (\(extra.key.prefix(40)))"
        }
        return nil
    }
}

/// The host's side of the boundary a snapshot was taken at: what the restored run needs besides
/// the machine.
///
/// Disk requests: a host performs a request when the guest submits it and holds the completion
/// for a boundary. Completions held at the snapshot boundary are `pendingEvents` and are
/// delivered at the restored run's first boundary, before anything new. A request still
/// outstanding in the machine with no completion here (none, for Lockstep's hosts, which
/// perform requests at once) gets an uncertain completion (`BlockStatus.ioError`) at that
/// boundary, as after a failover (rule P8): the guest's driver retries it.
public struct SnapshotHostState: Equatable, Sendable {
    /// Epoch boundaries passed when the snapshot was taken.
    public var epoch: UInt64
    /// Inputs taken from the host and not yet applied to the machine: console input, disk
    /// completions, in delivery order.
    public var pendingEvents: [BoundaryEvent]

    public init(epoch: UInt64, pendingEvents: [BoundaryEvent] = []) {
        self.epoch = epoch
        self.pendingEvents = pendingEvents
    }

    /// `pendingEvents`, then an uncertain completion for every request in `outstanding` that
    /// they do not complete: what the restored run delivers at its first boundary.
    public func eventsForFirstBoundary(outstanding: [BlockRequestID]) -> [BoundaryEvent] {
        var completed: Set<BlockRequestID> = []
        for case .blockCompletion(let c) in pendingEvents { completed.insert(c.id) }
        return pendingEvents + outstanding.filter { !completed.contains($0) }.map {
            .blockCompletion(BlockCompletion(id: $0, status: .ioError))
        }
    }
}
