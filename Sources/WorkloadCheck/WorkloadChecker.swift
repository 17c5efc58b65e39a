/// What the checker found in a `WorkloadHistory`.
public struct WorkloadReport: Sendable, Equatable, Codable {
    /// A write a node acknowledged after another node had been made primary in a newer epoch:
    /// two servers accepted writes at once. Must never happen.
    public struct SplitBrainWrite: Sendable, Equatable, Codable {
        public var write: WorkloadHistory.Write
        /// The newer promotion the write came after.
        public var supersededBy: WorkloadHistory.Promotion
    }

    /// A time without any acknowledged write, longer than `WorkloadChecker.unavailableAfter`.
    public struct Window: Sendable, Equatable, Codable {
        public var from: Double
        public var to: Double
        public var milliseconds: Double { to - from }
    }

    /// The figures of one fault.
    public struct TrialResult: Sendable, Equatable, Codable {
        public var number: Int
        public var fault: String
        public var primaryBefore: String?
        /// The first node promoted after the fault began, other than `primaryBefore`.
        public var newPrimary: String?
        /// Fault → the cluster committed the new primary (the leader's proposal).
        public var detectionMilliseconds: Double?
        /// Fault → the first write acknowledged by a node other than `primaryBefore`.
        public var failoverMilliseconds: Double?
        /// The longest time without an acknowledged write during the trial.
        public var longestGapMilliseconds: Double
        public var lostWrites: Int
        public var splitBrainWrites: Int
        /// PostgreSQL servers started during the trial (nil: not counted).
        public var postgresStarts: Int?
    }

    public var acknowledged: Int
    public var failedAttempts: Int
    public var lost: [WorkloadHistory.Write]
    public var splitBrain: [SplitBrainWrite]
    /// Per replica: acknowledged rows the final primary holds but the replica still lacks after
    /// the heal (a replica that did not catch up).
    public var replicasBehind: [String: Int]
    public var unavailable: [Window]
    public var trials: [TrialResult]
    /// Why the final state could not be checked, if it could not (no primary, unreadable).
    public var finalStateProblem: String?
}

/// The checker: pure, so every rule is unit-tested with hand-written histories.
public enum WorkloadChecker {
    /// A gap between acknowledged writes counts as unavailability past this many intervals (and
    /// at least 250 ms: a slow commit is not an outage).
    public static let unavailableAfterIntervals = 5.0

    public static func check(_ history: WorkloadHistory) -> WorkloadReport {
        let writes = history.writes.sorted { $0.ackedAt < $1.ackedAt }
        let promotions = history.promotions.sorted { $0.epoch < $1.epoch }

        // Split brain: the newest promotion made before the server ran the INSERT names another
        // node. serverAt precedes the commit, so a hit is certain, never a clock artefact.
        var splitBrain: [WorkloadReport.SplitBrainWrite] = []
        for write in writes {
            guard let current = promotions.last(where: { $0.at <= write.serverAt }), current.node != write.node else { continue }
            splitBrain.append(.init(write: write, supersededBy: current))
        }

        var lost: [WorkloadHistory.Write] = []
        var behind: [String: Int] = [:]
        var problem: String?
        if let primary = history.finalPrimary, let rows = history.finalRows[primary] {
            lost = writes.filter { !rows.contains($0.id) }
            for (node, held) in history.finalRows where node != primary {
                let missing = writes.filter { rows.contains($0.id) && !held.contains($0.id) }.count
                if missing > 0 { behind[node] = missing }
            }
        } else if let primary = history.finalPrimary {
            problem = "the final primary \(primary) could not be read"
        } else {
            problem = "no primary after the heal: lost writes cannot be counted"
        }

        let threshold = max(250, unavailableAfterIntervals * history.intervalMilliseconds)
        var windows: [WorkloadReport.Window] = []
        for (previous, next) in zip(writes, writes.dropFirst()) where next.ackedAt - previous.ackedAt > threshold {
            windows.append(.init(from: previous.ackedAt, to: next.ackedAt))
        }

        let trials = history.trials.sorted { $0.at < $1.at }
        var results: [WorkloadReport.TrialResult] = []
        for (index, trial) in trials.enumerated() {
            let previousEnd = index > 0 ? trials[index - 1].endedAt : -Double.infinity
            let promotion = promotions.first { $0.at >= trial.at && $0.at <= trial.endedAt && $0.node != trial.primaryBefore }
            let failover = writes.first { $0.ackedAt > trial.at && $0.node != trial.primaryBefore }
            let inTrial = { (write: WorkloadHistory.Write) in write.ackedAt > previousEnd && write.ackedAt <= trial.endedAt }
            results.append(.init(
                number: trial.number,
                fault: trial.fault,
                primaryBefore: trial.primaryBefore,
                newPrimary: promotion?.node,
                detectionMilliseconds: promotion.map { $0.at - trial.at },
                failoverMilliseconds: failover.flatMap { $0.ackedAt <= trial.endedAt ? $0.ackedAt - trial.at : nil },
                longestGapMilliseconds: longestGap(writes, from: trial.at, to: trial.endedAt),
                lostWrites: lost.filter(inTrial).count,
                splitBrainWrites: splitBrain.filter { inTrial($0.write) }.count,
                postgresStarts: trial.postgresStarts))
        }

        return WorkloadReport(acknowledged: writes.count, failedAttempts: history.failedAttempts, lost: lost, splitBrain: splitBrain,
                              replicasBehind: behind, unavailable: windows, trials: results, finalStateProblem: problem)
    }

    /// The longest time in [from, to] without an acknowledged write; the last write before
    /// `from` opens the first gap. `sorted`: by acknowledgement time.
    public static func longestGap(_ sorted: [WorkloadHistory.Write], from: Double, to: Double) -> Double {
        var previous = sorted.last { $0.ackedAt < from }?.ackedAt ?? from
        var longest = 0.0
        for write in sorted where write.ackedAt >= from && write.ackedAt <= to {
            longest = max(longest, write.ackedAt - previous)
            previous = write.ackedAt
        }
        return max(longest, to - previous)
    }
}

/// Median and tail of a set of measurements (nearest rank).
public struct Percentiles: Sendable, Equatable, Codable {
    public var count: Int
    public var median: Double
    public var p99: Double
    public var min: Double
    public var max: Double

    public init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        func rank(_ p: Double) -> Double {
            sorted[Swift.min(sorted.count - 1, Swift.max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))]
        }
        count = sorted.count
        median = rank(0.5)
        p99 = rank(0.99)
        min = sorted[0]
        max = sorted[sorted.count - 1]
    }
}
