/// One Raft member as a deterministic state machine, in the manner of etcd-io/raft's `RawNode`.
///
/// The node does no I/O and reads no clock. The application drives it with `tick()` (its own
/// timer), `step(_:)` (messages from peers), `propose…` and `readIndex`, and after each of those
/// collects a `Ready` and carries it out in order (see `Ready`), then calls `advance(_:)`.
///
/// Safety beyond the Raft paper, because pgquorum fences PostgreSQL on it:
/// - PreVote and CheckQuorum are always on.
/// - A node that heard from a leader (or started) less than `electionTicks` ago neither grants a
///   vote nor a pre-vote, unless the request comes from a leadership transfer.
/// - `hasLeaderLease` is true only while a quorum acknowledged a heartbeat round that this leader
///   started less than `leaseTicks` ago. With `leaseTicks <= electionTicks - 2`, no other node can
///   be elected while a lease is valid, so at most one node holds a lease at any time.
public struct RaftNode: Sendable {
    public let id: NodeID
    public let options: RaftOptions

    public private(set) var term: Term
    public private(set) var vote: NodeID?
    var log: RaftLog

    public private(set) var role: Role = .follower
    public private(set) var leader: NodeID?
    public private(set) var configuration: Configuration
    /// The index of the log entry (or snapshot) that set `configuration`.
    private(set) var configurationIndex: LogIndex

    private var random: SplitMix64
    /// Ticks since this node started: the clock of the lease.
    public private(set) var now: UInt64 = 0
    private var electionElapsed = 0
    private var randomizedElectionTicks: Int
    private var heartbeatElapsed = 0
    /// Ticks since this node last heard from a leader. Starting counts as hearing from one, so a
    /// restarted follower does not hand its vote to a rival of a leader it acknowledged a moment
    /// before the crash.
    private var leaderContactElapsed = 0

    // Candidate state.
    private var votesGranted: Set<NodeID> = []
    private var votesRejected: Set<NodeID> = []

    // Leader state.
    public private(set) var progress: [NodeID: Progress] = [:]
    /// The current heartbeat round, and the tick at which each recent round started.
    private var round: UInt64 = 0
    private var roundStarts: [(round: UInt64, tick: UInt64)] = []
    public private(set) var transferTarget: NodeID?
    private var transferElapsed = 0
    /// Whether the current transfer's TimeoutNow has gone out.
    private var transferTimeoutNowSent = false
    /// Once a TimeoutNow has gone out in this term, another node may win an election at any
    /// moment: the lease is forfeit until this node leads again.
    public private(set) var leaseForfeited = false
    private var pendingReads: [(requestID: UInt64, index: LogIndex, round: UInt64)] = []
    private var readsAwaitingLeaderCommit: [UInt64] = []

    // Output, drained by ready()/advance().
    private var outbox: [Message] = []
    private var readStates: [ReadState] = []
    private var persistedHardState: HardState
    private var reportedSoftState: SoftState

    public init(id: NodeID, options: RaftOptions = RaftOptions(), restoring state: DurableState) throws(RestoreError) {
        let problems = options.problems
        guard problems.isEmpty else { throw .invalidOptions(problems.map(\.description)) }
        var expected = state.snapshot.metadata.index + 1
        var previousTerm = state.snapshot.metadata.term
        for entry in state.entries {
            guard entry.index == expected else {
                throw .inconsistentState("entry \(entry.index) follows \(expected - 1); the log has a gap")
            }
            guard entry.term >= previousTerm else {
                throw .inconsistentState("entry \(entry.index) has term \(entry.term) below its predecessor's \(previousTerm)")
            }
            expected += 1
            previousTerm = entry.term
        }
        guard previousTerm <= state.hardState.term else {
            throw .inconsistentState("the log holds term \(previousTerm) but the hard state's term is \(state.hardState.term)")
        }

        self.id = id
        self.options = options
        self.term = state.hardState.term
        self.vote = state.hardState.vote
        self.voteFloor = (state.hardState.voteFloorIndex, state.hardState.voteFloorTerm)
        self.log = RaftLog(snapshot: state.snapshot, entries: state.entries, committed: state.hardState.commit)
        (self.configuration, self.configurationIndex) = log.configuration(atOrBefore: log.lastIndex)
        self.random = SplitMix64(seed: options.randomSeed ^ id.rawValue &* 0x9E37_79B9)
        self.randomizedElectionTicks = options.electionTicks
        self.persistedHardState = state.hardState
        self.reportedSoftState = SoftState(role: .follower, leader: nil, term: state.hardState.term)
        resetElectionTimer()
    }

    // MARK: - Queries

