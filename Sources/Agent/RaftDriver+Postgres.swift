import ClusterConfig
import ClusterState
import Foundation
import Logging
import RaftCore

/// The PostgreSQL half of the Raft task: applying cluster commands, the leader's duties (choose
/// and promote the primary), the fence, and what the PostgreSQL thread is told to do.
extension RaftDriver {
    /// This node is named primary by an entry of its current term, while it leads.
    var isPrimaryOfCurrentTerm: Bool {
        node.role == .leader && clusterState.primary == local.name && clusterState.primaryTerm == node.term
    }

    var leaseExpiry: ContinuousClock.Instant? {
        node.leaderLeaseRemainingTicks.map { started + tickInterval * Int(ticksDone + Int64($0)) }
    }

    func apply(_ entry: Entry) {
        guard case .application(let bytes) = entry.payload else { return }
        let command: ClusterState.Command
        do {
            command = try CommandCodec.decode(bytes)
        } catch {
            // Every agent skips the same entry, so they stay equal; this one cannot read it.
            logger.error("cannot read a cluster command; upgrade this agent", metadata: ["index": "\(entry.index)", "error": "\(error)"])
            return
        }
        if let rejection = clusterState.apply(command, term: entry.term) {
            logger.info("cluster command refused", metadata: ["index": "\(entry.index)", "reason": "\(rejection)"])
            return
        }
        let level: Logger.Level = entry.index > committedAtStart ? .notice : .debug
        switch command {
        case .bootstrap(let identifier, let primary, _, _):
            logger.log(level: level, "cluster bootstrapped", metadata: ["primary": "\(primary)", "system_identifier": "\(identifier)"])
        case .promote(let primary, let epoch, _, _, let reason, _):
            logger.log(level: level, "primary elected", metadata: ["primary": "\(primary)", "epoch": "\(epoch)", "reason": "\(reason)"])
        case .recordPrimaryPosition:
            break
        case .planPrimary(let target, let reason, _, _):
            if let target { logger.log(level: level, "primary move planned", metadata: ["to": "\(target)", "reason": "\(reason)"]) }
        }
    }

    /// Renews the fence keeper's deadline while this node may write, and ends writes the moment
    /// it may not: a freeze when the lease may come back, a stop when it cannot (`FenceOrder`).
    func enforceFence() {
        let expiry = leaseExpiry
        let bootstrapping = mayBootstrap && node.role == .leader && clusterState.systemIdentifier == nil
        let mayWrite = isPrimaryOfCurrentTerm || bootstrapping
        let leaseHeld = expiry.map { ContinuousClock.now < $0 } == true
        defer { wasWritable = mayWrite && leaseHeld }
        guard let permission = postgres?.permission else { return }
        let grant = WritePermission.Grant(term: node.term, epoch: clusterState.epoch)
        let lapsed = permission.lapsedGrant
        let order = FenceOrder.decide(mayWrite: mayWrite, leaseHeld: leaseHeld, leaseForfeited: node.leaseForfeited,
                                      leaseMoved: expiry != renewedExpiry, keeperHolds: wasWritable || renewedExpiry != nil,
                                      frozen: lapsed != nil, frozenInAnotherGrant: lapsed.map { $0 != grant } ?? false)
        switch order {
        case .none:
            break
        case .renew(let continuing):
            guard let expiry else { return }
            if continuing { logger.notice("lease regained: PostgreSQL continues") }
            permission.allow(until: expiry, grant: grant)
            renewedExpiry = expiry
        case .freeze:
            logger.warning("lease lapsed: PostgreSQL is frozen until this leader regains it (stopped if it does not soon)")
            permission.lapse()
            renewedExpiry = nil
        case .stop(let frozen):
            logger.warning(frozen ? "the lapsed lease cannot come back (leadership lost or handed over, or a later term or epoch): stopping the frozen PostgreSQL"
                                  : "lease handed over or leadership lost: PostgreSQL stops accepting writes now")
            permission.stop()
            renewedExpiry = nil
        }
    }

