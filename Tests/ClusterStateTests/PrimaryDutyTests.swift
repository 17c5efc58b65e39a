import ClusterState
import Testing

private let members = [
    PrimaryDuty.Member(name: "primary", priority: 0, location: "华东"),
    PrimaryDuty.Member(name: "secondary1", priority: 1, location: "华东"),
    PrimaryDuty.Member(name: "secondary2", priority: 2, location: "华南"),
]

private func replica(at position: UInt64, timeline: UInt32 = 1, healthy: Bool = true, system: UInt64 = 42) -> MemberReport {
    MemberReport(role: .replica, healthy: healthy, systemIdentifier: system, timeline: timeline,
                 receivedPosition: position, replayedPosition: position, streaming: true)
}

private func bootstrapped(primary: String = "primary", term: UInt64 = 1) -> ClusterState {
    var state = ClusterState()
    state.apply(.bootstrap(systemIdentifier: 42, primary: primary, unixMilliseconds: 0), term: term)
    return state
}

@Suite struct PrimaryDutyTests {
    @Test func aNewClusterIsBootstrappedOnTheMostPreferredNodeInReach() {
        #expect(PrimaryDuty.decide(me: "secondary1", term: 1, state: ClusterState(), members: members, reports: [:], reportsSettled: false) == .waitForReports)
        // Alone in reach: bootstrap here.
        #expect(PrimaryDuty.decide(me: "secondary1", term: 1, state: ClusterState(), members: members, reports: [:], reportsSettled: true) == .bootstrap)
        // The seed's primary data centre is up: it bootstraps.
        #expect(PrimaryDuty.decide(me: "secondary1", term: 1, state: ClusterState(), members: members,
                                   reports: ["primary": MemberReport(role: .stopped, healthy: false)], reportsSettled: true)
            == .handOver(to: "primary", reason: "bootstrap on the most preferred PostgreSQL node"))
        let withWitness = members + [PrimaryDuty.Member(name: "w", isWitness: true)]
        #expect(PrimaryDuty.decide(me: "w", term: 1, state: ClusterState(), members: withWitness,
                                   reports: ["secondary2": replica(at: 0)], reportsSettled: true)
            == .handOver(to: "secondary2", reason: "bootstrap on the most preferred PostgreSQL node"))
        if case .noCandidate = PrimaryDuty.decide(me: "w", term: 1, state: ClusterState(), members: withWitness, reports: [:], reportsSettled: true) {} else {
            Issue.record("a witness with no PostgreSQL node in reach must not bootstrap")
        }
    }

    @Test func thePrimaryOfThisTermHasNothingToDoOthersWaitThenDecide() {
        let state = bootstrapped(term: 3)
        #expect(PrimaryDuty.decide(me: "primary", term: 3, state: state, members: members, reports: [:], reportsSettled: false) == .none)
        // Re-elected in a later term: a new epoch first, even for the same node.
        #expect(PrimaryDuty.decide(me: "primary", term: 4, state: state, members: members, reports: [:], reportsSettled: false) == .waitForReports)
        let reports = ["primary": replica(at: 100), "secondary1": replica(at: 100)]
        if case .promoteSelf = PrimaryDuty.decide(me: "primary", term: 4, state: state, members: members, reports: reports, reportsSettled: true) {} else {
            Issue.record("the re-elected primary should promote itself in a new epoch")
        }
    }

    /// The history says what happened: a promotion after the primary was lost reads as a
    /// failover, whichever path led to it (an election, then a hand-over to the best candidate).
    @Test func aPromotionAfterThePrimaryWasLostSaysSo() {
        let state = bootstrapped()
        let reports = ["secondary1": replica(at: 500), "secondary2": replica(at: 400)]
        #expect(PrimaryDuty.decide(me: "secondary1", term: 3, state: state, members: members, reports: reports, reportsSettled: true,
                                   preferred: "secondary1", silence: ["primary": 1_234])
            == .promoteSelf(reason: "failover: primary primary lost (no heartbeat for 1234 ms); secondary1 is the best candidate, term 3, epoch 2"))
        #expect(PrimaryDuty.decide(me: "secondary1", term: 3, state: state, members: members, reports: reports, reportsSettled: true)
            == .promoteSelf(reason: "failover: primary primary lost (not heard from); secondary1 is the best candidate, term 3, epoch 2"))
        let down = reports.merging(["primary": MemberReport(role: .stopped, healthy: false, systemIdentifier: 42)]) { $1 }
        #expect(PrimaryDuty.decide(me: "secondary1", term: 3, state: state, members: members, reports: down, reportsSettled: true)
            == .promoteSelf(reason: "failover: primary primary lost (PostgreSQL is down or fails its health check); secondary1 is the best candidate, term 3, epoch 2"))
        // A hand-over while the primary could still serve stays a hand-over.
        let alive = reports.merging(["primary": replica(at: 500)]) { $1 }
        #expect(PrimaryDuty.decide(me: "secondary1", term: 3, state: state, members: members, reports: alive, reportsSettled: true,
                                   preferred: "secondary1", handedOverBy: "secondary2")
            == .promoteSelf(reason: "leadership handed over to secondary1 by secondary2 in term 3 (previous primary primary, epoch 1)"))
    }

    @Test func theBestCandidateWinsNotTheFirstLeader() {
        let state = bootstrapped()
        // secondary2 leads after the primary died, but secondary1 has more WAL: hand over.
        let reports = ["secondary1": replica(at: 500), "secondary2": replica(at: 400)]
        #expect(PrimaryDuty.decide(me: "secondary2", term: 2, state: state, members: members, reports: reports, reportsSettled: true)
            == .handOver(to: "secondary1", reason: "secondary1 is the best candidate"))
        if case .promoteSelf = PrimaryDuty.decide(me: "secondary1", term: 3, state: state, members: members, reports: reports, reportsSettled: true) {} else {
            Issue.record("the best candidate should promote itself")
        }
        // Equal WAL: priority decides.
        let tied = ["secondary1": replica(at: 500), "secondary2": replica(at: 500)]
        #expect(PrimaryDuty.decide(me: "secondary2", term: 2, state: state, members: members, reports: tied, reportsSettled: true)
            == .handOver(to: "secondary1", reason: "secondary1 is the best candidate"))
        // A leader chosen by a planned hand-over keeps the place when it is eligible.
        if case .promoteSelf = PrimaryDuty.decide(me: "secondary2", term: 2, state: state, members: members, reports: tied,
                                                  reportsSettled: true, preferred: "secondary2") {} else {
            Issue.record("the preferred node should promote itself")
        }
    }

    /// After a whole-cluster crash the old primary is still in crash recovery when the first
    /// leader decides; its WAL on disk says it holds commits no replica received (issue 17).
    @Test func aMemberThatMayHoldMoreWALIsWaitedForBoundedly() {
        let state = bootstrapped()
        let wait = (waited: UInt64(0), limit: UInt64(5_000))
        let recovering = MemberReport(role: .stopped, healthy: false, systemIdentifier: 42, timeline: 1, receivedPosition: 600,
                                      lastError: "starting (crash recovery or replay of local WAL)")
        let replicas = ["secondary1": replica(at: 500), "secondary2": replica(at: 400)]
        let reports = replicas.merging(["primary": recovering]) { $1 }
        func decide(_ reports: [String: MemberReport], me: String = "secondary2", reachable: Set<String> = [],
                    waited: UInt64 = 0, preferred: String? = nil) -> PrimaryDuty {
            PrimaryDuty.decide(me: me, term: 2, state: state, members: members, reports: reports, reportsSettled: true,
                               preferred: preferred, reachable: reachable, reportWait: (waited, wait.limit))
        }
        // More WAL on disk than any replica: wait, and say for what.
        guard case .waitForMembers(let why) = decide(reports) else { Issue.record("the recovering primary must be waited for"); return }
        #expect(why == "primary holds WAL to 0/258 on timeline 1, ahead of secondary1 at 0/1F4, but its PostgreSQL cannot serve yet: starting (crash recovery or replay of local WAL) (waiting up to 5000 ms)")
        // As much WAL and preferred (priority 0): still worth the wait.
        let tied = reports.merging(["primary": MemberReport(role: .stopped, healthy: false, systemIdentifier: 42, timeline: 1, receivedPosition: 500)]) { $1 }
        guard case .waitForMembers(let tiedWhy) = decide(tied) else { Issue.record("a preferred node with as much WAL must be waited for"); return }
        #expect(tiedWhy.hasPrefix("primary holds WAL to 0/1F4 on timeline 1, as much as secondary1 and preferred to it, but"), "\(tiedWhy)")
        // Nobody can serve yet: each that would be chosen alone is named.
        let allDown = ["primary": recovering, "secondary1": replica(at: 500, healthy: false)]
        guard case .waitForMembers(let both) = decide(allDown) else { Issue.record("members with WAL must be waited for"); return }
        #expect(both.hasPrefix("primary holds WAL to 0/258 on timeline 1, but its PostgreSQL cannot serve yet:"))
        #expect(both.contains("; secondary1 holds WAL to 0/1F4"))
        // Once it serves, it is the best candidate.
        #expect(decide(reports.merging(["primary": replica(at: 600)]) { $1 }) == .handOver(to: "primary", reason: "primary is the best candidate"))
        // The wait is bounded: then the best that can serve, and the promotion says what it discards.
        #expect(decide(reports, waited: 5_000) == .handOver(to: "secondary1", reason: "secondary1 is the best candidate"))
        // Less WAL, another cluster's data, no data at all, or nofailover: no reason to wait.
        let behind = replicas.merging(["primary": MemberReport(role: .stopped, healthy: false, systemIdentifier: 42, timeline: 1, receivedPosition: 450)]) { $1 }
        #expect(decide(behind) == .handOver(to: "secondary1", reason: "secondary1 is the best candidate"))
        let foreign = replicas.merging(["primary": MemberReport(role: .stopped, healthy: false, systemIdentifier: 7, receivedPosition: 900)]) { $1 }
        #expect(decide(foreign) == .handOver(to: "secondary1", reason: "secondary1 is the best candidate"))
        let empty = replicas.merging(["primary": MemberReport(role: .stopped, healthy: false)]) { $1 }
        #expect(decide(empty) == .handOver(to: "secondary1", reason: "secondary1 is the best candidate"))
        let tagged = members.map { PrimaryDuty.Member(name: $0.name, priority: $0.priority, location: $0.location, noFailover: $0.name == "primary") }
        #expect(PrimaryDuty.decide(me: "secondary2", term: 2, state: state, members: tagged, reports: reports, reportsSettled: true,
                                   reportWait: wait) == .handOver(to: "secondary1", reason: "secondary1 is the best candidate"))
        // The cluster's data but an unreadable WAL, or reachable without a report: it may hold more.
        let unknown = replicas.merging(["primary": MemberReport(role: .stopped, healthy: false, systemIdentifier: 42)]) { $1 }
        guard case .waitForMembers(let unread) = decide(unknown) else { Issue.record("an unknown WAL end must be waited for"); return }
        #expect(unread.hasPrefix("primary has not said how far its WAL reaches (PostgreSQL is not running)"))
        guard case .waitForMembers(let silent) = decide(replicas, reachable: ["primary"]) else { Issue.record("a silent reachable member must be waited for"); return }
        #expect(silent.hasPrefix("primary is reachable but has not reported its WAL position"))
        #expect(decide(replicas) == .handOver(to: "secondary1", reason: "secondary1 is the best candidate"), "an unreachable member is not waited for")
        // The primary re-elected (a blip) keeps its place: waiting would change nothing.
        let blip = ["primary": replica(at: 600), "secondary1": MemberReport(role: .stopped, healthy: false, systemIdentifier: 42)]
        #expect(PrimaryDuty.decide(me: "primary", term: 4, state: state, members: members, reports: blip, reportsSettled: true,
                                   reachable: ["secondary2"], reportWait: wait)
            == .promoteSelf(reason: "leader re-elected in term 4 (previous primary primary, epoch 1)"))
        // A leader that was handed the choice does not wait again.
        if case .promoteSelf = decide(reports, me: "secondary1", preferred: "secondary1") {} else { Issue.record("a hand-over target must not wait again") }
    }

    @Test func unhealthyForeignAndLaggingNodesAreNeverPromoted() {
        let state = bootstrapped()
        let reports = [
            "secondary1": replica(at: 900, healthy: false),
            "secondary2": replica(at: 800, system: 7),
        ]
        guard case .noCandidate(let why) = PrimaryDuty.decide(me: "secondary2", term: 2, state: state, members: members,
                                                                reports: reports, reportsSettled: true) else {
            Issue.record("no node is eligible here")
            return
        }
        #expect(why.contains("secondary1: PostgreSQL is down") && why.contains("secondary2: PostgreSQL is down"))
        var recorded = state
        recorded.apply(.recordPrimaryPosition(epoch: 1, walPosition: 10 << 20))
        guard case .noCandidate(let lag) = PrimaryDuty.decide(me: "secondary2", term: 2, state: recorded, members: members,
                                                                reports: ["secondary2": replica(at: 1 << 20)], reportsSettled: true) else {
            Issue.record("a replica 9 MiB behind must not be promoted")
            return
        }
        #expect(lag.contains("bytes behind"))
        let tagged = members.map { PrimaryDuty.Member(name: $0.name, priority: $0.priority, noFailover: $0.name == "secondary2") }
        if case .noCandidate = PrimaryDuty.decide(me: "secondary2", term: 2, state: state, members: tagged,
                                                  reports: ["secondary2": replica(at: 0)], reportsSettled: true) {} else {
            Issue.record("nofailover must hold")
        }
    }

    @Test func reportsRoundTripAndBadBytesAreRefused() throws {
        var report = MemberReport(role: .replica, healthy: true, failedChecks: 2, systemIdentifier: 99, timeline: 3,
                                  receivedPosition: 1 << 33, replayedPosition: 1 << 32, streaming: true, lagMilliseconds: 12,
                                  epoch: 4, lastError: "connection refused")
        report.upstreamPosition = 1 << 34
        #expect(try MemberReportCodec.decode(MemberReportCodec.encode(report)) == report)
        #expect(try MemberReportCodec.decode(MemberReportCodec.encode(report) + [1, 2, 3]) == report, "trailing fields of a newer agent are ignored")
        #expect(throws: CommandCodec.DecodingError.self) { try MemberReportCodec.decode([1, 9]) }
        #expect(throws: CommandCodec.DecodingError.self) { try MemberReportCodec.decode([]) }
        #expect(throws: CommandCodec.DecodingError.self) { try MemberReportCodec.decode(Array(MemberReportCodec.encode(report).prefix(20))) }
    }

    @Test func primaryTermFollowsTheEntryThatMadeThePrimary() {
        var state = bootstrapped(term: 2)
        #expect(state.primaryTerm == 2)
        state.apply(.promote(node: "secondary1", epoch: 2, timeline: 2, walPosition: 5, reason: "test", unixMilliseconds: 0), term: 7)
        #expect(state.primaryTerm == 7 && state.primary == "secondary1")
        // A refused promotion changes nothing.
        state.apply(.promote(node: "primary", epoch: 2, timeline: 2, walPosition: 5, reason: "stale", unixMilliseconds: 0), term: 9)
        #expect(state.primaryTerm == 7 && state.primary == "secondary1")
    }
}