    public var commitIndex: LogIndex { log.committed }
    public var appliedIndex: LogIndex { log.applied }
    public var lastIndex: LogIndex { log.lastIndex }
    public var lastTerm: Term { log.lastTerm }
    public var snapshotMetadata: SnapshotMetadata { log.snapshot.metadata }
    public var softState: SoftState { SoftState(role: role, leader: leader, term: term) }
    public var hardState: HardState {
        HardState(term: term, vote: vote, commit: log.committed, voteFloorIndex: voteFloor.index, voteFloorTerm: voteFloor.term)
    }

    /// See `HardState.voteFloorIndex`.
    public let voteFloor: (index: LogIndex, term: Term)
    /// A replaced node whose log has not yet caught up with what it may have acknowledged.
    private var belowVoteFloor: Bool { log.committed < voteFloor.index }

    /// Whether a candidate's log is at least as up to date as this node's, and as its vote floor.
    private func vouchesFor(lastIndex: LogIndex, lastTerm: Term) -> Bool {
        log.isUpToDate(lastIndex: lastIndex, lastTerm: lastTerm) && (lastTerm, lastIndex) >= (voteFloor.term, voteFloor.index)
    }

    /// The term of the entry at `index`, if this node still holds it (or its snapshot ends there).
    public func term(at index: LogIndex) -> Term? { log.term(at: index) }

    /// True only while this node leads and a quorum of voters acknowledged a heartbeat round that
    /// started less than `leaseTicks` ago. The agent keeps PostgreSQL writable only while this holds.
    public var hasLeaderLease: Bool { leaderLeaseRemainingTicks != nil }

    /// Ticks left on the leader lease (at least 1 while it holds; nil when there is none). The
    /// agent turns this into a deadline on its monotonic clock, so that a check between ticks
    /// never trusts a lease that ran out since the last tick.
    public var leaderLeaseRemainingTicks: Int? {
        guard role == .leader, !leaseForfeited, configuration.voters.contains(id) else { return nil }
        let confirmed = quorumAcknowledgedRound()
        guard let start = roundStarts.first(where: { $0.round == confirmed })?.tick else { return nil }
        let elapsed = now - start
        guard elapsed < UInt64(options.leaseTicks) else { return nil }
        return options.leaseTicks - Int(elapsed)
    }

    /// Whether this node heard from a leader (or started) within the minimum election timeout, in
    /// which case it refuses to help anyone else become leader.
    private var inLeaderContact: Bool {
        role == .leader || leaderContactElapsed < options.electionTicks
    }

    /// A voter may campaign. So may a node whose removal is appended but not committed: until it
    /// commits, the node may be the only one holding that entry, and the others need it to lead
    /// (dissertation §4.2.2).
    private var isPromotable: Bool {
        if belowVoteFloor { return false }
        if configuration.voters.contains(id) { return true }
        guard configurationIndex > log.committed else { return false }
        return log.configuration(atOrBefore: configurationIndex - 1).configuration.voters.contains(id)
    }

    // MARK: - Inputs

    /// Advances the node's clock by one tick.
    public mutating func tick() {
        now += 1
        if leaderContactElapsed < options.electionTicks { leaderContactElapsed += 1 }
        if role == .leader {
            tickLeader()
        } else {
            electionElapsed += 1
            if electionElapsed >= randomizedElectionTicks {
                resetElectionTimer()
                if isPromotable { campaign(preVote: true, transfer: false) }
            }
        }
    }

