/// What the Raft leader must do about the PostgreSQL primary, decided from the replicated state,
/// the health reports it holds and its own node. Pure: the agent calls it on every tick while it
/// leads with a lease, the tests call it with made-up inputs.
///
/// The rule (DESIGN §3): the primary runs where the leader is, and only after the leader has
/// committed an entry in its own term naming it in a new epoch. A leader whose node is not the
/// best candidate hands leadership to the one that is, instead of promoting itself.
public enum PrimaryDuty: Sendable, Equatable {
    /// Nothing to do: this node is the primary of the current epoch, made in this term.
    case none
    /// A new cluster: this node runs initdb and then proposes the bootstrap.
    case bootstrap
    /// Commit `promote(self, epoch + 1)`; promote PostgreSQL once it is applied.
    case promoteSelf(reason: String)
    /// Another node is the better primary: transfer leadership to it.
    case handOver(to: String, reason: String)
    /// Reports are still coming in after the election: decide a little later.
    case waitForReports
    /// A member that may hold more WAL than the best candidate cannot serve yet (its PostgreSQL
    /// is stopped or in crash recovery) or has not said how much it holds: wait for it, at most
    /// `failover.report_wait_ms` (what is waited for, one clause per member).
    case waitForMembers(String)
    /// No node may be promoted now (the reasons, one per node).
    case noCandidate(String)

    /// What a leader with this duty tells operators it is waiting for (`primary_pending` in
    /// the leader view); nil when nothing keeps a primary from its place.
    public var pendingDescription: String? {
        switch self {
        case .waitForReports: "waiting for the members' reports after the election"
        case .waitForMembers(let why): "waiting for \(why)"
        case .noCandidate(let why): "no node can be promoted: \(why)"
        case .none, .bootstrap, .promoteSelf, .handOver: nil
        }
    }

    public struct Member: Sendable, Equatable {
        public var name: String
        public var isWitness: Bool
        public var priority: Int
        public var location: String
        public var noFailover: Bool

        public init(name: String, isWitness: Bool = false, priority: Int = 0, location: String = "", noFailover: Bool = false) {
            self.name = name
            self.isWitness = isWitness
            self.priority = priority
            self.location = location
            self.noFailover = noFailover
        }
    }