@Suite struct PlannedPrimaryTests {
    @Test func anOperatorsPlanWinsWhileItsEpochLastsAndForceOverridesTheGuards() throws {
        var state = bootstrapped()
        state.apply(.planPrimary(node: "secondary2", reason: "switchover by ops: upgrade", epoch: 1, force: false))
        #expect(state.plannedPrimary == ClusterState.PlannedPrimary(node: "secondary2", reason: "switchover by ops: upgrade", epoch: 1, force: false))
        let tied = ["secondary1": replica(at: 500), "secondary2": replica(at: 500)]
        // The priority would pick secondary1; the plan picks secondary2.
        #expect(PrimaryDuty.decide(me: "secondary1", term: 2, state: state, members: members, reports: tied, reportsSettled: true)
            == .handOver(to: "secondary2", reason: "switchover by ops: upgrade"))
        #expect(PrimaryDuty.decide(me: "secondary2", term: 3, state: state, members: members, reports: tied, reportsSettled: true)
            == .promoteSelf(reason: "switchover by ops: upgrade"))
        // Far behind: refused without force, promoted with it.
        var recorded = state
        recorded.apply(.recordPrimaryPosition(epoch: 1, walPosition: 64 << 20))
        let behind = ["secondary1": replica(at: 64 << 20), "secondary2": replica(at: 1)]
        #expect(PrimaryDuty.decide(me: "secondary2", term: 3, state: recorded, members: members, reports: behind, reportsSettled: true)
            == .handOver(to: "secondary1", reason: "secondary1 is the best candidate"))
        recorded.apply(.planPrimary(node: "secondary2", reason: "forced", epoch: 1, force: true))
        #expect(PrimaryDuty.decide(me: "secondary2", term: 3, state: recorded, members: members, reports: behind, reportsSettled: true)
            == .promoteSelf(reason: "forced"))
        // A promotion ends the plan; a plan for an old epoch is refused.
        state.apply(.promote(node: "secondary2", epoch: 2, timeline: 1, walPosition: 500, reason: "switchover", unixMilliseconds: 0), term: 3)
        #expect(state.plannedPrimary == nil)
        #expect(state.apply(.planPrimary(node: "primary", reason: "late", epoch: 1, force: false)) == .staleEpoch(1, current: 2))
        var empty = ClusterState()
        #expect(empty.apply(.planPrimary(node: "primary", reason: "x", epoch: 0, force: false)) == .notBootstrapped)
        // Cancel.
        state.apply(.planPrimary(node: "primary", reason: "x", epoch: 2, force: false))
        state.apply(.planPrimary(node: nil, reason: "cancelled", epoch: 2, force: false))
        #expect(state.plannedPrimary == nil)
        let command = ClusterState.Command.planPrimary(node: "secondary1", reason: "原因", epoch: 9, force: true)
        #expect(try CommandCodec.decode(CommandCodec.encode(command)) == command)
        let cancel = ClusterState.Command.planPrimary(node: nil, reason: "", epoch: 9, force: false)
        #expect(try CommandCodec.decode(CommandCodec.encode(cancel)) == cancel)
    }
}

