import ClusterConfig
import ClusterState
import Foundation
import Logging
import PeerTransport
import RaftCore
import RaftStorage

/// Work for the Raft task. Everything that touches the Raft node arrives as one of these, in one
/// stream, so the node sees events strictly one after another.
enum AgentEvent: Sendable {
    /// The tick timer woke up (the driver counts due ticks from the clock itself).
    case tick
    case message(Message)
    /// Confirm with a quorum that this node still leads (ReadIndex); answers false when this node
    /// is not the leader or the confirmation does not arrive within an election timeout.
    case confirmLeadership(@Sendable (Bool) -> Void)
    /// Hand leadership to `target` (nil: the best other voter) and answer once someone else
    /// leads, or why not.
    case handOverLeadership(to: NodeID?, @Sendable (HandOverResult) -> Void)
    /// A peer's PostgreSQL report (`report` frame payload).
    case report(from: NodeID, [UInt8])
    /// This node's PostgreSQL thread finished a round.
    case localPostgres(LocalPostgresStatus)
    /// Move the primary (switchover or failover); answer when leadership has moved or why not.
    case movePrimary(PrimaryMoveRequest, @Sendable (PrimaryMoveResult) -> Void)
    /// A peer's membership notice (`notice` frame).
    case notice(from: NodeID, MembershipNotice)
}

/// How a leadership hand-over ended.
public enum HandOverResult: Sendable, Equatable {
    case done(leader: String)
    case notLeader(leader: String?)
    case refused(String)
    case timedOut
}

/// Owns the Raft node, its storage and its transport, and carries out each `Ready` in the order
/// the core demands: send what may go early, persist and sync, send what the write promised,
/// apply, advance. Runs on one task only (`run(events:)`); it never suspends while handling an
/// event, so the node cannot change under a half-finished step. (`@unchecked Sendable` only so it
/// can be handed to that task; nothing else ever touches it.)
final class RaftDriver: @unchecked Sendable {
    var node: RaftNode
    var storage: RaftStorage
    let transport: PeerTransport
    let config: ClusterConfig
    let local: NodeConfig
    var logger: Logger
    let publish: @Sendable (AgentSnapshot) -> Void

    let tickInterval: Duration
    /// Tick k happens at `started + k × tickInterval`.
    let started: ContinuousClock.Instant
    var ticksDone: Int64 = 0
    var lastPing: Int64 = 0
    /// At most this many ticks are caught up at once after the process was stopped or starved:
    /// enough for every timer of the core (election, lease, transfer) to run out.
    let maximumCatchUp: Int64

    var lastHeard: [NodeID: ContinuousClock.Instant] = [:]
    /// The report last sent to the other voters (see `catchUpTicks`).
    var lastReportSent: (bytes: [UInt8], tick: Int64) = ([], 0)
    var nextReadID: UInt64 = 1
    var pendingReads: [UInt64: (respond: @Sendable (Bool) -> Void, deadline: Int64)] = [:]
    /// Reads the leader confirmed, waiting until the read index is applied.
    var confirmedReads: [(index: LogIndex, respond: @Sendable (Bool) -> Void)] = []
    var handOvers: [(respond: @Sendable (HandOverResult) -> Void, deadline: Int64)] = []
    var lastSoftState: SoftState
    var electionsStarted: UInt64 = 0
    var leaderChanges: UInt64 = 0

    // PostgreSQL under the quorum.
    var clusterState: ClusterState
    /// When to snapshot `clusterState` and compact the log behind it.
    var compaction: CompactionSchedule
    let postgres: PostgresManager?
    var localStatus: LocalPostgresStatus
    /// When the PostgreSQL thread last published `localStatus` (see `noticeStalePostgres`).
    var localStatusAt = ContinuousClock.now
    var staleLogged = false
    /// How late the Raft task gets to its ticks (a busy or starved task renews the lease late).
    var tickLateness = TickLateness()
    /// The latest report of every member (this node's included) and when it arrived.
    var reports: [String: (report: MemberReport, at: ContinuousClock.Instant)] = [:]
    /// The tick at which this node last became leader.
    var leaderSinceTick: Int64 = 0
    /// A cluster-state proposal in flight: its index, and the tick after which it is given up.
    var pendingProposal: (index: LogIndex, deadline: Int64)?
    var lastDuty: PrimaryDuty?
    var lastDutyLog: Int64 = -1_000
    /// When this leader began waiting for a member that may hold more WAL (term, tick): the
    /// wait is bounded by `failover.report_wait_ms` from there.
    var reportWaitStart: (term: UInt64, tick: Int64)?
    var lastHandOverTick: Int64 = -1_000
    var lastPositionRecordTick: Int64 = 0
    var mayBootstrap = false
    var wasWritable = false
    var renewedExpiry: ContinuousClock.Instant?
    /// The leader whose TimeoutNow made this node a candidate (a planned hand-over to it), if
    /// any: it prefers itself as primary when it is eligible, and the history names who handed over.
    var transferredBy: NodeID?
    var move: PrimaryMove?
    /// Latched once this node has caught up with a leader's commit index (see PostgresIntent).
    var caughtUp = false

