// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "pgquorum",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "pgquorum", targets: ["pgquorum"]),
        .executable(name: "pgquorum-sim", targets: ["pgquorum-sim"]),
        .executable(name: "pgquorum-bench", targets: ["pgquorum-bench"]),
        .library(name: "RaftCore", targets: ["RaftCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // No default traits: swift-configuration support is not needed.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
    ],
    targets: [
        // Layer 1: the Raft algorithm as a pure value type. Swift stdlib only: no Foundation,
        // no clock, no threads, no I/O.
        .target(name: "RaftCore"),
        // Deterministic simulation of RaftCore clusters (seeded network, crashes, invariants).
        // Also stdlib only, so a failing seed replays bit for bit.
        .target(name: "RaftSimulation", dependencies: ["RaftCore"]),
        // The replicated cluster state (primary, epoch, history) and the failover policy: pure.
        .target(name: "ClusterState", dependencies: ["RaftCodec"]),
        // The cluster state as the simulator's replicated application (its real snapshots).
        .target(name: "ClusterStateSimulation", dependencies: ["ClusterState", "RaftSimulation"]),
        // The Jepsen-style checker of a scenario's history (lost and split-brain writes,
        // unavailability, failover times): pure, stdlib only.
        .target(name: "WorkloadCheck"),
        // Binary encoding and CRC-32C of the core's values, shared by storage and transport.
        .target(name: "RaftCodec", dependencies: ["RaftCore"]),
        // Layer 2: durable Raft state on disk (segments, hard state, snapshots).
        .target(name: "RaftStorage", dependencies: ["RaftCore", "RaftCodec"]),
        // The cluster CA and node certificates (mutual TLS identities), in pure Swift.
        .target(
            name: "ClusterCertificates",
            dependencies: [
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        // The cluster description (one YAML file) and its validation.
        .target(
            name: "ClusterConfig",
            dependencies: [
                "RaftCore",
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // Layer 3: the agent process: owns the Raft node, drives storage and transport, serves the
        // operator API.
        .target(
            name: "Agent",
            dependencies: [
                "RaftCore", "RaftCodec", "RaftStorage", "PeerTransport", "ClusterConfig", "ClusterState", "PostgresControl",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
            ]
        ),
        // libpq, PostgreSQL's client library, from the system (libpq-dev).
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        // Layer 2: PostgreSQL access (libpq, blocking: callers keep it off the event loops) and
        // control of a server's processes (initdb, pg_ctl), as an unprivileged user under root.
        .target(name: "PostgresControl", dependencies: ["CLibPQ", "CProcessSpawn"]),
        // fork + exec with a clean descriptor table, an identity change and a parent-death
        // signal: what Swift cannot do itself (fork, variadic prctl).
        .target(name: "CProcessSpawn"),
        // The partition lab: agents in network namespaces, faults by iptables and signals.
        .target(
            name: "Lab",
            dependencies: [
                "Agent", "ClusterConfig", "ClusterCertificates", "PostgresControl", "WorkloadCheck",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // Real agent processes on loopback, started and stopped by PID: for tests and benchmarks.
        .target(name: "LocalCluster", dependencies: ["Agent", "ClusterCertificates"]),
        .executableTarget(
            name: "pgquorum",
            dependencies: [
                "RaftCore", "RaftSimulation", "RaftStorage", "ClusterCertificates", "ClusterConfig", "Agent", "Lab",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "pgquorum-sim",
            dependencies: [
                "RaftSimulation", "ClusterStateSimulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "pgquorum-bench",
            dependencies: [
                "RaftCore", "RaftSimulation", "RaftStorage", "PeerTransport", "ClusterCertificates", "LocalCluster",
                "Lab", "Agent", "ClusterConfig", "ClusterState", "PostgresControl", "WorkloadCheck",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "RaftCoreTests", dependencies: ["RaftCore"]),
        .testTarget(name: "RaftSimulationTests", dependencies: ["RaftSimulation", "RaftCore"]),
        .testTarget(name: "pgquorumTests", dependencies: ["pgquorum", "LocalCluster"]),
        .testTarget(name: "RaftCodecTests", dependencies: ["RaftCodec", "RaftCore"]),
        // Layer 2: mutual-TLS peer connections between agents.
        .target(
            name: "PeerTransport",
            dependencies: [
                "RaftCore", "RaftCodec", "ClusterCertificates",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
            ]
        ),
        .testTarget(name: "PeerTransportTests", dependencies: ["PeerTransport", "ClusterCertificates", "RaftCore", "RaftCodec"]),
        .testTarget(name: "ClusterCertificatesTests", dependencies: ["ClusterCertificates"]),
        .testTarget(name: "ClusterConfigTests", dependencies: ["ClusterConfig"]),
        .testTarget(name: "AgentTests", dependencies: ["Agent", "LocalCluster", "ClusterConfig", "ClusterCertificates", "RaftCore", "PostgresControl", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "ClusterStateTests", dependencies: ["ClusterState"]),
        .testTarget(name: "ClusterStateSimulationTests", dependencies: ["ClusterStateSimulation", "ClusterState", "RaftSimulation", "RaftCore"]),
        .testTarget(name: "WorkloadCheckTests", dependencies: ["WorkloadCheck"]),
        .testTarget(name: "PostgresControlTests", dependencies: ["PostgresControl"]),
        .testTarget(name: "LabTests", dependencies: ["Lab", "Agent", "LocalCluster", "ClusterConfig", "PostgresControl", "WorkloadCheck",
                                                   "PeerTransport", "RaftCore", .product(name: "NIOPosix", package: "swift-nio")]),
        .testTarget(name: "RaftStorageTests", dependencies: ["RaftStorage", "RaftCodec", "RaftCore", "RaftSimulation"]),
    ],
    swiftLanguageModes: [.v6]
)
