import Agent
import ClusterConfig
import Foundation
import PostgresControl
import WorkloadCheck

/// Runs one scenario end to end on a fresh lab: start the lab with PostgreSQL, start the
/// workload client, inject the fault once per trial and wait until the cluster is whole again,
/// then read every node and hand the history to the checker.
public struct ScenarioRunner: Sendable {
    public var scenario: Scenario
    public var trials: Int
    public var directory: String
    public var binary: String
    public var interval: Duration
    /// How long each isolation of the flapping scenario lasts (and each heal between them).
    public var blip: Duration
    /// Leave the lab running afterwards.
    public var keep: Bool
    /// One line per step, for the operator watching.
    public var progress: @Sendable (String) -> Void

    public init(scenario: Scenario, trials: Int, directory: String, binary: String, interval: Duration = .milliseconds(20),
                blip: Duration = .milliseconds(300), keep: Bool = false, progress: @escaping @Sendable (String) -> Void = { _ in }) {
        self.scenario = scenario
        self.trials = trials
        self.directory = directory
        self.binary = binary
        self.interval = interval
        self.blip = blip
        self.keep = keep
        self.progress = progress
    }

    public func run() async throws(LabError) -> ScenarioOutcome {
        progress("starting a 3-node lab with PostgreSQL in \(directory)")
        let state = try await Lab.up(Lab.Options(directory: directory, nodes: Lab.seedNodes, cluster: "scenario", binary: binary, postgres: true))
        defer { if !keep { _ = try? Lab.down(directory: directory) } }
        let probe: LabProbe
        do { probe = try LabProbe(state) } catch { throw LabError("cannot read the lab's certificates: \(error)") }
        var checks: [String] = []

        try await probe.waitUntilWhole(within: .seconds(120), what: "the bootstrap (a primary and two streaming replicas)")
        let addresses = state.nodes.map(\.address)
        let conninfo = WorkloadClient.conninfo(addresses: addresses)
        do { try PostgresConnection(conninfo).query(WorkloadClient.createTable) } catch {
            throw LabError("cannot create the workload table: \(error)")
        }
        let client = WorkloadClient(conninfo: conninfo, nodes: Dictionary(uniqueKeysWithValues: state.nodes.map { ($0.address, $0.name) }),
                                    interval: interval)
        defer { client.stop() }
        progress("client: a write every \(Int(interval / .milliseconds(1))) ms to host=\(addresses.joined(separator: ",")) target_session_attrs=read-write")

        var recorded: [WorkloadHistory.Trial] = []
        for number in 1...max(1, trials) {
            try await probe.waitUntilWhole(within: .seconds(120), what: "the cluster to be whole before trial \(number)")
            await rest(1)
            guard let primary = await probe.primary() else { throw LabError("no primary before trial \(number)") }
            let replicas = state.nodes.map(\.name).filter { $0 != primary }
            let start = WorkloadClient.wallClock()
            let startsBefore = postgresStarts(state)
            let fault = try await inject(primary: primary, replicas: replicas, trial: number, client: client, probe: probe, checks: &checks)
            try await probe.waitUntilWhole(within: .seconds(120), what: "the cluster to be whole after trial \(number)")
            let ended = WorkloadClient.wallClock()
            recorded.append(.init(number: number, fault: fault, at: start, primaryBefore: primary, endedAt: ended,
                                  postgresStarts: postgresStarts(state) - startsBefore))
            let now = await probe.primary() ?? "none"
            progress(String(format: "trial %d: %@; primary now %@, whole again after %.1f s", number, fault, now, (ended - start) / 1_000))
        }
        await rest(1)
        client.stop()
        if let twice = await probe.sawTwoPrimaries() { checks.append("two nodes answered /primary with 200 in one round: \(twice)") }

        progress("reading every node")
        let final = await probe.finalState()
        let history = WorkloadHistory(writes: client.writes, failedAttempts: client.failedAttempts, promotions: await probe.promotions(),
                                      trials: recorded, finalPrimary: final.primary, finalRows: final.rows,
                                      intervalMilliseconds: Double(interval / .microseconds(1)) / 1_000)
        return ScenarioOutcome(scenario: scenario, history: history, report: WorkloadChecker.check(history), checks: checks)
    }

    /// PostgreSQL servers the agents have started so far, from their logs (which agent restarts
    /// append to): one `started PostgreSQL` line each.
    private func postgresStarts(_ state: LabState) -> Int {
        state.nodes.reduce(0) { count, node in
            let log = (try? String(contentsOfFile: "\(directory)/logs/\(node.name).log", encoding: .utf8)) ?? ""
            return count + log.split(separator: "\n").filter { $0.contains("] started PostgreSQL") }.count
        }
    }