    // Quorum loss and forced recovery (RaftDriver+Recovery).
    var generation: UInt64
    let generationFile: ClusterGeneration
    let notices: NoticeBox
    var peerNotices: [NodeID: (notice: MembershipNotice, at: ContinuousClock.Instant)] = [:]
    var forced: ForcedRecovery?
    var lastMembershipChangeTick: Int64 = -1_000
    /// Entries up to here were committed before this start: applying them again is a replay of
    /// old news, logged at debug so the log does not announce a bootstrap from last month.
    let committedAtStart: LogIndex
    /// The view's `insecure_trust`: fixed at start (the config and the environment), so decided
    /// once, not per snapshot.
    let insecureTrust: Bool?

    init(node: RaftNode, clusterState: ClusterState, storage: RaftStorage, transport: PeerTransport, config: ClusterConfig, local: NodeConfig,
         postgres: PostgresManager?, generation: UInt64, notices: NoticeBox, tickOrigin: ContinuousClock.Instant, logger: Logger,
         publish: @escaping @Sendable (AgentSnapshot) -> Void) {
        self.postgres = postgres
        self.generation = generation
        self.generationFile = ClusterGeneration(dataDirectory: local.dataDirectory)
        self.notices = notices
        self.localStatus = local.isWitness ? .witness : .starting
        self.node = node
        self.clusterState = clusterState
        self.compaction = CompactionSchedule(interval: UInt64(config.raftLog.snapshotEntries), keep: UInt64(config.raftLog.keepEntries),
                                             snapshotIndex: node.snapshotMetadata.index)
        self.storage = storage
        self.transport = transport
        self.config = config
        self.local = local
        self.logger = logger
        self.publish = publish
        self.tickInterval = .milliseconds(config.timing.heartbeatMilliseconds)
        self.started = tickOrigin
        self.maximumCatchUp = Int64(2 * node.options.electionTicks)
        self.lastSoftState = node.softState
        self.committedAtStart = node.commitIndex
        // This node's PostgreSQL lets the hosts in without a password only when it has none
        // (PGPASSWORD or a passfile win over the flag); a witness judges by the shared config.
        let trusts = postgres.map { !$0.usesPasswords }
            ?? (config.postgres.insecureTrust && config.postgres.passfile == nil && config.nodes.contains { !$0.isWitness })
        self.insecureTrust = trusts ? true : nil
        self.logger[metadataKey: "term"] = "\(node.term)"
    }

    /// Handles events until the stream ends.
    func run(events: AsyncStream<AgentEvent>) async {
        drain()
        for await event in events {
            catchUpTicks()
            handle(event)
            drain()
        }
        // Nobody will answer these any more.
        answerEveryWaiter(handOver: .timedOut, move: .timedOut("the agent is shutting down"))
    }

    /// Answers every request still waiting on this node (reads fail) and forgets them.
    func answerEveryWaiter(handOver: HandOverResult, move moveResult: PrimaryMoveResult) {
        for read in pendingReads.values { read.respond(false) }
        for read in confirmedReads { read.respond(false) }
        for waiting in handOvers { waiting.respond(handOver) }
        move?.respond(moveResult)
        forced?.respond(moveResult)
        move = nil
        forced = nil
        pendingReads = [:]
        confirmedReads = []
        handOvers = []
    }

