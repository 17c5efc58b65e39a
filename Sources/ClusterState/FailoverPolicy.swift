/// What the leader knows about one node when it chooses a primary: the node's latest health
/// report and its static settings from the config.
public struct CandidateReport: Sendable, Equatable {
    public var node: String
    /// PostgreSQL runs and answers its health check.
    public var healthy: Bool
    /// Tag `nofailover`: never promote automatically.
    public var noFailover: Bool
    public var timeline: UInt32
    /// The last WAL position the node has (received, for a replica).
    public var walPosition: UInt64
    /// Lower is preferred (the seed's convention).
    public var priority: Int
    public var location: String

    public init(node: String, healthy: Bool, noFailover: Bool = false, timeline: UInt32, walPosition: UInt64,
                priority: Int, location: String) {
        self.node = node
        self.healthy = healthy
        self.noFailover = noFailover
        self.timeline = timeline
        self.walPosition = walPosition
        self.priority = priority
        self.location = location
    }
}

/// What a promotion of `node` at `position` throws away: every member of the same cluster, on
/// the promoted node's timeline or an older one, that reported WAL beyond it. Said loudly: those
/// writes are gone once the others follow the new primary (pg_rewind discards them). Members on
/// a newer timeline are not compared (their positions belong to another history), nor is the
/// cluster's recorded primary position (it can outlive the history it was measured on).
public func discardedWAL(promoting node: String, at position: UInt64, reports: [String: MemberReport]) -> [String: UInt64] {
    guard let promoted = reports[node] else { return [:] }
    var beyond: [String: UInt64] = [:]
    for (name, report) in reports where name != node && report.systemIdentifier == promoted.systemIdentifier
        && report.timeline <= promoted.timeline {
        let held = max(report.receivedPosition, report.replayedPosition)
        if held > position { beyond[name] = held }
    }
    return beyond
}

extension CandidateReport {
    /// The one way a member's report becomes a candidate: healthy only when its PostgreSQL runs
    /// (not stopped), passed its last check, and holds this cluster's data.
    public init(member: PrimaryDuty.Member, report: MemberReport, systemIdentifier: UInt64?) {
        self.init(node: member.name,
                  healthy: report.healthy && report.role != .stopped && report.systemIdentifier == systemIdentifier,
                  noFailover: member.noFailover, timeline: report.timeline,
                  walPosition: max(report.receivedPosition, report.replayedPosition),
                  priority: member.priority, location: member.location)
    }
}

/// Which node should be primary, and why the others may not. Pure: the leader calls it with the
/// reports it holds; tests and the simulator call it with made-up ones.
///
/// Ranking (issue 8, DESIGN §3): only healthy nodes without `nofailover`, on the newest timeline
/// any of them has, whose WAL is within `maximumLagBytes` of the last primary position the
/// cluster recorded — so a promotion never silently drops more than that. Among those: the
/// highest WAL position, then the lowest priority number, then location and name (only so that
/// the choice is deterministic).
public enum FailoverPolicy {
    public enum Verdict: Sendable, Equatable, CustomStringConvertible {
        case eligible
        case unhealthy
        case noFailover
        case olderTimeline(UInt32, newest: UInt32)
        case tooFarBehind(bytes: UInt64, limit: UInt64)

        public var description: String {
            switch self {
            case .eligible: "eligible"
            case .unhealthy: "PostgreSQL is down or fails its health check"
            case .noFailover: "tagged nofailover"
            case .olderTimeline(let timeline, let newest): "on timeline \(timeline), older than \(newest)"
            case .tooFarBehind(let bytes, let limit): "\(bytes) bytes behind the last primary position (limit \(limit))"
            }
        }
    }

    public static let defaultMaximumLagBytes: UInt64 = 1 << 20

    /// Each report with its verdict, eligible ones first in order of preference.
    public static func evaluate(_ reports: [CandidateReport], lastPrimaryPosition: UInt64,
                                maximumLagBytes: UInt64 = defaultMaximumLagBytes) -> [(report: CandidateReport, verdict: Verdict)] {
        let newestTimeline = reports.filter { $0.healthy && !$0.noFailover }.map(\.timeline).max() ?? 0
        let judged = reports.map { report -> (report: CandidateReport, verdict: Verdict) in
            if !report.healthy { return (report, .unhealthy) }
            if report.noFailover { return (report, .noFailover) }
            if report.timeline < newestTimeline { return (report, .olderTimeline(report.timeline, newest: newestTimeline)) }
            let behind = lastPrimaryPosition > report.walPosition ? lastPrimaryPosition - report.walPosition : 0
            if behind > maximumLagBytes { return (report, .tooFarBehind(bytes: behind, limit: maximumLagBytes)) }
            return (report, .eligible)
        }
        let eligible = judged.filter { $0.verdict == .eligible }.sorted { preferred($0.report, over: $1.report) }
        return eligible + judged.filter { $0.verdict != .eligible }
    }

    /// The node to promote, or nil when no node is eligible.
    public static func best(_ reports: [CandidateReport], lastPrimaryPosition: UInt64,
                            maximumLagBytes: UInt64 = defaultMaximumLagBytes) -> String? {
        guard let first = evaluate(reports, lastPrimaryPosition: lastPrimaryPosition, maximumLagBytes: maximumLagBytes).first,
              first.verdict == .eligible else { return nil }
        return first.report.node
    }

    static func preferred(_ a: CandidateReport, over b: CandidateReport) -> Bool {
        if a.walPosition != b.walPosition { return a.walPosition > b.walPosition }
        if a.priority != b.priority { return a.priority < b.priority }
        if a.location != b.location { return a.location < b.location }
        return a.node < b.node
    }
}
