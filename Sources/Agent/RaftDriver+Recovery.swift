import ClusterConfig
import ClusterState
import Foundation
import RaftCore
import RaftStorage
import Synchronization

/// This node's membership notice, shared with the transport's event loop so that it can answer
/// a peer of an older generation on the connection the peer opened, at once.
final class NoticeBox: Sendable {
    private let value: Mutex<MembershipNotice>
    init(_ notice: MembershipNotice) { value = Mutex(notice) }
    func store(_ notice: MembershipNotice) { value.withLock { $0 = notice } }
    func load() -> MembershipNotice { value.withLock { $0 } }
}

/// A forced recovery waiting for this node to lead the shrunk membership (then it becomes a
/// forced failover move to this node).
struct ForcedRecovery {
    var request: PrimaryMoveRequest
    var deadline: Int64
    let respond: @Sendable (PrimaryMoveResult) -> Void
}

/// Quorum loss: the operator's forced recovery on a survivor, and the way nodes from before it
/// come back (cluster generation, `MembershipNotice`).
extension RaftDriver {
    var currentNotice: MembershipNotice {
        MembershipNotice(generation: generation, voters: node.configuration.voters.map(\.rawValue))
    }

    /// Sends this node's notice to every configured peer (members or not: a removed node must
    /// hear that it was removed).
    func broadcastNotice() {
        let notice = currentNotice
        notices.store(notice)
        let payload = MembershipNoticeCodec.encode(notice)
        for member in config.nodes where member.id != node.id { transport.sendNotice(payload, to: member.id) }
    }

    func noticeReceived(from peer: NodeID, _ notice: MembershipNotice) {
        peerNotices[peer] = (notice, .now)
        switch notice.verdict(for: node.id.rawValue, at: generation, from: peer.rawValue) {
        case .ignore:
            break
        case .rejoin(let newer):
            rejoin(generation: newer, toldBy: peer)
        }
    }

    /// Raft traffic from a node whose state predates a forced recovery is dropped: its
    /// membership is the old one (it learns the new generation from our notice). After a
    /// forced recovery, so is traffic from a peer not heard from yet (restarted here, a peer too
    /// old to send notices): only a notice of our generation lets it through.
    func isFromAnOlderGeneration(_ message: Message) -> Bool {
        guard let known = peerNotices[message.from]?.notice else { return generation > 0 }
        return known.generation < generation
    }

    private func storeGeneration(_ value: UInt64) {
        do {
            try generationFile.store(value)
        } catch {
            logger.critical("cannot record the cluster generation; stopping the agent", metadata: ["error": "\(error)"])
            exit(70)
        }
        generation = value
        notices.store(currentNotice)
    }

    /// This node's Raft state is from before a forced recovery that left it out: the directory
    /// is moved aside (never deleted), and the node starts again as a new, empty member that the
    /// leader adds back (learner, then voter). Its PostgreSQL then follows the new primary.
    private func rejoin(generation newer: UInt64, toldBy peer: NodeID) {
        logger.warning("this node's Raft state predates a forced recovery that removed it; discarding it and rejoining as a new member",
                       metadata: ["generation": "\(newer)", "told_by": "\(name(of: peer))"])
        let directory = storage.directory
        let aside = ClusterGeneration.movedRaftDirectory(directory, generation: newer)
        let fresh: RaftStorage
        let restarted: RaftNode
        do {
            // A crash in between: after the rename and before the generation is stored, the
            // next start finds the moved-aside directory and takes its generation from its name
            // (ClusterGeneration.recover); after both, it starts as an empty member.
            guard rename(directory, aside) == 0 else {
                throw AgentStartError("cannot move \(directory) aside: \(String(cString: strerror(errno)))")
            }
            try generationFile.store(newer)
            fresh = try RaftStorage.open(directory: directory, segmentBytes: RaftStorage.agentSegmentBytes)
            try fresh.initialize(.joining)
            restarted = try RaftNode(id: node.id, options: node.options, restoring: .joining)
        } catch {
            logger.critical("cannot reset the Raft state for rejoining; stopping the agent", metadata: ["error": "\(error)"])
            exit(70)
        }
        logger.notice("old Raft state kept for inspection", metadata: ["directory": "\(aside)"])
        generation = newer
        storage = fresh
        node = restarted
        answerEveryWaiter(handOver: .notLeader(leader: nil), move: .refused("this node was removed by a forced recovery and is rejoining"))
        clusterState = ClusterState()
        compaction = CompactionSchedule(interval: compaction.interval, keep: compaction.keep, snapshotIndex: 0)
        caughtUp = false
        pendingProposal = nil
        lastDuty = nil
        mayBootstrap = false
        transferredBy = nil
        lastSoftState = node.softState
        reports = reports.filter { $0.key == local.name }
        notices.store(currentNotice)
    }

    // MARK: - Forced recovery on a survivor

