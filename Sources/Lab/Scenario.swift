import WorkloadCheck

/// The named failure scenarios of `pgquorum lab scenario`: the seed's three (primary down,
/// same-city disaster, network partition) and the partitions, freezes and restarts around them.
public enum Scenario: String, CaseIterable, Sendable, Codable {
    case primaryCrash = "primary-crash"
    case sameCityDisaster = "same-city-disaster"
    case partitionPrimary = "partition-primary"
    case partitionHalves = "partition-halves"
    case asymmetricCut = "asymmetric-cut"
    case agentKill = "agent-kill"
    case agentPause = "agent-pause"
    case flapping
    case agentStall = "agent-stall"
    case rollingRestart = "rolling-restart"
    case storageWipe = "storage-wipe"
    case coldRestart = "cold-restart"
    case coldRestartStaggered = "cold-restart-staggered"

    /// What one trial does with `blip` as the flapping isolations' length, for the run's header.
    public func summary(blip: Duration) -> String {
        guard self == .flapping else { return summary }
        return "the primary's links toggled every \(Int(blip / .milliseconds(1))) ms, 10 times, then heal"
    }

    /// What one trial does, for the table and `--help`.
    public var summary: String {
        switch self {
        case .primaryCrash: "SIGKILL of the primary node (agent and PostgreSQL), restart it once a replica took over"
        case .sameCityDisaster: "the primary and secondary1 lost together: no automatic promotion; forced recovery on secondary2"
        case .partitionPrimary: "the primary cut off from both peers (clients still reach it), healed once a replica took over"
        case .partitionHalves: "the primary and one replica | the other replica, 3 s, then heal: the primary keeps its majority"
        case .asymmetricCut: "the primary's traffic to one replica dropped, 3 s, then heal: the primary keeps its majority"
        case .agentKill: "SIGKILL of the primary's agent alone: its PostgreSQL must stop with it; restart the agent"
        case .agentPause: "SIGSTOP of the primary's agent for 4 election timeouts, then SIGCONT: the fence keeper freezes PostgreSQL, then kills it"
        case .agentStall: "SIGSTOP of the primary's agent for 700 ms, five times: its PostgreSQL is frozen and continued, never restarted"
        case .flapping: "the primary's links toggled every 300 ms (--blip-ms), 10 times, then heal: a blip shorter than the election timeout must not restart PostgreSQL"
        case .rollingRestart: "every node restarted gracefully (SIGTERM) in turn, replicas first: the primary is handed over cleanly"
        case .coldRestart: "every node (agent and PostgreSQL) killed at once, all restarted after 1 s: a primary again, nothing acknowledged lost"
        case .coldRestartStaggered: "both replicas killed, the primary acknowledges writes alone for 0.5 s, then killed too; all restarted: the primary's extra WAL kept"
        case .storageWipe: "a replica's Raft log corrupted, the node wiped with storage wipe and restarted: it streams again within 10 s under the same leader"
        }
    }

    /// Whether a replica should take over from the primary of the time of the fault.
    public var expectsFailover: Bool {
        switch self {
        case .primaryCrash, .sameCityDisaster, .partitionPrimary, .agentKill, .agentPause, .rollingRestart: true
        case .partitionHalves, .asymmetricCut, .flapping, .agentStall, .storageWipe, .coldRestart, .coldRestartStaggered: false
        }
    }

    /// Whether the guarantee says no acknowledged write may be lost. Replication is
    /// asynchronous: an unplanned failover may lose what the old primary had not streamed yet
    /// (bounded by `maximum_lag_on_failover`). Where the primary keeps its majority, or hands
    /// over cleanly, nothing may be lost.
    public var guaranteesNoLoss: Bool {
        switch self {
        case .partitionHalves, .asymmetricCut, .agentStall, .rollingRestart, .storageWipe, .coldRestart, .coldRestartStaggered: true
        case .primaryCrash, .sameCityDisaster, .partitionPrimary, .agentKill, .agentPause, .flapping: false
        }
    }

    /// Whether every fault is shorter than the election timeout, so that PostgreSQL must ride
    /// through it: frozen while the lease lapses, continued when it comes back, never restarted.
    public var ridesThrough: Bool {
        switch self {
        case .flapping, .agentStall: true
        default: false
        }
    }
}

/// Everything one `lab scenario` run produced: the raw history, the checker's report, and the
/// scenario's own verdict.
public struct ScenarioOutcome: Sendable, Codable {
    public var scenario: Scenario
    public var history: WorkloadHistory
    public var report: WorkloadReport
    /// Expectations the scenario checked on the way (one line each, "ok" or what went wrong).
    public var checks: [String]
    /// Why the run failed: split-brain writes, writes lost where none may be, a final state
    /// that could not be read, replicas that did not catch up. Empty: passed.
    public var violations: [String]

    public var passed: Bool { violations.isEmpty }

    public init(scenario: Scenario, history: WorkloadHistory, report: WorkloadReport, checks: [String]) {
        self.scenario = scenario
        self.history = history
        self.report = report
        self.checks = checks
        var violations: [String] = []
        if !report.splitBrain.isEmpty {
            violations.append("\(report.splitBrain.count) split-brain writes (acknowledged by a node after another was promoted in a newer epoch)")
        }
        if scenario.ridesThrough {
            let starts = history.trials.compactMap(\.postgresStarts).reduce(0, +)
            if starts > 0 { violations.append("PostgreSQL started \(starts) times, where every fault is shorter than the election timeout and must be ridden through") }
        }
        if scenario.guaranteesNoLoss, !report.lost.isEmpty {
            violations.append("\(report.lost.count) acknowledged writes lost, where the guarantee says none may be")
        }
        if let problem = report.finalStateProblem { violations.append(problem) }
        for (node, missing) in report.replicasBehind.sorted(by: { $0.key < $1.key }) {
            violations.append("\(node) lacks \(missing) acknowledged rows of the final primary after the heal")
        }
        violations += checks.filter { !$0.hasSuffix(": ok") }
        self.violations = violations
    }
}
