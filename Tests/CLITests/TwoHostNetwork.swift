import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Two "hosts" on this machine for the tests: two network namespaces joined by a veth pair,
/// with the addresses 10.99.0.1 (host A) and 10.99.0.2 (host B) that exist only inside them.
/// They share the file system (an arbiter directory, a disk image) but not the network, so
/// processes started in them (`ip netns exec`) talk only across the link, which a test can cut
/// and heal, make lossy (an iptables `statistic` rule) or slow (`scripts/delay-proxy`: this
/// kernel has no sch_netem).
///
/// Needs root and `ip` (iproute2); `unavailableReason` says why not. `tearDown()` (also run
/// by deinit) kills what the test started in the namespaces and deletes them with the link;
/// namespaces left by a test process that was itself killed are deleted by the next one.
final class TwoHostNetwork: @unchecked Sendable {
    enum Host: CaseIterable, Sendable {
        case a, b
    }

    static let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static let iptables = ["/usr/sbin/iptables", "/sbin/iptables"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Why the two-host tests cannot run here, or nil if they can (probed once, by creating
    /// and deleting a namespace).
    static let unavailableReason: String? = {
        guard geteuid() == 0 else { return "the two-host tests need root (network namespaces)" }
        guard ip != nil else { return "the two-host tests need ip (iproute2; scripts/install-deps installs it)" }
        removeStale()
        let probe = "lks\(getpid())probe"
        guard let created = try? command([ip!, "netns", "add", probe]), created.status == 0 else {
            return "this host cannot create network namespaces (ip netns add failed)"
        }
        _ = try? command([ip!, "netns", "delete", probe])
        return nil
    }()

    private static let instances = Atomic<Int>(0)

    /// The namespace names: `lks<pid>n<k>a` and `...b`.
    let namespaces: [Host: String]
    private let links: [Host: String]
    private let lock = NSLock()
    private var started: [Process] = []
    private var torn = false

    static func address(_ host: Host) -> String { host == .a ? "10.99.0.1" : "10.99.0.2" }

    init() throws {
        let ip = try #require(Self.ip, "no ip command")
        let k = Self.instances.add(1, ordering: .relaxed).newValue
        let stem = "lks\(getpid())n\(k)"
        namespaces = [.a: stem + "a", .b: stem + "b"]
        links = [.a: "lv\(getpid())x\(k)a", .b: "lv\(getpid())x\(k)b"]
        do {
            for host in Host.allCases { try Self.run([ip, "netns", "add", namespaces[host]!]) }
            try Self.run([ip, "link", "add", links[.a]!, "type", "veth", "peer", "name", links[.b]!])
            for host in Host.allCases {
                let ns = namespaces[host]!, link = links[host]!
                try Self.run([ip, "link", "set", link, "netns", ns])
                try Self.run([ip, "-n", ns, "addr", "add", Self.address(host) + "/24", "dev", link])
                try Self.run([ip, "-n", ns, "link", "set", link, "up"])
                try Self.run([ip, "-n", ns, "link", "set", "lo", "up"])
            }
        } catch {
            tearDown()
            throw error
        }
    }

    deinit { tearDown() }

    /// Starts `executable ARGS` inside `host`'s namespace (its output collected as it comes).
    func start(on host: Host, _ executable: URL, _ arguments: [String], input: String = "") throws -> Lockstep.Started {
        let ip = try #require(Self.ip)
        let process = try Lockstep.start(URL(fileURLWithPath: ip),
                                         ["netns", "exec", namespaces[host]!, executable.path] + arguments, input: input)
        lock.withLock { started.append(process.process) }
        return process
    }

    /// Takes the link down (both ends lose carrier: every packet between the hosts is dropped).
    func cut() throws {
        for host in Host.allCases { try Self.run([Self.ip!, "-n", namespaces[host]!, "link", "set", links[host]!, "down"]) }
    }

    /// Brings the link back up.
    func heal() throws {
        for host in Host.allCases { try Self.run([Self.ip!, "-n", namespaces[host]!, "link", "set", links[host]!, "up"]) }
    }

    /// Drops each packet arriving at either host with `probability` (0 removes the rule): an
    /// iptables `statistic --mode random` rule in each namespace.
    func setLoss(_ probability: Double) throws {
        let iptables = try #require(Self.iptables, "the loss tests need iptables (scripts/install-deps installs it)")
        for host in Host.allCases {
            let ns = namespaces[host]!
            try Self.run([Self.ip!, "netns", "exec", ns, iptables, "-F", "INPUT"])
            if probability > 0 {
                try Self.run([Self.ip!, "netns", "exec", ns, iptables, "-A", "INPUT", "-i", links[host]!, "-m", "statistic",
                              "--mode", "random", "--probability", String(format: "%.4f", probability), "-j", "DROP"])
            }
        }
    }

    /// Starts `scripts/delay-proxy` on `host`, listening on `listenPort` of that host's address
    /// and forwarding to `target` (HOST:PORT), each byte delayed by `milliseconds` in each
    /// direction; returns once it listens.
    func startDelayProxy(on host: Host, listenPort: Int, target: String, milliseconds: Int) throws -> Lockstep.Started {
        let proxy = try start(on: host, URL(fileURLWithPath: "/usr/bin/env"),
                              ["python3", Lockstep.root.appendingPathComponent("scripts/delay-proxy").path,
                               "\(Self.address(host)):\(listenPort)", target, "\(milliseconds)"])
        let deadline = Date(timeIntervalSinceNow: 10)
        while !proxy.stdout.snapshot().contains("listening") {
            guard Date() < deadline, proxy.process.isRunning else {
                throw ProcessError("the delay proxy did not start: \(proxy.stderr.snapshot())")
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return proxy
    }

    /// Kills every process started in the namespaces (SIGKILL: the test runner's children
    /// inherit a blocked SIGTERM), then deletes the namespaces, which removes the link.
    func tearDown() {
        let processes = lock.withLock { () -> [Process]? in
            guard !torn else { return nil }
            torn = true
            return started
        }
        guard let processes else { return }
        for process in processes where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        for process in processes { process.waitUntilExit() }
        for host in Host.allCases {
            if let ns = namespaces[host] { _ = try? Self.command([Self.ip!, "netns", "delete", ns]) }
        }
    }

    /// Deletes namespaces that a killed test process (whose pid no longer runs) left behind.
    static func removeStale() {
        guard let ip, let list = try? command([ip, "netns", "list"]) else { return }
        for line in list.output.split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            guard name.hasPrefix("lks"), let pid = Int32(name.dropFirst(3).prefix { $0.isNumber }),
                  pid != getpid(), kill(pid, 0) != 0 && errno == ESRCH
            else { continue }
            _ = try? command([ip, "netns", "delete", name])
        }
    }

    struct ProcessError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Runs a command to its end; throws if it fails.
    private static func run(_ arguments: [String]) throws {
        let result = try command(arguments)
        guard result.status == 0 else {
            throw ProcessError("\(arguments.joined(separator: " ")) failed (\(result.status)): \(result.output)")
        }
    }

    /// Runs a command to its end and returns its status and output (both streams).
    static func command(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let result = try Lockstep.runProcess(URL(fileURLWithPath: arguments[0]), Array(arguments.dropFirst()), timeout: 30)
        return (result.status, result.stdout + result.stderr)
    }
}