    private func handle(_ event: AgentEvent) {
        switch event {
        case .tick:
            noticeStalePostgres()
        case .message(let message):
            guard !isFromAnOlderGeneration(message) else { return }
            lastHeard[message.from] = .now
            if case .timeoutNow = message.kind { transferredBy = message.from }
            node.step(message)
        case .confirmLeadership(let respond):
            let id = nextReadID
            nextReadID += 1
            switch node.readIndex(requestID: id) {
            case .success:
                pendingReads[id] = (respond, ticksDone + Int64(node.options.electionTicks))
            case .failure:
                respond(false)
            }
        case .report(let from, let bytes):
            guard let member = config.node(withID: from) else { return }
            do {
                reports[member.name] = (try MemberReportCodec.decode(bytes), .now)
            } catch {
                logger.warning("undecodable PostgreSQL report", metadata: ["peer": "\(member.name)", "error": "\(error)"])
            }
        case .localPostgres(let status):
            localStatus = status
            reports[local.name] = (status.report, .now)
            localStatusAt = .now
            staleLogged = false
        case .movePrimary(let request, let respond):
            startMove(request, respond: respond)
        case .notice(let from, let notice):
            noticeReceived(from: from, notice)
        case .handOverLeadership(let requested, let respond):
            guard node.role == .leader else { return respond(.notLeader(leader: node.leader.map(name(of:)))) }
            let candidates = reachableVoters()
            if let requested, !candidates.contains(requested) {
                let why = "\(name(of: requested)) is not a voter this leader heard from in the last five heartbeats"
                logger.notice("cannot hand leadership over", metadata: ["reason": "\(why)"])
                return respond(.refused(why))
            }
            guard let target = requested ?? bestSuccessor(among: candidates) else {
                logger.notice("no other voter is reachable to take over leadership")
                return respond(.refused("no other voter is reachable to take over leadership"))
            }
            if case .failure(let error) = node.transferLeadership(to: target) {
                logger.warning("cannot hand leadership over", metadata: ["reason": "\(error)"])
                return respond(.refused("\(error)"))
            }
            logger.notice("handing leadership over", metadata: ["to": "\(name(of: target))"])
            handOvers.append((respond, ticksDone + Int64(node.options.electionTicks)))
        }
    }

    /// A PostgreSQL thread that stops publishing (a health query that never returns on a stalled
    /// disk, say) must not leave its last "healthy primary" standing: after 6 s without news the
    /// node's own report says unhealthy (so `/primary` answers 503 and the leader ranks it out),
    /// and once that lasts `restart_timeout_s` on the primary, its agent hands leadership over
    /// like for a primary that cannot be restarted (the keeper fences the old PostgreSQL).
    private func noticeStalePostgres() {
        guard postgres != nil else { return }
        let silent = ContinuousClock.now - localStatusAt
        // Above the 5 s connect timeout of the thread's own probes, so one slow round (a
        // primary that drops packets) never marks a healthy replica down.
        guard silent > .seconds(6) else { return }
        let milliseconds = Int64(silent / .milliseconds(1))
        localStatus.report.healthy = false
        localStatus.report.lastError = "no news from the PostgreSQL thread for \(milliseconds) ms (a query or the disk stalled?)"
        localStatus.givenUp = clusterState.primary == local.name
            && silent >= .milliseconds(Int64(config.postgres.restartTimeoutSeconds * 1_000))
        reports[local.name] = (localStatus.report, .now)
        if !staleLogged {
            staleLogged = true
            logger.error("the PostgreSQL thread has not reported for 6 s; this node's PostgreSQL counts as unhealthy")
        }
    }

    /// Ticks the node once per heartbeat interval elapsed on the monotonic clock since start,
    /// so a late timer (or a process that was stopped) catches up instead of drifting.
    private func catchUpTicks() {
        let now = ContinuousClock.now
        let due = Int64((now - started) / tickInterval)
        guard due > ticksDone else { return }
        let count = min(due - ticksDone, maximumCatchUp)
        tickLateness.record(now - (started + tickInterval * (ticksDone + 1)), ticks: due - ticksDone, at: now)
        ticksDone = due
        for _ in 0..<count { node.tick() }
        // This node's PostgreSQL state goes to every other voter once the PostgreSQL thread has
        // said it (until then it counts as not reported): at once when it changed, else every
        // third heartbeat, well within the freshness window (an election timeout) even if one
        // is lost. Every voter holds it, so a newly elected leader decides from reports it has
        // instead of waiting for them.
        if localStatus != .starting {
            let bytes = MemberReportCodec.encode(localStatus.report)
            if bytes != lastReportSent.bytes || ticksDone - lastReportSent.tick >= 3 {
                for voter in node.configuration.voters where voter != node.id { transport.sendReport(bytes, to: voter) }
                lastReportSent = (bytes, ticksDone)
            }
        }
        if ticksDone - lastPing >= 3 {
            // A ping every three heartbeat intervals: RTT, and contact between followers, which
            // exchange no Raft traffic (several pongs per election timeout keep them "running"
            // in each other's view). Non-members too, with this node's notice: a node removed by
            // a forced recovery must learn it.
            lastPing = ticksDone
            for member in config.nodes where member.id != node.id { transport.ping(member.id) }
            broadcastNotice()
        }
        expireWaiters()
    }