    func intent() -> PostgresIntent {
        // A rejoining node only once it is a member again (its log then reaches past the
        // shrink): before that, the history it replays names primaries of long ago.
        if !caughtUp, node.leader != nil, node.appliedIndex >= node.commitIndex, node.configuration.contains(node.id),
           node.role != .leader || node.term(at: node.commitIndex) == node.term {
            caughtUp = true
        }
        return PostgresIntent(systemIdentifier: clusterState.systemIdentifier, primary: clusterState.primary, epoch: clusterState.epoch, term: node.term,
                       promotion: clusterState.history.last { $0.epoch == clusterState.epoch }.map { .init(timeline: $0.timeline, walPosition: $0.walPosition) },
                       mayBootstrap: mayBootstrap && node.role == .leader && clusterState.systemIdentifier == nil,
                       writableUntil: wasWritable ? leaseExpiry : nil, holdStopped: move?.holdsPostgresStopped ?? false,
                              stateIsCurrent: caughtUp)
    }

    var freshReports: [String: MemberReport] {
        let now = ContinuousClock.now
        let freshness = Duration.milliseconds(config.timing.electionTimeoutMilliseconds)
        var fresh: [String: MemberReport] = [:]
        for (name, entry) in reports where name == local.name || now - entry.at < freshness {
            fresh[name] = entry.report
        }
        return fresh
    }

    /// The leader's part: bootstrap, promotion of the best candidate (itself, or a hand-over to
    /// it), and the seed's trigger (hand over when its own PostgreSQL cannot be restarted).
    func performLeaderDuties() {
        // A move ends (and answers) when this node stops leading, so it goes first.
        if move != nil { advanceMove() }
        if forced != nil { advanceForcedRecovery() }
        restoreMembership()
        guard node.role == .leader else {
            mayBootstrap = false
            return
        }
        guard config.nodes.contains(where: { !$0.isWitness }) else { return }
        if let pending = pendingProposal {
            guard node.appliedIndex < pending.index, ticksDone <= pending.deadline else {
                pendingProposal = nil
                return
            }
            return
        }
        if move != nil {
            // A move in its early phases decides for itself; only a move to this node lets the
            // usual duty (promote the planned node) run.
            guard let move, move.phase == .transferring, move.target == local.name else { return }
        }
        guard node.hasLeaderLease, node.term(at: node.commitIndex) == node.term, node.appliedIndex >= node.commitIndex,
              node.transferTarget == nil, handOvers.isEmpty else { return }
        let fresh = freshReports
        let members = config.nodes.filter { node.configuration.voters.contains($0.id) }.map(dutyMember)
        if let start = reportWaitStart, start.term != node.term { reportWaitStart = nil }
        let waited = reportWaitStart.map { UInt64(max(0, ticksDone - $0.tick)) * UInt64(config.timing.heartbeatMilliseconds) } ?? 0
        let reachable = Set(reachableVoters().map(name(of:))).union([local.name])
        let settling = ReportSettling(me: local.name, members: members, fresh: fresh, reachable: reachable,
                                      handedOver: transferredBy != nil, ticksSinceElection: ticksDone - leaderSinceTick)
        let duty = PrimaryDuty.decide(
            me: local.name, term: node.term, state: clusterState, members: members, reports: settling.reports,
            reportsSettled: settling.settled, maximumLagBytes: config.postgres.maximumLagOnFailoverBytes,
            preferred: transferredBy != nil ? local.name : nil, handedOverBy: transferredBy.map(name(of:)), silence: silenceByName(),
            reachable: reachable,
            reportWait: (waited, UInt64(config.failover.reportWaitMilliseconds)))
        switch duty {
        case .waitForMembers: if reportWaitStart == nil { reportWaitStart = (node.term, ticksDone) }
        case .none: reportWaitStart = nil
        default: break
        }
        if duty != lastDuty || (ticksDone - lastDutyLog >= 50 && duty != .none && duty != .waitForReports) {
            switch duty {
            case .none, .waitForReports: break
            case .noCandidate(let why): logger.warning("no node can be promoted now", metadata: ["reasons": "\(why)"])
            case .waitForMembers(let why): logger.notice("waiting before choosing a primary", metadata: ["for": "\(why)"])
            default: logger.notice("primary duty", metadata: ["duty": "\(duty)"])
            }
            lastDuty = duty
            lastDutyLog = ticksDone
        }
        let now = UInt64(max(0, Date().timeIntervalSince1970 * 1_000))
        switch duty {
        case .none:
            mayBootstrap = false
            if localStatus.givenUp {
                handOverFromFailingPrimary(fresh)
            } else if let mine = fresh[local.name], mine.role == .primary, mine.receivedPosition > clusterState.lastPrimaryPosition,
                      ticksDone - lastPositionRecordTick >= 10 {
                // The lag guard's reference, about once a second.
                lastPositionRecordTick = ticksDone
                propose(.recordPrimaryPosition(epoch: clusterState.epoch, walPosition: mine.receivedPosition))
            }
        case .bootstrap:
            mayBootstrap = true
            if let mine = fresh[local.name], mine.role == .primary, mine.systemIdentifier != 0 {
                propose(.bootstrap(systemIdentifier: mine.systemIdentifier, primary: local.name, unixMilliseconds: now,
                                   timeline: max(1, mine.timeline)))
            }
        case .promoteSelf(var reason):
            let mine = fresh[local.name]
            let position = max(mine?.receivedPosition ?? 0, mine?.replayedPosition ?? 0)
            let discarded = discardedWAL(promoting: local.name, at: position, reports: fresh)
            if !discarded.isEmpty {
                let lost = discarded.sorted { $0.key < $1.key }.map { "\($0.key) had \(lsnText($0.value))" }.joined(separator: ", ")
                logger.error("this promotion discards WAL other members had: writes they acknowledged are lost",
                             metadata: ["promoted_at": "\(lsnText(position))", "beyond": "\(lost)"])
                reason += "; discards WAL: \(lost), promoted at \(lsnText(position))"
            }
            // The timeline the promotion starts (PostgreSQL takes the next one).
            propose(.promote(node: local.name, epoch: clusterState.epoch + 1, timeline: (mine?.timeline ?? 0) + 1,
                             walPosition: position, reason: reason, unixMilliseconds: now))
        case .handOver(let target, let reason):
            handOver(to: target, reason: reason)
        case .waitForReports, .waitForMembers, .noCandidate:
            break
        }
    }

