import Foundation
import Lab
import LocalCluster
import PostgresControl
import Testing
import WorkloadCheck

/// A rolling upgrade under write load, as an operator does it: the lab starts on the previous
/// release (built from the commit CHANGELOG.md names for it, in a git worktree) and every node
/// is upgraded to this build in turn, replicas first, with `lab upgrade` (a graceful stop: the
/// primary is handed over first). No acknowledged write may be lost, none may land on two
/// primaries, and no write gap may be longer than a switchover's (issue 22, item 3).
extension LabTests {
    @Test func aRollingUpgradeFromThePreviousReleaseLosesNothing() async throws {
        let previous = try PreviousRelease.binary()
        let current = LocalCluster.defaultBinary()
        let names = Lab.seedNodes.map(\.name)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgq-upgrade-\(UUID().uuidString.prefix(8))").path
        let state = try await Lab.up(Lab.Options(directory: directory, nodes: Lab.seedNodes, cluster: "upgrade", binary: current,
                                                 postgres: true, binaries: Dictionary(uniqueKeysWithValues: names.map { ($0, previous) })))
        defer { _ = try? Lab.down(directory: directory) }
        let probe = try LabProbe(state)
        try await probe.waitUntilWhole(within: .seconds(120), what: "the bootstrap on the previous release")
        /// The program a node's agent process really runs (not what lab.json says).
        func running(_ node: String) throws -> String? {
            guard let pid = try LabState.load(directory: directory).node(node)?.agentPID else { return nil }
            return try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")
        }
        let previousPath = URL(fileURLWithPath: previous).resolvingSymlinksInPath().path
        let currentPath = URL(fileURLWithPath: current).resolvingSymlinksInPath().path
        for node in names { #expect(try running(node) == previousPath, "\(node) does not run the previous release") }
        let conninfo = WorkloadClient.conninfo(addresses: state.nodes.map(\.address))
        try PostgresConnection(conninfo).query(WorkloadClient.createTable)
        let client = WorkloadClient(conninfo: conninfo, nodes: Dictionary(uniqueKeysWithValues: state.nodes.map { ($0.address, $0.name) }),
                                    interval: .milliseconds(20))
        defer { client.stop() }
        try await Task.sleep(for: .seconds(1))
        let started = WorkloadClient.wallClock()
        let primary = try #require(await probe.primary())
        var longestGap = 0.0
        for node in names.filter({ $0 != primary }) + [primary] {
            let before = WorkloadClient.wallClock()
            try Lab.upgrade(directory: directory, node: node, binary: current)
            #expect(try running(node) == currentPath, "\(node) does not run the new build after lab upgrade")
            try await probe.waitUntilWhole(within: .seconds(120), what: "the cluster whole after upgrading \(node)")
            try await Task.sleep(for: .seconds(1))
            let gap = client.longestGap(from: before, to: WorkloadClient.wallClock())
            longestGap = max(longestGap, gap)
            print("upgraded \(node): longest write gap \(Int(gap)) ms")
        }
        client.stop()
        let final = await probe.finalState()
        let history = WorkloadHistory(writes: client.writes, failedAttempts: client.failedAttempts, promotions: await probe.promotions(),
                                      trials: [], finalPrimary: final.primary, finalRows: final.rows, intervalMilliseconds: 20)
        let report = WorkloadChecker.check(history)
        #expect(report.acknowledged > 100, "the client kept writing through the upgrade")
        #expect(report.lost.isEmpty, "acknowledged writes lost: \(report.lost.prefix(5))")
        #expect(report.splitBrain.isEmpty)
        #expect(await probe.sawTwoPrimaries() == nil)
        // A switchover's gap: the rolling-restart scenario's longest is about 1.2 s; allow margin
        // for the slower machine, not for a failover's election.
        #expect(longestGap < 5_000, "a write gap of \(Int(longestGap)) ms: longer than a switchover's")
        print("rolling upgrade from \(previous): \(report.acknowledged) writes acknowledged in \(Int(WorkloadClient.wallClock() - started)) ms, longest gap \(Int(longestGap)) ms")
    }
}

/// The previous release's binary: the newest release heading of CHANGELOG.md names its commit;
/// it is built once per machine in a git worktree under `.build/previous-release/<commit>`.
enum PreviousRelease {
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static func commit() throws -> String {
        let changelog = try String(contentsOfFile: repository + "/CHANGELOG.md", encoding: .utf8)
        for line in changelog.split(separator: "\n") where line.hasPrefix("## ") && line.contains("commit ") {
            if let word = line.split(separator: " ").last, word.count == 40, word.allSatisfy(\.isHexDigit) { return String(word) }
        }
        throw LabError("CHANGELOG.md names no release commit (a heading \"## X.Y.Z — DATE, commit <40 hex digits>\")")
    }

    static func binary() throws -> String {
        let commit = try commit()
        let worktree = repository + "/.build/previous-release/" + commit
        let binary = worktree + "/.build/debug/pgquorum"
        if FileManager.default.isExecutableFile(atPath: binary) { return binary }
        if !FileManager.default.fileExists(atPath: worktree + "/Package.swift") {
            try? FileManager.default.removeItem(atPath: worktree)
            _ = try? run("/usr/bin/git", ["-C", repository, "worktree", "prune"], in: repository)
            try run("/usr/bin/git", ["-C", repository, "worktree", "add", "--detach", worktree, commit], in: repository)
        }
        try run("/usr/bin/env", ["swift", "build", "--product", "pgquorum"], in: worktree)
        guard FileManager.default.isExecutableFile(atPath: binary) else { throw LabError("building \(commit) made no \(binary)") }
        return binary
    }

    @discardableResult
    private static func run(_ program: String, _ arguments: [String], in directory: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw LabError("\(arguments.joined(separator: " ")) failed in \(directory): \(output.split(separator: "\n").suffix(3).joined(separator: " | "))")
        }
        return output
    }
}