    /// Carries out one trial's fault and waits for the behaviour it should cause; returns what
    /// was done, in words.
    private func inject(primary: String, replicas: [String], trial: Int, client: WorkloadClient, probe: LabProbe,
                        checks: inout [String]) async throws(LabError) -> String {
        let started = WorkloadClient.wallClock()
        func takeover(within seconds: Double = 30) async throws(LabError) {
            try await probe.wait(within: .seconds(seconds), what: "a write acknowledged by a node other than \(primary) (trial \(trial))") {
                client.firstAck(after: started, notBy: primary) != nil
            }
        }
        switch scenario {
        case .primaryCrash:
            try Lab.kill(directory: directory, node: primary)
            try? Lab.killPostgres(directory: directory, node: primary)   // usually gone with its agent already
            try await takeover()
            await rest(1)
            try Lab.restart(directory: directory, node: primary)
            return "kill \(primary)"
        case .agentKill:
            try Lab.kill(directory: directory, node: primary)
            let stopped = await probe.postgresStops(on: primary, within: .seconds(2))
            checks.append("trial \(trial): PostgreSQL on \(primary) stopped with its agent: " + (stopped ? "ok" : "still running 2 s after the agent's SIGKILL"))
            try await takeover()
            await rest(1)
            try Lab.restart(directory: directory, node: primary)
            return "kill agent of \(primary)"
        case .agentPause:
            try Lab.pause(directory: directory, node: primary, resume: false)
            await rest(4)
            try await takeover()
            try Lab.pause(directory: directory, node: primary, resume: true)
            return "pause agent of \(primary) 4 s"
        case .agentStall:
            // As long as the lease (700 ms after the last confirmed round, which started up to
            // a heartbeat before the stall), so the keeper freezes PostgreSQL; shorter than the
            // election timeout by a margin for the heartbeat that follows the wake-up.
            for _ in 0..<5 {
                try Lab.pause(directory: directory, node: primary, resume: false)
                await rest(0.7)
                try Lab.pause(directory: directory, node: primary, resume: true)
                await rest(1)
            }
            return "stall agent of \(primary) 700 ms, 5 times"
        case .partitionPrimary:
            try Lab.isolate(directory: directory, node: primary)
            try await takeover()
            await rest(2)
            try Lab.heal(directory: directory)
            return "isolate \(primary)"
        case .partitionHalves:
            try Lab.partition(directory: directory, sides: [[primary, replicas[0]], [replicas[1]]])
            await rest(3)
            try Lab.heal(directory: directory)
            return "partition \(primary),\(replicas[0]) | \(replicas[1])"
        case .asymmetricCut:
            try Lab.cut(directory: directory, from: primary, to: replicas[0])
            await rest(3)
            try Lab.heal(directory: directory)
            return "cut \(primary) → \(replicas[0])"
        case .flapping:
            let seconds = Double(blip / .milliseconds(1)) / 1_000
            for _ in 0..<10 {
                try Lab.isolate(directory: directory, node: primary)
                await rest(seconds)
                try Lab.heal(directory: directory)
                await rest(seconds)
            }
            return "flap \(primary)'s links (\(Int(blip / .milliseconds(1))) ms)"
        case .rollingRestart:
            for node in replicas + [primary] {
                try Lab.restart(directory: directory, node: node, graceful: true)
                try await probe.waitUntilWhole(within: .seconds(120), what: "\(node) back after its restart (trial \(trial))")
            }
            return "restart all, \(primary) last"
        case .coldRestart:
            // A power cut of the whole cluster: every acknowledged write is on the primary's
            // disk at least, so none may be lost.
            let all = [primary] + replicas
            for node in all { try Lab.kill(directory: directory, node: node) }
            for node in all { try? Lab.killPostgres(directory: directory, node: node) }
            await rest(1)
            for node in all { try Lab.restart(directory: directory, node: node) }
            return "kill all, restart all"
        case .coldRestartStaggered:
            // The replicas go first; the primary acknowledges writes alone (asynchronous
            // replication, until its lease runs out), then goes too. Those writes exist only on
            // its disk, and PostgreSQL there is in crash recovery when the first leader decides:
            // the leader must wait for it rather than promote a replica without them.
            for node in replicas { try Lab.kill(directory: directory, node: node) }
            for node in replicas { try? Lab.killPostgres(directory: directory, node: node) }
            let alone = WorkloadClient.wallClock()
            await rest(0.5)
            try Lab.kill(directory: directory, node: primary)
            try? Lab.killPostgres(directory: directory, node: primary)
            let killed = WorkloadClient.wallClock()
            let acknowledged = client.writes.filter { $0.node == primary && $0.ackedAt > alone && $0.ackedAt < killed }.count
            progress("\(primary) acknowledged \(acknowledged) writes alone")
            checks.append("trial \(trial): \(primary) acknowledged writes alone before it was killed: " + (acknowledged > 0 ? "ok" : "none"))
            await rest(1)
            for node in [primary] + replicas { try Lab.restart(directory: directory, node: node) }
            return "kill \(replicas.joined(separator: ", ")), then \(primary) 0.5 s later, restart all"
        case .storageWipe:
            return try await storageWipe(replica: replicas[1], trial: trial, probe: probe, checks: &checks)
        case .sameCityDisaster:
            return try await sameCityDisaster(primary: primary, replicas: replicas, trial: trial, client: client, probe: probe,
                                              checks: &checks, takeover: { () async throws(LabError) in try await takeover() })
        }
    }