    /// A configured node as the failover policy sees it.
    func dutyMember(_ member: NodeConfig) -> PrimaryDuty.Member {
        PrimaryDuty.Member(name: member.name, isWitness: member.isWitness, priority: member.priority, location: member.location,
                           noFailover: member.noFailover)
    }

    /// Milliseconds since this node last heard from each other member (Raft traffic or a pong).
    private func silenceByName() -> [String: UInt64] {
        var silence: [String: UInt64] = [:]
        for member in config.nodes where member.id != node.id {
            guard let contact = lastContact(with: member.id) else { continue }
            silence[member.name] = UInt64(max(0, (ContinuousClock.now - contact) / .milliseconds(1)))
        }
        return silence
    }

    private func handOverFromFailingPrimary(_ fresh: [String: MemberReport]) {
        var others = fresh
        others[local.name] = nil
        let members = config.nodes.filter { $0.name != local.name && node.configuration.voters.contains($0.id) }
        let candidates = members.compactMap { member -> CandidateReport? in
            guard !member.isWitness, let report = others[member.name] else { return nil }
            return CandidateReport(member: dutyMember(member), report: report, systemIdentifier: clusterState.systemIdentifier)
        }
        guard let best = FailoverPolicy.best(candidates, lastPrimaryPosition: clusterState.lastPrimaryPosition,
                                             maximumLagBytes: config.postgres.maximumLagOnFailoverBytes) else {
            if ticksDone - lastDutyLog >= 50 {
                logger.error("PostgreSQL here cannot be restarted, and no replica is eligible to take over")
                lastDutyLog = ticksDone
            }
            return
        }
        handOver(to: best, reason: "PostgreSQL on \(local.name) failed \(config.postgres.healthCheckFailures) health checks and did not restart within \(config.postgres.restartTimeoutSeconds) s")
    }

    private func handOver(to target: String, reason: String) {
        guard ticksDone - lastHandOverTick >= Int64(node.options.electionTicks), let id = config.node(named: target)?.id else { return }
        lastHandOverTick = ticksDone
        logger.notice("handing leadership to the best candidate", metadata: ["to": "\(target)", "reason": "\(reason)"])
        if case .failure(let error) = node.transferLeadership(to: id) {
            logger.warning("cannot hand leadership over", metadata: ["to": "\(target)", "error": "\(error)"])
        }
    }

    @discardableResult
    private func propose(_ command: ClusterState.Command) -> LogIndex? {
        switch node.propose(CommandCodec.encode(command)) {
        case .success(let index):
            pendingProposal = (index, ticksDone + Int64(node.options.electionTicks))
            return index
        case .failure(let error):
            logger.warning("cannot propose a cluster command", metadata: ["error": "\(error)"])
            return nil
        }
    }

    // MARK: - Operator moves (switchover, failover)