    /// - Parameters:
    ///   - me: this (leading) node.
    ///   - term: the leader's current term.
    ///   - members: every member of the cluster (from the config).
    ///   - reports: the fresh reports the leader holds, this node's own included.
    ///   - reportsSettled: true once every reachable member had the chance to report since the
    ///     election (the agent waits a few heartbeats).
    ///   - preferred: a node to prefer when it is eligible (the target of a planned leadership
    ///     hand-over). An operator's plan in `state.plannedPrimary` comes first.
    ///   - handedOverBy: the leader that handed its leadership to this node, if it did.
    ///   - silence: milliseconds since this node last heard from each member (for the history's
    ///     reason when the primary was lost).
    ///   - reachable: the members this node hears from (a reachable member without a report
    ///     has not said how much WAL it holds).
    ///   - reportWait: how long this leader has waited for such members, and the limit
    ///     (`failover.report_wait_ms`); no wait once it is reached.
    public static func decide(me: String, term: UInt64, state: ClusterState, members: [Member],
                              reports: [String: MemberReport], reportsSettled: Bool,
                              maximumLagBytes: UInt64 = FailoverPolicy.defaultMaximumLagBytes,
                              preferred: String? = nil, handedOverBy: String? = nil, silence: [String: UInt64] = [:],
                              reachable: Set<String> = [], reportWait: (waited: UInt64, limit: UInt64) = (0, 0)) -> PrimaryDuty {
        let mine = members.first { $0.name == me }
        guard state.systemIdentifier != nil else {
            // A new cluster: the most preferred PostgreSQL node in reach initialises it (the
            // seed's primary data centre, when it is up).
            guard reportsSettled else { return .waitForReports }
            let hosts = members.filter { !$0.isWitness && ($0.name == me || reports[$0.name] != nil) }
                .sorted { ($0.priority, $0.name) < ($1.priority, $1.name) }
            guard let first = hosts.first else { return .noCandidate("no PostgreSQL node is reachable to bootstrap the cluster") }
            if first.name == me { return .bootstrap }
            return .handOver(to: first.name, reason: "bootstrap on the most preferred PostgreSQL node")
        }
        if state.primary == me, state.primaryTerm == term { return .none }
        guard reportsSettled else { return .waitForReports }
        let candidates = members.compactMap { member -> CandidateReport? in
            guard !member.isWitness, let report = reports[member.name] else { return nil }
            return CandidateReport(member: member, report: report, systemIdentifier: state.systemIdentifier)
        }
        let judged = FailoverPolicy.evaluate(candidates, lastPrimaryPosition: state.lastPrimaryPosition,
                                             maximumLagBytes: maximumLagBytes)
        let eligible = judged.filter { $0.verdict == .eligible }.map(\.report.node)
        let previous = state.primary.map { " (previous primary \($0), epoch \(state.epoch))" } ?? ""
        // When the primary of the last epoch is another node that cannot serve, this is a
        // failover, whatever path led here (an election, then a hand-over to the best candidate).
        let failover: String? = state.primary.flatMap { primary in
            guard primary != me else { return nil }
            if let judgement = judged.first(where: { $0.report.node == primary }) {
                return judgement.verdict == .eligible ? nil : "failover: primary \(primary) lost (\(judgement.verdict))"
            }
            return "failover: primary \(primary) lost (" + (silence[primary].map { "no heartbeat for \($0) ms" } ?? "not heard from") + ")"
        }
        let promotedAfterLoss = failover.map { "\($0); \(me) is the best candidate, term \(term), epoch \(state.epoch + 1)" }
        if let plan = state.plannedPrimary, plan.epoch == state.epoch {
            // Forced: anything that runs this cluster's PostgreSQL, eligible or not.
            let forcedOK = plan.force && candidates.contains { $0.node == plan.node && $0.healthy }
            if eligible.contains(plan.node) || forcedOK {
                return plan.node == me ? .promoteSelf(reason: plan.reason) : .handOver(to: plan.node, reason: plan.reason)
            }
        }
        if let preferred, eligible.contains(preferred) {
            return preferred == me
                ? .promoteSelf(reason: promotedAfterLoss
                    ?? "leadership handed over to \(me)\(handedOverBy.map { " by \($0)" } ?? "") in term \(term)\(previous)")
                : .handOver(to: preferred, reason: "leadership handed over")
        }
        // The current primary keeps its place if it is eligible: a new election alone (a blip, a
        // hand-over of leadership for another reason) should not move the primary elsewhere.
        if let current = state.primary, eligible.contains(current), current == me {
            return .promoteSelf(reason: "leader re-elected in term \(term)\(previous)")
        }
        // Before choosing by rank: a member that would come first if it could serve (more WAL,
        // or as much and preferred), or that has not said how much it holds, is waited for — a
        // crashed primary in crash recovery holds commits no replica received (issue 17). A
        // leader that was handed the choice (`preferred`) does not wait again.
        if reportWait.waited < reportWait.limit {
            let awaited = awaitedMembers(state: state, members: members, reports: reports, candidates: candidates,
                                         serving: judged.first { $0.verdict == .eligible }?.report,
                                         reachable: reachable, maximumLagBytes: maximumLagBytes)
            if !awaited.isEmpty {
                return .waitForMembers(awaited.joined(separator: "; ") + " (waiting up to \(reportWait.limit) ms)")
            }
        }
        guard let best = eligible.first else {
            let why = judged.map { "\($0.report.node): \($0.verdict)" }.joined(separator: "; ")
            return .noCandidate(why.isEmpty ? "no PostgreSQL node has reported" : why)
        }
        if best == me { return .promoteSelf(reason: promotedAfterLoss ?? "best candidate after leader election in term \(term)\(previous)") }
        return .handOver(to: best, reason: "\(best) is the best candidate")
    }

    /// The members worth waiting for, one clause each: those with this cluster's data that
    /// would be chosen if their PostgreSQL could serve, those that cannot say how far their
    /// WAL reaches, and reachable ones that sent no report. Never a `nofailover` member:
    /// waiting for it changes no choice.
    static func awaitedMembers(state: ClusterState, members: [Member], reports: [String: MemberReport],
                               candidates: [CandidateReport], serving: CandidateReport?, reachable: Set<String>,
                               maximumLagBytes: UInt64) -> [String] {
        var awaited: [String] = []
        for member in members where !member.isWitness && !member.noFailover {
            guard let report = reports[member.name] else {
                if reachable.contains(member.name) { awaited.append("\(member.name) is reachable but has not reported its WAL position") }
                continue
            }
            guard let index = candidates.firstIndex(where: { $0.node == member.name }), !candidates[index].healthy,
                  report.systemIdentifier == state.systemIdentifier else { continue }
            let why = report.lastError.isEmpty ? "PostgreSQL is not running" : report.lastError
            if candidates[index].walPosition == 0 {
                awaited.append("\(member.name) has not said how far its WAL reaches (\(why))")
                continue
            }
            var asIfServing = candidates
            asIfServing[index].healthy = true
            if FailoverPolicy.best(asIfServing, lastPrimaryPosition: state.lastPrimaryPosition, maximumLagBytes: maximumLagBytes) == member.name {
                let held = candidates[index].walPosition
                let rank = serving.map { other in
                    held > other.walPosition ? ", ahead of \(other.node) at \(lsnText(other.walPosition))"
                                             : ", as much as \(other.node) and preferred to it"
                } ?? ""
                awaited.append("\(member.name) holds WAL to \(lsnText(candidates[index].walPosition)) on timeline \(report.timeline)\(rank), but its PostgreSQL cannot serve yet: \(why)")
            }
        }
        return awaited
    }
}