    private func expireWaiters() {
        for (id, read) in pendingReads where read.deadline <= ticksDone {
            pendingReads[id] = nil
            read.respond(false)
        }
        handOvers.removeAll { handOver in
            guard handOver.deadline <= ticksDone else { return false }
            handOver.respond(.timedOut)
            return true
        }
    }

    /// Carries out every `Ready` the node has.
    private func drain() {
        processReadies()
        enforceFence()
        performLeaderDuties()
        processReadies()
        postgres?.update(intent())
        finishDrain()
    }

    private func processReadies() {
        while node.hasReady {
            let ready = node.ready()
            // Before anything leaves: a lease just lost or forfeited (a TimeoutNow among these
            // messages) stops PostgreSQL's writes now, before another node can be elected.
            enforceFence()
            for message in ready.messages { transport.send(message) }
            if ready.needsPersist {
                do {
                    try storage.persist(ready)
                } catch {
                    // After a failed write or sync nothing is known about the disk: stop at once
                    // and let recovery on the next start decide (docs/storage.md).
                    logger.critical("Raft storage failed; stopping the agent", metadata: ["error": "\(error)"])
                    exit(70)
                }
            }
            for message in ready.messagesAfterPersist { transport.send(message) }
            if let snapshot = ready.snapshot { restore(snapshot) }
            for entry in ready.committedEntries {
                apply(entry)
                compaction.applied(index: entry.index, state: clusterState)
            }
            node.advance(ready)
            compactIfDue()
            for state in ready.readStates {
                guard let read = pendingReads.removeValue(forKey: state.requestID) else { continue }
                confirmedReads.append((state.index, read.respond))
            }
            if let soft = ready.softState { softStateChanged(soft) }
        }
    }

    /// A snapshot from the leader replaced this node's log (it had fallen behind the leader's
    /// compacted log, or its state was wiped): the cluster state becomes the snapshot's.
    private func restore(_ snapshot: Snapshot) {
        do {
            clusterState = try ClusterStateSnapshot.decode(snapshot.data)
        } catch {
            // Going on with the old state would decide about PostgreSQL from a wrong view; the
            // snapshot is stored, so the next start refuses with the same reason.
            logger.critical("cannot read the cluster state snapshot from the leader; stopping the agent", metadata: ["error": "\(error)"])
            exit(70)
        }
        compaction.compacted(through: snapshot.metadata.index)
        logger.notice("restored the cluster state from the leader's snapshot", metadata: [
            "index": "\(snapshot.metadata.index)", "epoch": "\(clusterState.epoch)", "primary": "\(clusterState.primary ?? "none")",
        ])
    }

    /// Compacts the log through the schedule's checkpoint once enough entries follow it.
    private func compactIfDue() {
        guard let checkpoint = compaction.due(appliedIndex: node.appliedIndex) else { return }
        // Done either way: nil means there is nothing to compact there (a joining node that does
        // not know the membership before the entry that added it); the next checkpoint will do.
        compaction.compacted(through: checkpoint.index)
        guard let snapshot = node.compact(through: checkpoint.index, snapshotData: checkpoint.data) else { return }
        do {
            try storage.saveSnapshot(snapshot)
        } catch {
            logger.critical("Raft storage failed; stopping the agent", metadata: ["error": "\(error)"])
            exit(70)
        }
        logger.info("compacted the Raft log", metadata: ["through": "\(checkpoint.index)", "kept": "\(node.lastIndex - checkpoint.index)"])
    }

    private func finishDrain() {
        // Published first: a read answered below then finds a view that includes what it waited
        // for (its read index may have been applied in this very drain).
        let current = snapshot()
        logReachabilityChanges(current.view.members)
        logPeersThatLostEntries()
        publish(current)
        confirmedReads.removeAll { read in
            guard node.appliedIndex >= read.index else { return false }
            read.respond(true)
            return true
        }
        if node.role != .leader {
            for (id, read) in pendingReads {
                pendingReads[id] = nil
                read.respond(false)
            }
            if !handOvers.isEmpty, let leader = node.leader, leader != node.id {
                for handOver in handOvers { handOver.respond(.done(leader: name(of: leader))) }
                handOvers = []
            }
        }
    }