    /// Handles one message from a peer. Messages for another node are ignored.
    public mutating func step(_ message: Message) {
        guard message.to == id, message.from != id else { return }
        if message.term > term {
            switch message.kind {
            case .preVoteRequest, .preVoteResponse(granted: true):
                // Pre-vote traffic carries the term a pre-candidate would use; it changes nothing.
                break
            case .voteRequest(_, _, let transfer):
                if !transfer && inLeaderContact { return }
                becomeFollower(term: message.term, leader: nil)
            case .append, .heartbeat, .installSnapshot, .timeoutNow:
                becomeFollower(term: message.term, leader: message.from)
            default:
                becomeFollower(term: message.term, leader: nil)
            }
        } else if message.term < term {
            switch message.kind {
            case .append, .heartbeat, .installSnapshot:
                // A stale leader, or a node that lost touch: our term tells it to step down.
                send(to: message.from, .heartbeatResponse(round: 0))
            case .preVoteRequest:
                // Answer with our term so a pre-candidate with a lower term catches up instead of
                // retrying forever.
                send(to: message.from, .preVoteResponse(granted: false))
            case .voteRequest:
                send(to: message.from, .voteResponse(granted: false))
            default:
                break
            }
            return
        }

        switch message.kind {
        case .preVoteRequest(let lastIndex, let lastTerm):
            let granted = message.term > term && !inLeaderContact && vouchesFor(lastIndex: lastIndex, lastTerm: lastTerm)
            // Granting a pre-vote is not hearing from a leader: no timer is reset.
            outbox.append(Message(from: id, to: message.from, term: granted ? message.term : term,
                                  kind: .preVoteResponse(granted: granted)))
        case .preVoteResponse(let granted):
            // A grant carries the term we would campaign in; a refusal carries the voter's own term.
            guard role == .preCandidate, !granted || message.term == term + 1 else { return }
            tally(message.from, granted: granted)
        case .voteRequest(let lastIndex, let lastTerm, let transfer):
            // The leader-contact rule holds in every term: a follower that was moved to a new
            // term by some late response must still not help elect a rival of a live leader.
            let canVote = vote == message.from
                || (vote == nil && leader == nil && (transfer || !inLeaderContact))
            let granted = canVote && vouchesFor(lastIndex: lastIndex, lastTerm: lastTerm)
            if granted {
                vote = message.from
                electionElapsed = 0
            }
            send(to: message.from, .voteResponse(granted: granted))
        case .voteResponse(let granted):
            guard role == .candidate else { return }
            tally(message.from, granted: granted)
        case .append(let prevIndex, let prevTerm, let entries, let commit, let round):
            acceptLeader(message.from)
            handleAppend(from: message.from, prevIndex: prevIndex, prevTerm: prevTerm, entries: entries,
                         commit: commit, round: round)
        case .heartbeat(let commit, let round):
            acceptLeader(message.from)
            log.committed = max(log.committed, min(commit, log.lastIndex))
            send(to: message.from, .heartbeatResponse(round: round))
            if commit > log.lastIndex {
                // The leader sends at most what this node acknowledged, so this node lost entries
                // it had (its state was replaced). Say where the log ends, so that the leader stops
                // counting on the lost ones now rather than at its next append, which an idle
                // cluster may not send for a long time.
                send(to: message.from, .appendResponse(.rejected(prevIndex: commit, hint: .init(conflictTerm: nil, firstIndex: log.lastIndex + 1)),
                                                       round: round))
            }
        case .installSnapshot(let snapshot, let round):
            acceptLeader(message.from)
            handleSnapshot(from: message.from, snapshot, round: round)
        case .appendResponse(let result, let round):
            handleAppendResponse(from: message.from, result, round: round)
        case .heartbeatResponse(let round):
            handleHeartbeatResponse(from: message.from, round: round)
        case .timeoutNow:
            guard role != .leader, isPromotable else { return }
            campaign(preVote: false, transfer: true)
        }
    }

    /// Appends an application command. Returns the index it will have if it commits.
    public mutating func propose(_ data: [UInt8]) -> Result<LogIndex, ProposalError> {
        if let refusal = leaderRefusal() { return .failure(refusal) }
        return .success(appendAsLeader(.application(data)))
    }

    /// Proposes a single-server membership change. One at a time, and only once the leader has
    /// committed an entry of its own term (the fix for the single-server change bug in the Raft
    /// dissertation's errata).
    public mutating func proposeMembershipChange(_ change: MembershipChange) -> Result<LogIndex, ProposalError> {
        if let refusal = leaderRefusal() { return .failure(refusal) }
        guard log.term(at: log.committed) == term else { return .failure(.leaderNotReady) }
        guard configurationIndex <= log.committed else { return .failure(.membershipChangePending) }
        let next = configuration.applying(change)
        switch change {
        case .addVoter(let node) where configuration.voters.contains(node):
            return .failure(.invalidMembershipChange("\(node) is already a voter"))
        case .addLearner(let node) where configuration.learners.contains(node):
            return .failure(.invalidMembershipChange("\(node) is already a learner"))
        case .remove(let node) where !configuration.contains(node):
            return .failure(.invalidMembershipChange("\(node) is not a member"))
        default:
            break
        }
        guard !next.voters.isEmpty else {
            return .failure(.invalidMembershipChange("the cluster would have no voters"))
        }
        // The change takes effect at once: if the new voters that answered recently do not form
        // a quorum, the cluster could neither commit nor undo it until they return.
        let reachable = Set(next.voters.filter { $0 == id || isReachable($0) })
        guard next.hasQuorum(reachable) else {
            let missing = next.voters.subtracting(reachable).sorted().map(\.description).joined(separator: ", ")
            return .failure(.invalidMembershipChange("the new configuration has no reachable quorum (not answering: \(missing))"))
        }
        return .success(appendAsLeader(.membership(change, result: next)))
    }