    func startMove(_ request: PrimaryMoveRequest, respond: @escaping @Sendable (PrimaryMoveResult) -> Void) {
        if request.kind == .recoverQuorum {
            // The operator says the quorum is lost for good and names this survivor.
            guard node.role != .leader, node.leader == nil else {
                return respond(.refused("this node is in contact with a leader; recover-quorum is only for a quorum lost for good"))
            }
            return startForcedRecovery(request, respond: respond)
        }
        guard node.role == .leader else {
            return respond(.notLeader(leader: node.leader.map(name(of:))))
        }
        guard move == nil else { return respond(.refused("another switchover or failover is in progress")) }
        guard clusterState.systemIdentifier != nil else { return respond(.refused("the cluster is not bootstrapped yet")) }
        guard node.hasLeaderLease, node.term(at: node.commitIndex) == node.term else {
            return respond(.refused("this leader has not confirmed its term with a quorum yet; retry in a moment"))
        }
        let fresh = freshReports
        let candidates = config.nodes.compactMap { member -> CandidateReport? in
            guard !member.isWitness, node.configuration.voters.contains(member.id), let report = fresh[member.name],
                  request.kind == .failover || member.name != local.name else { return nil }
            return CandidateReport(member: dutyMember(member), report: report, systemIdentifier: clusterState.systemIdentifier)
        }
        let judged = FailoverPolicy.evaluate(candidates, lastPrimaryPosition: clusterState.lastPrimaryPosition,
                                             maximumLagBytes: config.postgres.maximumLagOnFailoverBytes)
        let target: String
        if let requested = request.target {
            guard let member = config.node(named: requested) else { return respond(.refused("no node \(requested) in this cluster")) }
            guard !member.isWitness else { return respond(.refused("\(requested) is a witness without PostgreSQL")) }
            guard node.configuration.voters.contains(member.id) else { return respond(.refused("\(requested) is not a voter")) }
            if requested == local.name, isPrimaryOfCurrentTerm || request.kind == .switchover {
                return respond(.refused("\(requested) is the primary already"))
            }
            guard let verdict = judged.first(where: { $0.report.node == requested })?.verdict else {
                return respond(.refused("no recent report from \(requested): its agent or PostgreSQL is down or unreachable"))
            }
            if verdict != .eligible {
                let unsafe = "\(requested) is not a safe candidate: \(verdict)"
                guard request.force, request.kind == .failover, verdict != .unhealthy else {
                    return respond(.refused(request.kind == .failover && verdict != .unhealthy
                                            ? unsafe + "; add --force to promote it anyway (writes it lacks are lost)" : unsafe))
                }
                logger.warning("forced failover to a node that is not a safe candidate", metadata: ["to": "\(requested)", "why": "\(verdict)"])
            }
            target = requested
        } else {
            guard let best = judged.first, best.verdict == .eligible else {
                let why = judged.map { "\($0.report.node): \($0.verdict)" }.joined(separator: "; ")
                return respond(.refused("no other node is a safe candidate" + (why.isEmpty ? "" : " (\(why))")))
            }
            target = best.report.node
        }
        let reason = "\(request.kind.rawValue) by \(request.requestedBy): \(request.reason)"
        guard let index = propose(.planPrimary(node: target, reason: reason, epoch: clusterState.epoch, force: request.force)) else {
            return respond(.refused("cannot propose the move now; retry"))
        }
        logger.notice("moving the primary", metadata: ["kind": "\(request.kind.rawValue)", "to": "\(target)", "by": "\(request.requestedBy)",
                                                        "reason": "\(request.reason)"])
        let budget = Int64(max(30_000 / config.timing.heartbeatMilliseconds, 10 * node.options.electionTicks))
        move = PrimaryMove(request: request, target: target, startEpoch: clusterState.epoch, phase: .planning(index),
                           deadline: ticksDone + budget, respond: respond)
    }