@Suite struct DiscardedWALTests {
    /// A promotion that leaves WAL behind on another member of the same history names it
    /// (issue 17: say it loudly); members on a newer timeline or another cluster are not compared.
    @Test func everyPositionBeyondThePromotionIsNamed() {
        let reports = ["secondary1": replica(at: 500), "secondary2": replica(at: 400), "primary": MemberReport(role: .stopped, healthy: false)]
        #expect(discardedWAL(promoting: "secondary1", at: 500, reports: reports).isEmpty)
        #expect(discardedWAL(promoting: "secondary2", at: 400, reports: reports) == ["secondary1": 500])
        let mixed = ["secondary1": replica(at: 500, timeline: 3), "secondary2": replica(at: 400, timeline: 2),
                     "primary": replica(at: 900, system: 7)]
        #expect(discardedWAL(promoting: "secondary2", at: 400, reports: mixed).isEmpty)
    }
}

@Suite struct ReportSettlingTests {
    private let everyone: Set<String> = ["primary", "secondary1", "secondary2"]
    private let replicas: [String: MemberReport] = ["secondary1": replica(at: 100), "secondary2": replica(at: 90)]
    private let primaryAlive = MemberReport(role: .primary, healthy: true, systemIdentifier: 42, timeline: 1, receivedPosition: 100)