    /// Disaster recovery after a quorum loss: makes `survivors` (this node among them) the whole
    /// voting membership without the old majority's consent, and campaigns at once.
    ///
    /// Unsafe by nature, and only for an operator who knows the other voters are gone: entries
    /// the lost majority committed but this node never received are lost, and the removed nodes'
    /// own state still forms a majority of the old membership, so whoever calls this must keep
    /// them from campaigning when they return (pgquorum's agents do it with a cluster generation).
    /// One entry does it, in the current term + 1, and takes effect on append, as every
    /// membership entry does. That term is not necessarily unused: pre-vote kept this node's term
    /// low while the lost majority may have gone further, so the entry may share an index and a
    /// term with one the old majority wrote. What keeps the histories apart is the caller's
    /// duty above (returning nodes come back empty and their old traffic is dropped), not the
    /// term. Its change names the first removed voter; its result — what every node adopts — is
    /// the survivors alone (old learners are dropped too: their state is as old
    /// as the lost voters'). One entry, not one per removal: a node that returns holding only
    /// part of a removal sequence would see an intermediate membership in which returning nodes
    /// form a quorum without the survivor. With this node the only survivor it leads (with a
    /// lease) as soon as the entry is persisted.
    public mutating func forceMembership(voters survivors: Set<NodeID>) -> Result<LogIndex, ProposalError> {
        guard survivors.contains(id) else { return .failure(.invalidMembershipChange("this node must be one of the survivors")) }
        let strangers = survivors.subtracting(configuration.voters)
        guard strangers.isEmpty else {
            return .failure(.invalidMembershipChange("not voters now: \(strangers.sorted().map(\.description).joined(separator: ", "))"))
        }
        guard role != .leader else {
            return .failure(.invalidMembershipChange("this node leads a quorum; change the membership the normal way"))
        }
        let removed = configuration.voters.subtracting(survivors).sorted()
        guard !removed.isEmpty else { return .failure(.invalidMembershipChange("every voter survives: nothing to force")) }
        becomeFollower(term: term + 1, leader: nil)
        vote = id
        let next = Configuration(voters: survivors)
        let index = log.lastIndex + 1
        log.append(Entry(term: term, index: index, payload: .membership(.remove(removed[0]), result: next)))
        adopt(next, at: index)
        // A transfer campaign: the surviving voters may still count the lost leader as heard from.
        campaign(preVote: false, transfer: true)
        return .success(index)
    }

    /// Asks for a linearizable read point. The answer arrives as a `ReadState` in a later `Ready`,
    /// once a quorum confirmed this node still leads after the request.
    public mutating func readIndex(requestID: UInt64) -> Result<Void, ProposalError> {
        guard role == .leader else { return .failure(.notLeader(leader: leader)) }
        guard log.term(at: log.committed) == term else {
            readsAwaitingLeaderCommit.append(requestID)
            return .success(())
        }
        startReadRound(requestID)
        return .success(())
    }

    /// Hands leadership to `target` once its log is current (TimeoutNow). Proposals are refused
    /// until the transfer completes or, after an election timeout, is abandoned.
    public mutating func transferLeadership(to target: NodeID) -> Result<Void, ProposalError> {
        guard role == .leader else { return .failure(.notLeader(leader: leader)) }
        guard target != id else { return .success(()) }
        guard configuration.voters.contains(target) else {
            return .failure(.invalidTransferTarget("\(target) is not a voter"))
        }
        if transferTarget == target { return .success(()) }
        transferTarget = target
        transferElapsed = 0
        transferTimeoutNowSent = false
        if progress[target]?.match == log.lastIndex {
            sendTimeoutNow(to: target)
        } else {
            sendAppend(to: target)
        }
        return .success(())
    }

    /// Replaces the log up to `index` (at most the applied index) with a snapshot holding `data`,
    /// the application's state as of that index. Returns the snapshot for the application to store
    /// before it deletes the compacted entries; nil when there is nothing to compact.
    public mutating func compact(through index: LogIndex, snapshotData data: [UInt8]) -> Snapshot? {
        guard index > log.snapshot.metadata.index, index <= log.applied, let entryTerm = log.term(at: index) else {
            return nil
        }
        let configuration = log.configuration(atOrBefore: index).configuration
        // A joining node does not know the membership before the entry that added it (the
        // founders' is in no entry): a snapshot claiming an empty one would mislead whoever
        // restores it. It compacts once that entry is covered.
        guard !configuration.voters.isEmpty else { return nil }
        let metadata = SnapshotMetadata(index: index, term: entryTerm, configuration: configuration)
        let snapshot = Snapshot(metadata: metadata, data: data)
        log.compact(to: snapshot)
        return snapshot
    }

    // MARK: - Ready / advance

    public var hasReady: Bool {
        hardState != persistedHardState || softState != reportedSoftState || log.unstableSnapshot != nil
            || log.stableIndex < log.lastIndex || !outbox.isEmpty || !readStates.isEmpty
            || log.committed > max(log.applied, log.snapshot.metadata.index)
    }