    private func advanceMove() {
        guard var current = move else { return }
        if node.role != .leader {
            // Answer once the new leader is known (it is elected a moment after the hand-over).
            if let leader = node.leader, leader != node.id {
                current.respond(.handedOver(leader: name(of: leader), fromEpoch: current.startEpoch))
                move = nil
            } else if ticksDone > current.deadline {
                current.respond(.timedOut("this node lost its leadership and no new leader is known; check pgquorum status"))
                move = nil
            }
            return
        }
        if clusterState.epoch > current.startEpoch, clusterState.primary == current.target {
            current.respond(.promoted(epoch: clusterState.epoch))
            move = nil
            return
        }
        if ticksDone > current.deadline {
            logger.warning("the move did not complete in time; the primary stays here", metadata: ["phase": "\(current.phase)"])
            current.respond(.timedOut("\(current.target) did not take over in time (phase: \(current.phase)); the primary stays on \(local.name)"))
            move = nil
            propose(.planPrimary(node: nil, reason: "move timed out", epoch: clusterState.epoch, force: false))
            return
        }
        switch current.phase {
        case .planning(let index):
            guard node.appliedIndex >= index else { break }
            guard clusterState.plannedPrimary?.node == current.target else {
                current.respond(.refused("the plan was not accepted (the epoch changed meanwhile); retry"))
                move = nil
                return
            }
            let runsPrimaryHere = clusterState.primary == local.name && localStatus.report.role == .primary
            let stopHere = current.request.kind == .switchover && runsPrimaryHere && current.target != local.name
            current.phase = stopHere ? .stopping : .transferring
            current.stoppedHere = stopHere
        case .stopping:
            if let position = localStatus.stoppedAtPosition, localStatus.report.role == .stopped {
                logger.notice("PostgreSQL stopped cleanly for the switchover; waiting for the target to receive everything",
                              metadata: ["position": "\(lsnText(position))", "target": "\(current.target)"])
                current.phase = .catchingUp(position)
            }
        case .catchingUp(let position):
            if let report = freshReports[current.target], report.receivedPosition >= position {
                current.phase = .transferring
            }
        case .transferring:
            guard current.target != local.name, let id = config.node(named: current.target)?.id else { break }
            if node.transferTarget == nil, ticksDone - current.lastTransferTick >= Int64(node.options.electionTicks) {
                current.lastTransferTick = ticksDone
                if case .failure(let error) = node.transferLeadership(to: id) {
                    logger.warning("cannot hand leadership over", metadata: ["to": "\(current.target)", "error": "\(error)"])
                }
            }
        }
        move = current
    }

    // MARK: - Views

    func postgresView(of member: NodeConfig) -> PostgresView? {
        guard !member.isWitness else { return nil }
        let report: MemberReport
        if member.name == local.name {
            report = localStatus.report
        } else if node.role == .leader, let fresh = freshReports[member.name] {
            report = fresh
        } else {
            return nil
        }
        let primaryPosition = clusterState.primary.flatMap { freshReports[$0] }.map(\.receivedPosition) ?? report.upstreamPosition
        let lag: UInt64? = report.role == .replica
            ? (primaryPosition > report.replayedPosition ? primaryPosition - report.replayedPosition : 0) : nil
        let state = !report.healthy ? (report.lastError.isEmpty ? "stopped" : "failing") : (report.streaming ? "streaming" : "running")
        return PostgresView(role: roleName(report.role), state: state, timeline: report.timeline,
                            receivedLSN: lsnText(report.receivedPosition), replayedLSN: lsnText(report.replayedPosition),
                            lagBytes: lag, lagMilliseconds: report.role == .replica ? report.lagMilliseconds : nil,
                            lastError: report.lastError.isEmpty ? nil : report.lastError)
    }
}

func roleName(_ role: MemberReport.Role) -> String {
    switch role {
    case .stopped: "stopped"
    case .primary: "primary"
    case .replica: "replica"
    case .none: "none"
    }
}

/// `unixMilliseconds` as ISO 8601 in UTC with milliseconds ("2026-12-05T01:47:30.430Z"), by
/// arithmetic: a date formatter per call cost the idle agent most of its CPU.
func isoTime(_ unixMilliseconds: UInt64) -> String {
    let seconds = Int64(unixMilliseconds / 1_000), milliseconds = Int64(unixMilliseconds % 1_000)
    let days = seconds / 86_400, secondOfDay = seconds % 86_400
    // Days since 1970-01-01 to a civil date (proleptic Gregorian; the era algorithm of
    // Howard Hinnant's "chrono-Compatible Low-Level Date Algorithms").
    let shifted = days + 719_468
    let era = shifted / 146_097
    let dayOfEra = shifted - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let monthIndex = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
    let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
    let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    func padded(_ value: Int64, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
    return "\(padded(year, 4))-\(padded(month, 2))-\(padded(day, 2))T\(padded(secondOfDay / 3_600, 2)):"
        + "\(padded(secondOfDay / 60 % 60, 2)):\(padded(secondOfDay % 60, 2)).\(padded(milliseconds, 3))Z"
}
