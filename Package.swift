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
    ],
    targets: [
        // Layer 1: the Raft algorithm as a pure value type. Swift stdlib only: no Foundation,
        // no clock, no threads, no I/O.
        .target(name: "RaftCore"),
        // Deterministic simulation of RaftCore clusters (seeded network, crashes, invariants).
        // Also stdlib only, so a failing seed replays bit for bit.
        .target(name: "RaftSimulation", dependencies: ["RaftCore"]),
        // Binary encoding and CRC-32C of the core's values, shared by storage and transport.
        .target(name: "RaftCodec", dependencies: ["RaftCore"]),
        // Layer 2: durable Raft state on disk (segments, hard state, snapshots).
        .target(name: "RaftStorage", dependencies: ["RaftCore", "RaftCodec"]),
        .executableTarget(
            name: "pgquorum",
            dependencies: [
                "RaftCore", "RaftSimulation", "RaftStorage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "pgquorum-sim",
            dependencies: [
                "RaftSimulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "pgquorum-bench",
            dependencies: [
                "RaftCore", "RaftSimulation", "RaftStorage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "RaftCoreTests", dependencies: ["RaftCore"]),
        .testTarget(name: "RaftSimulationTests", dependencies: ["RaftSimulation", "RaftCore"]),
        .testTarget(name: "pgquorumTests", dependencies: ["pgquorum"]),
        .testTarget(name: "RaftCodecTests", dependencies: ["RaftCodec", "RaftCore"]),
        .testTarget(name: "RaftStorageTests", dependencies: ["RaftStorage", "RaftCodec", "RaftCore", "RaftSimulation"]),
    ],
    swiftLanguageModes: [.v6]
)
