// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Lockstep",
    products: [
        .executable(name: "lockstep", targets: ["lockstep"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
    ],
    targets: [
        // The mechanical C layer over <linux/kvm.h>.
        .target(name: "CKVM", path: "CKVM"),
        // Debian's libelf and capstone, as system libraries.
        .systemLibrary(name: "CLibElf", path: "Sources/CLibElf", pkgConfig: "libelf",
                       providers: [.apt(["libelf-dev"])]),
        .systemLibrary(name: "CCapstone", path: "Sources/CCapstone", pkgConfig: "capstone",
                       providers: [.apt(["libcapstone-dev"])]),

        // The only importer of CKVM: owning wrappers for /dev/kvm, the VM and each vCPU.
        .target(name: "KVM", dependencies: ["CKVM"]),
        // Guest addresses and memory, the bus, interrupt lines, virtual time, the Machine protocol.
        .target(name: "MachineCore", dependencies: [
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Deterministic device models: 16550 UART, 8259 PIC, 8254 PIT, debug exit, virtio-mmio block.
        .target(name: "Devices", dependencies: [
            "MachineCore",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // ELF (via libelf) and Multiboot v1 loading.
        .target(name: "Loader", dependencies: ["MachineCore", "CLibElf"]),
        // The x86 engine: guests on KVM.
        .target(name: "X86", dependencies: [
            "KVM", "MachineCore", "Devices", "Loader", "CCapstone",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The PA-RISC engine: an emulator of the PA-RISC 1.1 integer subset.
        .target(name: "PARISC", dependencies: [
            "MachineCore", "Devices", "Loader",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The host side of a run: console and disk backends, the unreplicated run loop.
        .target(name: "Hypervisor", dependencies: [
            "MachineCore", "Loader", "Devices", "X86", "PARISC",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Primary/backup replica coordination.
        .target(name: "Replication", dependencies: [
            "MachineCore", "Hypervisor",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: [
            // The replicas' per-epoch bookkeeping lives in class properties, and checking each
            // access for exclusivity at run time was a quarter of an epoch boundary's cost
            // (issue 16, docs/benchmarks.md). Release builds rely on the compiler's static
            // checks; debug builds, which run the test suite, keep the dynamic ones.
            .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
        ]),
        // `lockstep bench`: experiments that drive the lockstep binary and QEMU as processes.
        .target(name: "Bench", dependencies: [
            "Replication", "X86",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .executableTarget(name: "lockstep", dependencies: [
            "MachineCore", "Loader", "KVM", "X86", "PARISC", "Hypervisor", "Replication", "Bench",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // Fuzzing (scripts/fuzz): the targets, libFuzzer's driver declaration, the driver.
        .target(name: "FuzzTargets", dependencies: [
            "Replication", "Devices", "MachineCore", "Hypervisor",
            .product(name: "NIOCore", package: "swift-nio"),
        ], path: "Fuzz/Targets"),
        .target(name: "CFuzz", path: "Fuzz/CFuzz"),
        .executableTarget(name: "lockstep-fuzz", dependencies: [
            "FuzzTargets", "CFuzz", .product(name: "Logging", package: "swift-log"),
        ], path: "Fuzz/Driver"),

        // Helpers shared by test targets.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "KVMTests", dependencies: ["KVM"]),
        .testTarget(name: "MachineCoreTests", dependencies: [
            "MachineCore", "TestSupport", .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .testTarget(name: "DevicesTests", dependencies: ["Devices", "MachineCore", "TestSupport"]),
        .testTarget(name: "LoaderTests", dependencies: ["Loader", "MachineCore"]),
        .testTarget(name: "X86Tests", dependencies: ["X86", "KVM", "MachineCore", "Devices", "Loader", "Bench", "TestSupport"]),
        .testTarget(name: "PARISCTests", dependencies: ["PARISC", "MachineCore", "Devices", "Loader", "TestSupport", "Bench"]),
        .testTarget(name: "HypervisorTests", dependencies: ["Hypervisor", "MachineCore"]),
        .testTarget(name: "ReplicationTests", dependencies: [
            "Replication", "Hypervisor", "MachineCore", "TestSupport",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .testTarget(name: "FuzzCorpusTests", dependencies: ["FuzzTargets"]),
        .testTarget(name: "CLITests", dependencies: [
            "TestSupport", "Bench", "Replication", "MachineCore", "Hypervisor",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "SnapshotTests", dependencies: [
            "Hypervisor", "MachineCore", "X86", "PARISC", "KVM", "Loader", "TestSupport",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
    ]
)