    /// docs/storage.md's recovery, as an operator runs it: a replica's Raft log is damaged, its
    /// agent stopped; `storage verify` must name the damage, `storage wipe` replace the state
    /// (once the leader no longer hears from the node). Restarted, the node must stream again
    /// within 10 s while the same leader leads in the same term, without keeping the leader's
    /// agent busy (a wiped node once made it send at network speed, issue 17).
    private func storageWipe(replica: String, trial: Int, probe: LabProbe, checks: inout [String]) async throws(LabError) -> String {
        guard let primary = await probe.primary(), let before = await probe.view(primary, confirmed: true), before.leader == primary else {
            throw LabError("no confirmed leader on the primary before the wipe (trial \(trial))")
        }
        try Lab.kill(directory: directory, node: replica)
        let state = try LabState.load(directory: directory)
        let raft = state.dataRoot + "/\(replica)/raft"
        try corruptOneRecord(in: raft + "/wal")
        let verify = try Shell.run([binary, "storage", "verify", "--data-dir", raft])
        checks.append("trial \(trial): storage verify names the damage on \(replica): "
                      + (verify.status != 0 && verify.output.contains("corrupt") ? "ok" : "exit \(verify.status): \(verify.output)"))

        var wipe = try Shell.run([binary, "storage", "wipe", "--config", state.configPath, "--node", replica, "--yes"])
        let wipeDeadline = ContinuousClock.now + .seconds(15)
        while wipe.status != 0, wipe.output.contains("still hears from"), ContinuousClock.now < wipeDeadline {
            await rest(0.25)
            wipe = try Shell.run([binary, "storage", "wipe", "--config", state.configPath, "--node", replica, "--yes"])
        }
        for line in wipe.output.split(separator: "\n") { progress("  " + line) }
        checks.append("trial \(trial): storage wipe on \(replica): " + (wipe.status == 0 ? "ok" : "exit \(wipe.status): \(wipe.output)"))

        let leaderPID = state.node(primary)?.agentPID
        let cpuBefore = leaderPID.flatMap(cpuSeconds(of:))
        let restarted = ContinuousClock.now
        try Lab.restart(directory: directory, node: replica)
        var streaming = false
        while !streaming, ContinuousClock.now < restarted + .seconds(10) {
            streaming = await probe.isReplica(replica)
            if !streaming { await rest(0.1) }
        }
        let took = (ContinuousClock.now - restarted) / .milliseconds(1) / 1_000
        if streaming { progress(String(format: "%@ streaming again %.1f s after its restart", replica, took)) }
        checks.append("trial \(trial): \(replica) streams again within 10 s of its restart: " + (streaming ? "ok" : "not within 10 s"))
        await rest(max(0, 5 - took))
        let window = (ContinuousClock.now - restarted) / .milliseconds(1) / 1_000
        if let cpuBefore, let pid = leaderPID, let cpuAfter = cpuSeconds(of: pid) {
            let share = (cpuAfter - cpuBefore) / window
            progress(String(format: "the leader's agent used %.0f %% of a core in the %.1f s after the restart", share * 100, window))
            checks.append("trial \(trial): the leader's agent was not kept busy after the restart (under half a core): " + (share < 0.5 ? "ok" : String(format: "%.0f %%", share * 100)))
        }
        let after = await probe.view(primary, confirmed: true)
        checks.append("trial \(trial): the same leader in the same term: "
                      + (after?.leader == before.leader && after?.term == before.term ? "ok"
                         : "\(before.leader ?? "none") term \(before.term) before, \(after?.leader ?? "none") term \(after?.term ?? 0) after"))
        return "corrupt \(replica)'s Raft log, wipe it, restart it"
    }