    /// What the application must persist, send and apply now (see `Ready` for the order).
    public func ready() -> Ready {
        let current = hardState
        let applyFrom = max(log.applied, log.snapshot.metadata.index) + 1
        let entries = log.unstableEntries
        let persisted = persistedHardState
        let votingStateChanged = current.term != persisted.term || current.vote != persisted.vote
            || current.voteFloorIndex != persisted.voteFloorIndex || current.voteFloorTerm != persisted.voteFloorTerm
        return Ready(
            softState: softState == reportedSoftState ? nil : softState,
            hardState: current == persistedHardState ? nil : current,
            snapshot: log.unstableSnapshot,
            entries: entries,
            messages: outbox.filter { sendableBeforePersist($0) },
            messagesAfterPersist: outbox.filter { !sendableBeforePersist($0) },
            committedEntries: applyFrom <= log.committed ? log.entries(in: applyFrom...log.committed) : [],
            readStates: readStates,
            mustSync: votingStateChanged || log.unstableSnapshot != nil || !entries.isEmpty
        )
    }

    /// Leader traffic may precede the disk write, but only if the term it carries is durable
    /// already. A single voter wins its election in the same step that raises its term; until
    /// that term is on disk, a crash could let it lead the same term again with another log.
    private func sendableBeforePersist(_ message: Message) -> Bool {
        message.maySendBeforePersist && message.term <= persistedHardState.term
    }

    /// Records that `ready` was carried out: its state is durable, its messages sent, its entries applied.
    public mutating func advance(_ ready: Ready) {
        if let state = ready.softState { reportedSoftState = state }
        if let state = ready.hardState { persistedHardState = state }
        if let snapshot = ready.snapshot {
            if log.unstableSnapshot == snapshot { log.unstableSnapshot = nil }
            log.stableIndex = max(log.stableIndex, snapshot.metadata.index)
            log.applied = max(log.applied, snapshot.metadata.index)
        }
        if let last = ready.entries.last, log.matches(index: last.index, term: last.term) {
            log.stableIndex = max(log.stableIndex, last.index)
        }
        if let last = ready.committedEntries.last { log.applied = max(log.applied, last.index) }
        outbox.removeFirst(min(outbox.count, ready.messages.count + ready.messagesAfterPersist.count))
        readStates.removeFirst(min(readStates.count, ready.readStates.count))
        // The leader's own entries count towards a commit only once durable.
        if role == .leader { maybeCommit() }
    }

    // MARK: - Roles

    private mutating func becomeFollower(term newTerm: Term, leader newLeader: NodeID?) {
        if role == .leader {
            // The lease ends here. The followers that acknowledged its newest confirmed round
            // refuse votes until an election timeout after hearing it; a deposed leader does the
            // same, so its own vote cannot complete a rival's quorum sooner than theirs could.
            leaderContactElapsed = leaseForfeited ? options.electionTicks : ticksSinceConfirmedRound()
        }
        if newTerm > term {
            term = newTerm
            vote = nil
        }
        role = .follower
        leader = newLeader
        resetElectionTimer()
        clearLeaderState()
    }

    private mutating func campaign(preVote: Bool, transfer: Bool) {
        // A (pre-)candidate has given up on the old leader: it must not keep refusing votes on
        // that leader's behalf, or two pre-candidates could block each other forever.
        leader = nil
        leaderContactElapsed = options.electionTicks
        clearLeaderState()
        resetElectionTimer()
        votesGranted = [id]
        votesRejected = []
        let requestTerm: Term
        if preVote {
            role = .preCandidate
            requestTerm = term + 1
        } else {
            role = .candidate
            term += 1
            vote = id
            requestTerm = term
        }
        if configuration.hasQuorum(votesGranted) {
            if preVote { campaign(preVote: false, transfer: transfer) } else { becomeLeader() }
            return
        }
        for voter in configuration.voters.sorted() where voter != id {
            let kind: Message.Kind = preVote
                ? .preVoteRequest(lastIndex: log.lastIndex, lastTerm: log.lastTerm)
                : .voteRequest(lastIndex: log.lastIndex, lastTerm: log.lastTerm, leadershipTransfer: transfer)
            outbox.append(Message(from: id, to: voter, term: requestTerm, kind: kind))
        }
    }

    private mutating func tally(_ voter: NodeID, granted: Bool) {
        guard configuration.voters.contains(voter) else { return }
        if granted { votesGranted.insert(voter) } else { votesRejected.insert(voter) }
        if configuration.hasQuorum(votesGranted) {
            if role == .preCandidate { campaign(preVote: false, transfer: false) } else { becomeLeader() }
        } else if configuration.hasQuorum(votesRejected) {
            becomeFollower(term: term, leader: nil)
        }
    }