    private var reachable: [String: Bool] = [:]
    /// The history as last published, and its views.
    private var publishedHistory: (source: [ClusterState.HistoryEntry], views: [HistoryView]) = ([], [])
    /// `Progress.lostEntries` of each peer as last logged.
    private var lostEntriesLogged: [NodeID: Int] = [:]

    /// A peer that lost entries it acknowledged is a node whose Raft state was replaced
    /// (`storage wipe`), or a late message; the leader replicates its log from the start.
    private func logPeersThatLostEntries() {
        guard node.role == .leader else {
            lostEntriesLogged = [:]   // a new leadership counts from 0
            return
        }
        for (peer, progress) in node.progress where progress.lostEntries > lostEntriesLogged[peer, default: 0] {
            lostEntriesLogged[peer] = progress.lostEntries
            logger.warning("peer's Raft log lacks entries it acknowledged (its state was replaced, or a late answer); replicating its log from the start",
                           metadata: ["peer": "\(name(of: peer))"])
        }
    }

    private func logReachabilityChanges(_ members: [MemberView]) {
        for member in members where member.name != local.name {
            let running = member.state == "running"
            if let before = reachable[member.name], before != running {
                if running {
                    logger.notice("peer reachable", metadata: ["peer": "\(member.name)"])
                } else {
                    logger.warning("peer unreachable", metadata: ["peer": "\(member.name)"])
                }
            }
            reachable[member.name] = running
        }
    }

    private func softStateChanged(_ soft: SoftState) {
        if soft.term != lastSoftState.term { logger[metadataKey: "term"] = "\(soft.term)" }
        if soft.role == .candidate, lastSoftState.role != .candidate || soft.term != lastSoftState.term {
            electionsStarted += 1
        }
        if soft.role != .leader, soft.role != .candidate { transferredBy = nil }
        if soft.role == .leader, lastSoftState.role != .leader || soft.term != lastSoftState.term {
            leaderSinceTick = ticksDone
            pendingProposal = nil
            lastDuty = nil
        }
        if soft.leader != lastSoftState.leader {
            if soft.leader != nil { leaderChanges += 1 }
            logger.notice("leader changed", metadata: [
                "leader": "\(soft.leader.map(name(of:)) ?? "none")", "role": "\(soft.role.rawValue)",
            ])
        } else if soft.role != lastSoftState.role {
            logger.info("role changed", metadata: ["role": "\(soft.role.rawValue)"])
        }
        lastSoftState = soft
    }

    /// The voter to hand leadership to: one heard from (Raft or pong) within the last five
    /// heartbeat intervals, so not one that has just stopped; the most up-to-date, then the most
    /// preferred (lowest priority number), then by name.
    func reachableVoters() -> Set<NodeID> {
        let now = ContinuousClock.now
        let recent = tickInterval * 5
        return node.configuration.voters.filter { id in
            guard id != node.id, let contact = lastContact(with: id) else { return false }
            return now - contact < recent
        }
    }

    private func bestSuccessor(among alive: Set<NodeID>) -> NodeID? {
        alive.min { a, b in
            let matchA = node.progress[a]?.match ?? 0, matchB = node.progress[b]?.match ?? 0
            if matchA != matchB { return matchA > matchB }
            let nodeA = config.node(withID: a), nodeB = config.node(withID: b)
            if nodeA?.priority != nodeB?.priority { return (nodeA?.priority ?? .max) < (nodeB?.priority ?? .max) }
            return name(of: a) < name(of: b)
        }
    }

    func name(of id: NodeID) -> String { config.node(withID: id)?.name ?? id.description }

    /// When this node last heard from `id`: Raft traffic, or a pong on the peer link (followers
    /// exchange only pings).
    func lastContact(with id: NodeID) -> ContinuousClock.Instant? {
        [lastHeard[id], transport.lastPong(from: id)].compactMap { $0 }.max()
    }

    // MARK: - The published view