    private func settling(fresh: [String: MemberReport], reachable: Set<String>, handedOver: Bool = false, ticks: Int64 = 0,
                          members: [PrimaryDuty.Member] = members) -> ReportSettling {
        ReportSettling(me: "secondary1", members: members, fresh: fresh, reachable: reachable, handedOver: handedOver, ticksSinceElection: ticks)
    }

    @Test func afterAnElectionWithEveryReachableReportItDecidesAtOnce() {
        #expect(settling(fresh: replicas, reachable: ["secondary1", "secondary2"]).settled)
    }

    @Test func aReachableMemberWithoutAReportIsWaitedForThreeHeartbeats() {
        #expect(!settling(fresh: ["secondary1": replica(at: 100)], reachable: everyone, ticks: 2).settled)
        #expect(settling(fresh: ["secondary1": replica(at: 100)], reachable: everyone, ticks: 3).settled)
    }

    @Test func aHandOverWaitsThreeHeartbeatsThoughEveryReportIsHere() {
        let stopped = replicas.merging(["primary": MemberReport(role: .stopped, healthy: false)]) { $1 }
        #expect(!settling(fresh: stopped, reachable: everyone, handedOver: true, ticks: 2).settled)
        #expect(settling(fresh: stopped, reachable: everyone, handedOver: true, ticks: 3).settled)
    }

    @Test func anotherReachablePrimaryIsWaitedOutThreeHeartbeats() {
        let withPrimary = replicas.merging(["primary": primaryAlive]) { $1 }
        #expect(!settling(fresh: withPrimary, reachable: everyone, ticks: 2).settled)
        #expect(settling(fresh: withPrimary, reachable: everyone, ticks: 3).settled)
    }

    @Test func anUnreachableMembersReportIsDroppedAndWaitsForNothing() {
        let withDeadPrimary = replicas.merging(["primary": primaryAlive]) { $1 }
        let result = settling(fresh: withDeadPrimary, reachable: ["secondary1", "secondary2"])
        #expect(result.reports.keys.sorted() == ["secondary1", "secondary2"])
        #expect(result.settled)
        // Its own report counts even when it is not in the reachable set.
        #expect(settling(fresh: replicas, reachable: ["secondary2"]).reports.keys.sorted() == ["secondary1", "secondary2"])
    }

    @Test func witnessesSendNoReportAndAreNotWaitedFor() {
        let withWitness = members + [PrimaryDuty.Member(name: "w", isWitness: true)]
        #expect(settling(fresh: replicas, reachable: ["secondary1", "secondary2", "w"], members: withWitness).settled)
    }
}