    private mutating func becomeLeader() {
        role = .leader
        leader = id
        clearLeaderState()
        heartbeatElapsed = 0
        electionElapsed = 0
        for member in configuration.members where member != id {
            progress[member] = Progress(next: log.lastIndex + 1)
        }
        startRound()
        // The no-op lets this leader commit, and so learn the commit index, in its own term.
        _ = appendAsLeader(.noop)
    }

    private mutating func clearLeaderState() {
        progress = [:]
        roundStarts = []
        transferTarget = nil
        transferTimeoutNowSent = false
        leaseForfeited = false
        pendingReads = []
        readsAwaitingLeaderCommit = []
        votesGranted = []
        votesRejected = []
    }

    private mutating func acceptLeader(_ from: NodeID) {
        if role != .follower { becomeFollower(term: term, leader: from) }
        leader = from
        electionElapsed = 0
        leaderContactElapsed = 0
    }

    private mutating func resetElectionTimer() {
        electionElapsed = 0
        randomizedElectionTicks = options.electionTicks + Int(random.next() % UInt64(options.electionTicks))
    }

    // MARK: - Leader

    private mutating func tickLeader() {
        heartbeatElapsed += 1
        electionElapsed += 1
        if electionElapsed >= options.electionTicks {
            electionElapsed = 0
            // CheckQuorum: a leader that has not heard from a quorum for an election timeout steps down.
            var active: Set<NodeID> = [id]
            for (peer, state) in progress where state.recentlyActive { active.insert(peer) }
            guard configuration.hasQuorum(active) else {
                becomeFollower(term: term, leader: nil)
                return
            }
            for peer in progress.keys { progress[peer]?.recentlyActive = false }
        }
        if transferTarget != nil {
            transferElapsed += 1
            if transferElapsed >= options.electionTicks {
                transferTarget = nil
                if leaseForfeited {
                    // The target got TimeoutNow but did not take over. Without a lease this
                    // leader could never run a writable primary again in this term: hand the
                    // decision back to an election instead.
                    becomeFollower(term: term, leader: nil)
                    return
                }
            }
        }
        for peer in progress.keys {
            guard case .snapshot = progress[peer]?.state else { continue }
            progress[peer]?.snapshotElapsed += 1
            if let elapsed = progress[peer]?.snapshotElapsed, elapsed >= options.electionTicks {
                progress[peer]?.becomeProbe()
            }
        }
        if heartbeatElapsed >= options.heartbeatTicks {
            heartbeatElapsed = 0
            broadcastHeartbeat()
        }
        let horizon = now >= UInt64(options.leaseTicks) ? now - UInt64(options.leaseTicks) : 0
        while roundStarts.count > 1, roundStarts[0].tick < horizon { roundStarts.removeFirst() }
    }

    /// Whether `peer` answered this leader within the last election timeout.
    private func isReachable(_ peer: NodeID) -> Bool {
        guard let heard = progress[peer]?.lastResponseTick else { return false }
        return now - heard < UInt64(options.electionTicks)
    }

    private func leaderRefusal() -> ProposalError? {
        guard role == .leader else { return .notLeader(leader: leader) }
        // A leader that appended its own removal is on its way out: there is no leader to name.
        guard configuration.voters.contains(id) else { return .notLeader(leader: nil) }
        guard transferTarget == nil else { return .leadershipTransferInProgress }
        return nil
    }

    private mutating func appendAsLeader(_ payload: EntryPayload) -> LogIndex {
        let index = log.lastIndex + 1
        log.append(Entry(term: term, index: index, payload: payload))
        if case .membership(_, let result) = payload { adopt(result, at: index) }
        for peer in progress.keys.sorted() { sendAppend(to: peer) }
        return index
    }

    private mutating func startRound() {
        round += 1
        roundStarts.append((round, now))
    }

    private mutating func broadcastHeartbeat() {
        startRound()
        for (peer, state) in progress.sorted(by: { $0.key < $1.key }) {
            send(to: peer, .heartbeat(commit: min(state.match, log.committed), round: round))
        }
    }

    private mutating func startReadRound(_ requestID: UInt64) {
        if configuration.voters == [id] {
            readStates.append(ReadState(requestID: requestID, index: log.committed))
            return
        }
        broadcastHeartbeat()
        pendingReads.append((requestID, log.committed, round))
    }

    /// Ticks since the newest quorum-acknowledged round started (at most `electionTicks`).
    private func ticksSinceConfirmedRound() -> Int {
        let confirmed = quorumAcknowledgedRound()
        guard let start = roundStarts.first(where: { $0.round == confirmed })?.tick else { return options.electionTicks }
        return Int(min(UInt64(options.electionTicks), now - start))
    }