    /// Flips a byte in the node's largest WAL segment: damage that no crash leaves.
    private func corruptOneRecord(in walDirectory: String) throws(LabError) {
        let segments = ((try? FileManager.default.contentsOfDirectory(atPath: walDirectory)) ?? []).filter { $0.hasSuffix(".seg") }
        let size = { (name: String) -> Int in
            ((try? FileManager.default.attributesOfItem(atPath: walDirectory + "/" + name))?[.size] as? Int) ?? 0
        }
        guard let name = segments.max(by: { size($0) < size($1) }),
              let handle = FileHandle(forUpdatingAtPath: walDirectory + "/" + name) else {
            throw LabError("no WAL segment to damage in \(walDirectory)")
        }
        defer { try? handle.close() }
        do {
            // Inside the first record after the 32-byte segment header (the segment's hard state),
            // which later records follow: corruption, not a torn tail.
            let offset: UInt64 = 32 + 12 + 2
            let size = try handle.seekToEnd()
            guard size > offset + 64 else { throw LabError("\(walDirectory)/\(name) holds only \(size) bytes; nothing to damage") }
            try handle.seek(toOffset: offset)
            let byte = try handle.read(upToCount: 1) ?? Data([0])
            try handle.seek(toOffset: offset)
            try handle.write(contentsOf: Data([~(byte.first ?? 0)]))
            try handle.synchronize()
        } catch let error as LabError {
            throw error
        } catch {
            throw LabError("cannot damage \(walDirectory)/\(name): \(error)")
        }
    }

    /// User and system CPU time of a process so far, in seconds.
    private func cpuSeconds(of pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// The seed's second scenario: the primary and the nearer replica are lost together. The
    /// survivor must not promote itself (no quorum); the operator's forced recovery promotes it;
    /// the lost nodes, restarted, must rejoin as replicas without ever answering as primary.
    private func sameCityDisaster(primary: String, replicas: [String], trial: Int, client: WorkloadClient, probe: LabProbe,
                                  checks: inout [String], takeover: () async throws(LabError) -> Void) async throws(LabError) -> String {
        let survivor = replicas[1], lost = [primary, replicas[0]]
        for node in lost { try Lab.kill(directory: directory, node: node) }
        for node in lost { try? Lab.killPostgres(directory: directory, node: node) }
        let killed = WorkloadClient.wallClock()
        var promoted: String?
        let quiet = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < quiet, promoted == nil {
            promoted = await probe.primary() ?? client.firstAck(after: killed, notBy: primary)?.node
            await rest(0.2)
        }
        checks.append("trial \(trial): no automatic promotion without a quorum for 5 s: "
                      + (promoted.map { "\($0) accepted writes without a quorum" } ?? "ok"))

        let command = [binary, "recover-quorum", survivor, "--reason", "same-city disaster drill (trial \(trial))", "--yes",
                       "--config", directory + "/cluster.yaml"]
        progress("$ pgquorum " + command.dropFirst().map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " "))
        let forcedAt = WorkloadClient.wallClock()
        let forced = try Shell.run(command)
        for line in forced.output.split(separator: "\n") { progress("  " + line) }
        checks.append("trial \(trial): forced recovery on \(survivor): "
                      + (forced.status == 0 ? "ok" : "exit \(forced.status): \(forced.output.trimmingCharacters(in: .whitespacesAndNewlines))"))
        try await takeover()
        if let first = client.firstAck(after: forcedAt, notBy: primary) {
            progress(String(format: "first write acknowledged by %@ %.0f ms after the recover-quorum command started", first.node, first.ackedAt - forcedAt))
        }
        await rest(1)
        let restarted = WorkloadClient.wallClock()
        for node in lost { try Lab.restart(directory: directory, node: node) }

        // Until both are streaming replicas of the survivor, neither may answer as primary.
        var actedAsPrimary: Set<String> = []
        var whole = false
        let limit = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < limit, !whole {
            for node in lost where await probe.answersPrimary(node) { actedAsPrimary.insert(node) }
            whole = await probe.wholeClusterPrimary() == survivor
            if !whole { await rest(0.1) }
        }
        if whole { progress(String(format: "%@ streaming from %@ %.1f s after their restart", lost.joined(separator: " and "), survivor, (WorkloadClient.wallClock() - restarted) / 1_000)) }
        checks.append("trial \(trial): \(lost.joined(separator: " and ")) never answered /primary while rejoining: "
                      + (actedAsPrimary.isEmpty ? "ok" : "\(actedAsPrimary.sorted().joined(separator: ", ")) did"))
        checks.append("trial \(trial): \(lost.joined(separator: " and ")) rejoined as streaming replicas of \(survivor): "
                      + (whole ? "ok" : "not within 120 s"))
        return "kill \(primary)+\(replicas[0]), force \(survivor)"
    }
}

/// A sleep that ignores cancellation: every wait of a scenario is bounded anyway.
private func rest(_ seconds: Double) async {
    try? await Task.sleep(for: .milliseconds(Int64(seconds * 1_000)))
}