    /// `POST /recover-quorum` sent to this node while no leader exists: shrink the membership to
    /// this node alone, then promote it.
    func startForcedRecovery(_ request: PrimaryMoveRequest, respond: @escaping @Sendable (PrimaryMoveResult) -> Void) {
        guard forced == nil, move == nil else { return respond(.refused("a forced recovery is already in progress here")) }
        guard !local.isWitness else { return respond(.refused("\(local.name) is a witness without PostgreSQL; force the recovery on a PostgreSQL survivor")) }
        guard clusterState.systemIdentifier != nil else { return respond(.refused("the cluster was never bootstrapped; there is nothing to recover")) }
        let voters = node.configuration.voters
        guard voters.contains(node.id) else { return respond(.refused("\(local.name) is not a voter (it is rejoining); force the recovery on a voter")) }
        let report = localStatus.report
        guard report.healthy, report.systemIdentifier == clusterState.systemIdentifier else {
            return respond(.refused("PostgreSQL on \(local.name) is not running (\(report.lastError.isEmpty ? "stopped" : report.lastError)); a forced recovery needs the survivor's data"))
        }
        let reachable = reachableVoters()
        guard reachable.count + 1 < node.configuration.quorum else {
            let names = reachable.union([node.id]).map(name(of:)).sorted().joined(separator: ", ")
            return respond(.refused("a quorum of voters is reachable (\(names)): the quorum is not lost: wait for the election, then use pgquorum failover"))
        }
        // This node alone: another survivor may hold committed entries this one lacks, which the
        // shrunk membership would then overwrite under it. Stopped, it rejoins like the lost ones.
        guard reachable.isEmpty else {
            let names = reachable.map(name(of:)).sorted().joined(separator: ", ")
            return respond(.refused("other voters are reachable (\(names)): a forced recovery runs on one survivor alone; stop their agents first (they rejoin afterwards as replicas), and force the one whose PostgreSQL is furthest ahead"))
        }
        let survivors: Set<NodeID> = [node.id]
        let lost = voters.subtracting(survivors).map(name(of:)).sorted()
        // The shrink first: a refused one must not leave a raised generation behind, which other
        // nodes would take for a recovery that never happened (and move their state aside).
        if case .failure(let error) = node.forceMembership(voters: survivors) {
            return respond(.refused("cannot shrink the membership: \(error)"))
        }
        storeGeneration(generation + 1)
        logger.critical("forced recovery: the membership shrinks to the survivors without the lost majority's consent", metadata: [
            "survivors": "\(survivors.map(name(of:)).sorted().joined(separator: ","))", "removed": "\(lost.joined(separator: ","))",
            "generation": "\(generation)", "by": "\(request.requestedBy)", "reason": "\(request.reason)",
        ])
        broadcastNotice()
        forced = ForcedRecovery(request: request, deadline: ticksDone + Int64(10 * node.options.electionTicks), respond: respond)
    }

    /// Once this node leads the shrunk membership (lease held, own term committed), the forced
    /// recovery continues as a forced failover to this node, so the history records its reason.
    func advanceForcedRecovery() {
        guard let pending = forced else { return }
        if node.role == .leader, node.hasLeaderLease, node.term(at: node.commitIndex) == node.term, node.appliedIndex >= node.commitIndex {
            forced = nil
            var failover = pending.request
            failover.kind = .failover
            failover.force = true
            startMove(failover, respond: pending.respond)
        } else if ticksDone > pending.deadline {
            forced = nil
            pending.respond(.timedOut("\(local.name) did not become leader of the survivors in time; check pgquorum status"))
        }
    }

    // MARK: - Members coming back

    /// The leader adds back configured nodes that are not members but speak its generation
    /// (rejoining after a forced recovery): first as learners, then as voters once their log
    /// has caught up. One change at a time; the core refuses another while one is uncommitted.
    func restoreMembership() {
        guard node.role == .leader, node.term(at: node.commitIndex) == node.term,
              ticksDone - lastMembershipChangeTick >= 5 else { return }
        let configuration = node.configuration
        let now = ContinuousClock.now
        let recent = Duration.milliseconds(config.timing.electionTimeoutMilliseconds)
        var change: (MembershipChange, String)?
        for id in configuration.learners.sorted() where config.node(withID: id) != nil {
            if let match = node.progress[id]?.match, match >= node.commitIndex { change = (.addVoter(id), "voter"); break }
        }
        if change == nil {
            for member in config.nodes where !configuration.contains(member.id) {
                guard let heard = peerNotices[member.id], heard.notice.generation == generation, now - heard.at < recent else { continue }
                change = (.addLearner(member.id), "learner")
                break
            }
        }
        guard let (change, what) = change, let member = config.node(withID: change.node) else { return }
        lastMembershipChangeTick = ticksDone
        switch node.proposeMembershipChange(change) {
        case .success:
            logger.notice("restoring a member", metadata: ["member": "\(member.name)", "as": "\(what)"])
        case .failure(let error):
            logger.debug("membership change not proposed", metadata: ["member": "\(member.name)", "as": "\(what)", "error": "\(error)"])
        }
    }
}