    /// The newest round that a quorum of voters (this leader included) has acknowledged.
    private func quorumAcknowledgedRound() -> UInt64 {
        var rounds: [NodeID: UInt64] = [id: round]
        for (peer, state) in progress { rounds[peer] = state.acknowledgedRound }
        return configuration.quorumValue(rounds)
    }

    private mutating func releaseConfirmedReads() {
        guard !pendingReads.isEmpty else { return }
        let confirmed = quorumAcknowledgedRound()
        while let first = pendingReads.first, first.round <= confirmed {
            readStates.append(ReadState(requestID: first.requestID, index: first.index))
            pendingReads.removeFirst()
        }
    }

    private mutating func sendAppend(to peer: NodeID) {
        guard var state = progress[peer], !state.isPaused(maxInflight: options.maxInflightAppends) else { return }
        let prevIndex = state.next - 1
        guard let prevTerm = log.term(at: prevIndex),
              let entries = log.entries(from: state.next, maxCount: options.maxEntriesPerAppend)
        else {
            // The follower needs entries this leader has compacted away.
            state.becomeSnapshot(index: log.snapshot.metadata.index)
            progress[peer] = state
            send(to: peer, .installSnapshot(log.snapshot, round: round))
            return
        }
        if case .replicate = state.state, entries.isEmpty { return }
        send(to: peer, .append(prevIndex: prevIndex, prevTerm: prevTerm, entries: entries,
                               commit: log.committed, round: round))
        state.sent(lastIndex: prevIndex + LogIndex(entries.count), round: round, entryCount: entries.count)
        progress[peer] = state
    }

    private mutating func sendTimeoutNow(to peer: NodeID) {
        transferTimeoutNowSent = true
        leaseForfeited = true
        send(to: peer, .timeoutNow)
    }

    private mutating func handleAppendResponse(from peer: NodeID, _ result: Message.AppendResult, round acked: UInt64) {
        guard role == .leader, var state = progress[peer] else { return }
        state.recentlyActive = true
        state.lastResponseTick = now
        state.acknowledgedRound = max(state.acknowledgedRound, acked)
        switch result {
        case .accepted(let match):
            if state.acknowledge(match: match) {
                switch state.state {
                case .probe: state.becomeReplicate()
                case .snapshot(let index) where match >= index: state.becomeReplicate()
                default: break
                }
                progress[peer] = state
                maybeCommit()
                if transferTarget == peer, !transferTimeoutNowSent, match == log.lastIndex { sendTimeoutNow(to: peer) }
            } else {
                progress[peer] = state
            }
        case .rejected(let prevIndex, let hint):
            // The peer's log ends before entries it acknowledged, or it rejects one of them: it
            // lost what it promised (its Raft state was replaced, `storage wipe`) — or this is a
            // late answer to an older append, which only reordering produces. Either way a lower
            // match is the safe belief (it only counts the peer for less): start again from
            // nothing and let the probe find where the peer's log really ends.
            let endsBeforeMatch = hint.conflictTerm == nil && hint.firstIndex <= state.match
            let stale: Bool
            switch state.state {
            case _ where endsBeforeMatch: stale = false
            case .probe: stale = prevIndex != state.next - 1
            case .replicate: stale = prevIndex <= state.match
            case .snapshot: stale = true
            }
            if !stale {
                if endsBeforeMatch || prevIndex <= state.match { state.forgetMatch() }
                var next = hint.firstIndex
                if let conflictTerm = hint.conflictTerm,
                   let last = log.lastIndex(ofTerm: conflictTerm, atOrBelow: prevIndex) {
                    next = last + 1
                }
                state.becomeProbe()
                state.next = max(state.match + 1, min(next, prevIndex))
                // etcd's probe pause: a rejection is answered at once only by a probe further
                // back; anything else waits for the next heartbeat's answer, so no pattern of
                // rejections can make the leader send at network speed.
                if state.next > prevIndex { state.probeSent = true }
            }
            progress[peer] = state
        }
        // Keep streaming while the window allows.
        while role == .leader, let current = progress[peer], current.next <= log.lastIndex || current.state == .probe,
              !current.isPaused(maxInflight: options.maxInflightAppends) {
            sendAppend(to: peer)
            if progress[peer] == current { break }
        }
        releaseConfirmedReads()
    }

    private mutating func handleHeartbeatResponse(from peer: NodeID, round acked: UInt64) {
        guard role == .leader, var state = progress[peer] else { return }
        state.recentlyActive = true
        state.lastResponseTick = now
        state.acknowledgedRound = max(state.acknowledgedRound, acked)
        switch state.state {
        case .probe:
            state.probeSent = false
        case .replicate:
            // An append sent before the heartbeat this answers is still unacknowledged: it was
            // lost (or overtaken). Probe again from the match rather than stall forever.
            if let oldest = state.inflight.first, oldest.round < acked { state.becomeProbe() }
        case .snapshot:
            break
        }
        progress[peer] = state
        if state.match < log.lastIndex { sendAppend(to: peer) }
        releaseConfirmedReads()
    }