    private func snapshot() -> AgentSnapshot {
        let now = ContinuousClock.now
        let electionTimeout = Duration.milliseconds(config.timing.electionTimeoutMilliseconds)
        let configuration = node.configuration
        var ids = configuration.members
        for member in config.nodes { ids.insert(member.id) }
        let members = ids.map { id -> MemberView in
            let member = config.node(withID: id)
            let contact = lastContact(with: id)
            let heard = contact.map { now - $0 }
            let role: String
            if id == node.leader {
                role = "leader"
            } else if configuration.voters.contains(id) {
                role = id == node.id ? node.role.rawValue : "follower"
            } else if configuration.learners.contains(id) {
                role = "learner"
            } else {
                role = "not a member"
            }
            let running = id == node.id || (heard.map { $0 < electionTimeout } ?? false)
            return MemberView(
                name: member?.name ?? id.description, label: member?.label ?? "", location: member?.location ?? "",
                host: member?.host ?? "", apiPort: member?.apiPort ?? 0, priority: member?.priority ?? 0,
                witness: member?.isWitness ?? true, role: role, state: running ? "running" : "unreachable",
                lastContactMilliseconds: id == node.id ? nil : heard.map { rounded($0.milliseconds) },
                rttMilliseconds: id == node.id ? nil : transport.roundTripTime(of: id).map { rounded($0.milliseconds) },
                matchIndex: node.role == .leader ? (id == node.id ? node.lastIndex : node.progress[id]?.match) : nil,
                postgres: member.flatMap { postgresView(of: $0) }
            )
        }
        let order = Dictionary(uniqueKeysWithValues: config.nodes.enumerated().map { ($1.name, $0) })
        var view = ClusterView(
            cluster: config.cluster, answeredBy: local.name, linearizable: false,
            leader: node.leader.map(name(of:)), term: node.term, epoch: clusterState.epoch, primary: clusterState.primary,
            commitIndex: node.commitIndex,
            members: members.sorted { (order[$0.name] ?? .max, $0.name) < (order[$1.name] ?? .max, $1.name) }
        )
        if node.role == .leader { view.primaryPending = lastDuty?.pendingDescription }
        view.insecureTrust = insecureTrust
        // The lease as a deadline on the monotonic clock: tick k happens at started + k × interval.
        let leaseExpiry = node.leaderLeaseRemainingTicks.map { started + tickInterval * Int(ticksDone + Int64($0)) }
        var snapshot = AgentSnapshot(view: view, role: node.role.rawValue, leaseExpiry: leaseExpiry,
                                     appliedIndex: node.appliedIndex, lastIndex: node.lastIndex,
                                     electionsStarted: electionsStarted, leaderChanges: leaderChanges,
                                     uptimeSeconds: max(0, (now - started).seconds))
        snapshot.snapshotIndex = node.snapshotMetadata.index
        snapshot.tickLatenessSeconds = tickLateness.worst(at: now).seconds
        snapshot.ticksLate = tickLateness.lateTicks
        snapshot.primaryOfCurrentTerm = isPrimaryOfCurrentTerm
        if !local.isWitness {
            let report = localStatus.report
            let behind = report.upstreamPosition > report.replayedPosition ? report.upstreamPosition - report.replayedPosition : 0
            // A replica whose upstream died keeps serving reads through the failover: three
            // election timeouts, enough for a new primary and the re-pointing (a reload).
            let grace = Duration.milliseconds(3 * config.timing.electionTimeoutMilliseconds)
            let streamedRecently = report.streaming || localStatus.lastStreamedAt.map { now - $0 < grace } == true
            snapshot.localPostgres = LocalPostgresView(
                role: roleName(report.role), healthy: report.healthy, streaming: report.streaming, streamedRecently: streamedRecently,
                timeline: report.timeline, lagBytes: behind, lagMilliseconds: report.lagMilliseconds)
        }
        if publishedHistory.source != clusterState.history {
            // Rebuilt only when the history changed (the comparison is by buffer first: cheap).
            publishedHistory = (clusterState.history, clusterState.history.map { entry in
                HistoryView(epoch: entry.epoch, primary: entry.primary, timeline: entry.timeline,
                            lsn: lsnText(entry.walPosition), reason: entry.reason, time: isoTime(entry.unixMilliseconds))
            })
        }
        snapshot.history = publishedHistory.views
        return snapshot
    }
}

/// Microsecond resolution is plenty for milliseconds in JSON and keeps the numbers readable.
private func rounded(_ milliseconds: Double) -> Double { (milliseconds * 1_000).rounded() / 1_000 }

extension Duration {
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    public var milliseconds: Double { seconds * 1_000 }
}