    private mutating func maybeCommit() {
        var matches: [NodeID: LogIndex] = [id: log.stableIndex]
        for (peer, state) in progress { matches[peer] = state.match }
        let candidate = configuration.quorumValue(matches)
        // Only an entry of the leader's own term commits by counting replicas (§5.4.2).
        guard candidate > log.committed, log.term(at: candidate) == term else { return }
        log.committed = candidate
        if !readsAwaitingLeaderCommit.isEmpty {
            let waiting = readsAwaitingLeaderCommit
            readsAwaitingLeaderCommit = []
            for requestID in waiting { startReadRound(requestID) }
        }
        if configurationIndex <= log.committed { forgetRemovedPeers() }
        // A leader that committed its own removal steps down (dissertation §4.2.2).
        if !configuration.voters.contains(id), configurationIndex <= log.committed {
            becomeFollower(term: term, leader: nil)
        }
    }

    // MARK: - Follower

    private mutating func handleAppend(from leader: NodeID, prevIndex: LogIndex, prevTerm: Term, entries: [Entry],
                                       commit: LogIndex, round: UInt64) {
        var prevIndex = prevIndex
        var prevTerm = prevTerm
        var entries = entries[...]
        if prevIndex < log.committed {
            // The committed prefix matches the leader's log already; skip what it covers.
            let covered = Int(min(LogIndex(entries.count), log.committed - prevIndex))
            entries = entries.dropFirst(covered)
            prevIndex += LogIndex(covered)
            guard prevIndex == log.committed, let committedTerm = log.term(at: prevIndex) else {
                send(to: leader, .appendResponse(.accepted(matchIndex: log.committed), round: round))
                return
            }
            prevTerm = committedTerm
        }
        guard log.matches(index: prevIndex, term: prevTerm) else {
            let hint: Message.ConflictHint
            if prevIndex > log.lastIndex {
                hint = .init(conflictTerm: nil, firstIndex: log.lastIndex + 1)
            } else {
                hint = .init(conflictTerm: log.term(at: prevIndex), firstIndex: log.firstIndex(ofTermAt: prevIndex))
            }
            send(to: leader, .appendResponse(.rejected(prevIndex: prevIndex, hint: hint), round: round))
            return
        }
        let truncated = log.merge(Array(entries))
        if truncated != nil || entries.contains(where: { if case .membership = $0.payload { true } else { false } }) {
            let (config, index) = log.configuration(atOrBefore: log.lastIndex)
            adopt(config, at: index)
        }
        let lastNew = prevIndex + LogIndex(entries.count)
        log.committed = max(log.committed, min(commit, lastNew))
        send(to: leader, .appendResponse(.accepted(matchIndex: lastNew), round: round))
    }

    private mutating func handleSnapshot(from leader: NodeID, _ snapshot: Snapshot, round: UInt64) {
        let index = snapshot.metadata.index
        if index <= log.committed {
            send(to: leader, .appendResponse(.accepted(matchIndex: log.committed), round: round))
            return
        }
        if log.matches(index: index, term: snapshot.metadata.term) {
            // Our log already holds this prefix: just learn that it is committed.
            log.committed = index
        } else {
            log.restore(snapshot)
            adopt(snapshot.metadata.configuration, at: index)
        }
        send(to: leader, .appendResponse(.accepted(matchIndex: index), round: round))
    }

    // MARK: - Membership

    private mutating func adopt(_ next: Configuration, at index: LogIndex) {
        configuration = next
        configurationIndex = index
        if role == .leader {
            for member in next.members where member != id && progress[member] == nil {
                progress[member] = Progress(next: log.lastIndex + 1)
            }
            // A removed peer keeps receiving the log until its removal commits (see
            // `forgetRemovedPeers`), so that it learns it was removed and stops campaigning.
            if let target = transferTarget, !next.voters.contains(target) { transferTarget = nil }
        } else if role != .follower, !next.voters.contains(id) {
            becomeFollower(term: term, leader: nil)
        }
    }

    /// Once a removal is committed, tells the removed peer the commit index one last time (so it
    /// knows its removal is final and stops campaigning) and stops replicating to it.
    private mutating func forgetRemovedPeers() {
        for (peer, state) in progress.sorted(by: { $0.key < $1.key }) where !configuration.contains(peer) {
            send(to: peer, .heartbeat(commit: min(state.match, log.committed), round: round))
            progress[peer] = nil
        }
    }

    private mutating func send(to peer: NodeID, _ kind: Message.Kind) {
        outbox.append(Message(from: id, to: peer, term: term, kind: kind))
    }
}
