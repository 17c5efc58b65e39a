import RaftCore

/// The outcome of one seed.
public struct SimulationResult: Sendable {
    public var seed: UInt64
    public var ticks: UInt64 = 0
    public var messagesDelivered = 0
    public var elections = 0
    public var maxTerm: Term = 0
    public var committedEntries: LogIndex = 0
    public var crashes = 0
    public var partitions = 0
    public var membershipChanges = 0
    public var transfers = 0
    public var snapshotsInstalled = 0
    /// Nodes whose Raft state was replaced as `pgquorum storage wipe` does.
    public var wipes = 0
    public var readsConfirmed = 0
    /// Ticks during which some node held the leader lease.
    public var leaseHeldTicks = 0
    /// Ticks from the heal to the first commit of a new proposal.
    public var recoveryTicks: UInt64 = 0
    public var faultProfile = ""
    public var violation: String?
    /// The readable trace, when `SimulationOptions.trace` is on.
    public var trace: [String] = []
}

/// A deterministic world of `RaftNode`s: a seeded network that drops, duplicates, delays,
/// reorders and partitions; crashes that lose whatever was not persisted; wiped nodes (state
/// lost and replaced, as `storage wipe` does); membership changes, leadership transfers, reads and
/// compactions throughout. After every event it checks the
/// safety invariants; after the chaos it checks liveness.
public struct Simulation {
    let options: SimulationOptions
    private var random: SimulationRandom
    private let profile: FaultProfile
    private var result: SimulationResult
    private let allNodes: [NodeID]

    private var time: UInt64 = 0
    private var nodes: [NodeID: RaftNode] = [:]
    private var disks: [NodeID: SimulatedDisk] = [:]
    private var machines: [NodeID: StateMachine] = [:]
    private var network = SimulatedNetwork()
    private var checker: InvariantChecker
    private var healing = false
    private var faultActive = false
    private var nemesisUntil: UInt64 = 30
    private var nextPayload: UInt64 = 1
    private var nextReadID: UInt64 = 1
    /// A node stopped for a wipe, waiting until nothing it sent is in flight.
    private var wipeCandidate: NodeID?

    public init(seed: UInt64, options: SimulationOptions = SimulationOptions()) {
        self.options = options
        checker = InvariantChecker(initialFingerprint: options.application.init(snapshotData: [])?.fingerprint ?? 0)
        var random = SimulationRandom(seed: seed)
        self.profile = FaultProfile(random: &random, nodeCount: options.nodeCount, initialVoters: options.initialVoters)
        self.random = random
        self.result = SimulationResult(seed: seed)
        result.faultProfile = profile.description
        allNodes = (1...UInt64(options.nodeCount)).map { NodeID($0) }
        let founders = Configuration(voters: Set(allNodes.prefix(profile.founders)))
        for (position, id) in allNodes.enumerated() {
            let state: DurableState = position < profile.founders ? .bootstrap(founders) : .joining
            disks[id] = SimulatedDisk(state)
        }
    }

    /// Runs the seed to the end, or to the first violation.
    public static func run(seed: UInt64, options: SimulationOptions = SimulationOptions()) -> SimulationResult {
        var simulation = Simulation(seed: seed, options: options)
        return simulation.run()
    }

    public mutating func run() -> SimulationResult {
        for id in allNodes { start(id) }
        while time < UInt64(options.chaosTicks), result.violation == nil {
            chaosStep()
            step()
        }
        if result.violation == nil { checkLiveness() }
        result.ticks = time
        result.committedEntries = checker.highestCommitted
        return result
    }

    // MARK: - One tick of the world

    private mutating func step() {
        time += 1
        var order = allNodes
        random.shuffle(&order)
        for id in order where nodes[id] != nil {
            nodes[id]?.tick()
            process(id)
            if result.violation != nil { return }
        }
        if allNodes.contains(where: { nodes[$0]?.hasLeaderLease == true }) { result.leaseHeldTicks += 1 }
        for message in network.deliverDue(at: time, random: &random) {
            guard nodes[message.to] != nil else { continue }
            result.messagesDelivered += 1
            if options.trace, !message.kind.isHeartbeatTraffic { trace("deliver \(message)") }
            nodes[message.to]?.step(message)
            if let node = nodes[message.to], let problem = checker.answered(message, with: node.ready()) { return fail(problem) }
            process(message.to)
            if result.violation != nil { return }
        }
    }

    private mutating func chaosStep() {
        nemesisStep()
        // Background faults on top of the nemesis: rarer, and overlapping with it.
        if random.chance(profile.partitionRate / 4) { partition(.randomSplit) }
        if random.chance(profile.crashRate), let victim = random.pick(allNodes.filter { nodes[$0] != nil }) {
            crash(victim, why: "crash")
            // Half the crashes are restarted at once, as a supervisor would: a node that acked a
            // leader a moment ago comes back with no memory of it.
            if random.chance(0.5) { start(victim) }
        }
        if random.chance(0.02), let back = random.pick(allNodes.filter { nodes[$0] == nil }) { start(back) }
        if random.chance(profile.proposalRate) { proposeFromLeader() }
        if random.chance(profile.membershipChangeRate) { changeMembership() }
        if random.chance(0.004) { transferLeadership() }
        if random.chance(0.03) { requestRead() }
        if random.chance(0.02) { compactSomeNode() }
        wipeStep()
    }

    /// Jepsen-style episodes: a calm stretch, then one fault held long enough for elections to
    /// play out around it, then a heal (and a restart of what the fault crashed).
    private mutating func nemesisStep() {
        guard time >= nemesisUntil else { return }
        if faultActive {
            faultActive = false
            heal()
            for id in allNodes where nodes[id] == nil { start(id) }
            nemesisUntil = time + 5 + UInt64(random.int(below: 40))
            return
        }
        faultActive = true
        nemesisUntil = time + 15 + UInt64(random.int(below: 80))
        switch random.int(below: 7) {
        case 0: partition(.isolateLeader)
        case 1, 2: partition(.bridge)
        case 3: partition(.randomSplit)
        case 4: cutOneWay(fromLeader: true)
        case 5: cutOneWay(fromLeader: false)
        default:
            if let leader = random.pick(leaders) { crash(leader, why: "crash (leader)") }
        }
    }

    // MARK: - Processing a node's Ready (persist → send → apply → advance)

    private mutating func process(_ id: NodeID) {
        var rounds = 0
        while let node = nodes[id], node.hasReady, rounds < 50 {
            rounds += 1
            let ready = node.ready()
            if let soft = ready.softState {
                if options.trace { trace("\(id) is \(soft.role.rawValue) in term \(soft.term)") }
                if soft.role == .leader {
                    result.elections += 1
                    result.maxTerm = max(result.maxTerm, soft.term)
                    if let problem = checker.leaderElected(id, node) { return fail(problem) }
                }
            }
            if let problem = checker.entriesArriving(ready.entries, at: node) { return fail(problem) }
            for message in ready.messages { send(message) }
            // A crash between sending and persisting loses this Ready's state, but the messages
            // that went first are out: they must have promised nothing.
            if ready.needsPersist, !healing, random.chance(profile.crashRate / 4) {
                crash(id, why: "crash before persisting")
                return
            }
            disks[id]?.persist(ready)
            for message in ready.messagesAfterPersist { send(message) }
            if let snapshot = ready.snapshot {
                result.snapshotsInstalled += 1
                if let problem = machines[id]?.restore(snapshot, checker: &checker, node: id) { return fail(problem) }
            }
            for entry in ready.committedEntries {
                if let problem = machines[id]?.apply(entry, checker: &checker, node: id) { return fail(problem) }
                if options.trace, case .membership(let change, let result) = entry.payload {
                    trace("\(id) applies \(change) at \(entry.index): \(result)")
                }
                if case .membership = entry.payload, node.role == .leader { result.membershipChanges += 1 }
            }
            for read in ready.readStates {
                if let problem = checker.readConfirmed(read, node: id) { return fail(problem) }
                result.readsConfirmed += 1
            }
            nodes[id]?.advance(ready)
        }
        guard let node = nodes[id] else { return }
        if let problem = checker.afterProcessing(id, node, disks: disks) { return fail(problem) }
        if let problem = checker.leases(nodes) { return fail(problem) }
    }

    private mutating func send(_ message: Message) {
        if options.trace, !message.kind.isHeartbeatTraffic { trace("send \(message)") }
        network.send(message, at: time, profile: healing ? .calm : profile.behaviour, random: &random)
    }

    // MARK: - Faults

    private mutating func start(_ id: NodeID) {
        guard nodes[id] == nil, let disk = disks[id] else { return }
        var raft = options.raft
        raft.randomSeed = random.next()
        do {
            nodes[id] = try RaftNode(id: id, options: raft, restoring: disk.durableState)
        } catch {
            return fail("\(id) cannot restart from its own disk: \(error)")
        }
        guard let machine = StateMachine(restoredFrom: disk.snapshot, as: options.application) else {
            return fail("\(id) cannot read its own snapshot at \(disk.snapshot.metadata.index)")
        }
        machines[id] = machine
        if let problem = machines[id]?.verifyRestored(disk.snapshot, checker: checker, node: id) { return fail(problem) }
        if options.trace { trace("\(id) starts (term \(disk.hardState.term), \(disk.entries.count) entries after snapshot \(disk.snapshot.metadata.index))") }
    }

    private mutating func crash(_ id: NodeID, why: String) {
        nodes[id] = nil
        machines[id] = nil
        if random.chance(0.5) { disks[id]?.loseUnsyncedWrites() }
        result.crashes += 1
        if options.trace { trace("\(id) \(why)") }
    }

    enum PartitionKind {
        /// The current leader alone on one side: the case fencing exists for.
        case isolateLeader
        /// The leader and one other node cannot reach each other, but both still reach everyone
        /// else: a non-transitive partition in which the leader keeps a quorum.
        case bridge
        case randomSplit
    }

    private mutating func partition(_ kind: PartitionKind) {
        var left: [NodeID] = [], right: [NodeID] = []
        if kind != .randomSplit, let leader = random.pick(leaders) {
            left = [leader]
            let others = allNodes.filter { $0 != leader }
            right = kind == .isolateLeader ? others : (random.pick(others).map { [$0] } ?? [])
        } else {
            var shuffled = allNodes
            random.shuffle(&shuffled)
            let cut = 1 + random.int(below: shuffled.count - 1)
            left = Array(shuffled[..<cut])
            right = Array(shuffled[cut...])
        }
        network.partition(left, right)
        result.partitions += 1
        if options.trace { trace("partition \(left.sorted()) | \(right.sorted())") }
    }

    /// A one-way cut from (or to) the current leader when there is one.
    private mutating func cutOneWay(fromLeader: Bool) {
        guard let end = random.pick(leaders) ?? random.pick(allNodes),
              let other = random.pick(allNodes.filter { $0 != end }) else { return }
        let (from, to) = fromLeader ? (end, other) : (other, end)
        network.cut(from: from, to: to)
        result.partitions += 1
        if options.trace { trace("cut \(from) -> \(to)") }
    }

    private mutating func heal() {
        guard network.hasFaults else { return }
        network.heal()
        if options.trace { trace("heal") }
    }

    // MARK: - Client and operator actions

    private var leaders: [NodeID] { allNodes.filter { nodes[$0]?.role == .leader } }

    private mutating func proposeFromLeader() {
        guard let id = random.pick(leaders), let machine = machines[id] else { return }
        let bytes = machine.proposal(nextPayload)
        nextPayload += 1
        if case .success = nodes[id]?.propose(bytes) { process(id) }
    }

    private mutating func changeMembership() {
        guard let id = random.pick(leaders), let node = nodes[id] else { return }
        let config = node.configuration
        let change: MembershipChange
        switch random.int(below: 3) {
        case 0:
            guard let newcomer = random.pick(allNodes.filter { !config.voters.contains($0) }) else { return }
            change = .addVoter(newcomer)
        case 1:
            guard let newcomer = random.pick(allNodes.filter { !config.contains($0) }) else { return }
            change = .addLearner(newcomer)
        default:
            guard config.voters.count > 1, let leaving = random.pick(config.members.sorted()) else { return }
            change = .remove(leaving)
        }
        let outcome = nodes[id]?.proposeMembershipChange(change)
        if options.trace { trace("\(id) proposes \(change): \(outcome.map { "\($0)" } ?? "-")") }
        process(id)
    }

    private mutating func transferLeadership() {
        guard let id = random.pick(leaders), let node = nodes[id],
              let target = random.pick(node.configuration.voters.sorted().filter { $0 != id }) else { return }
        if case .success = nodes[id]?.transferLeadership(to: target) {
            result.transfers += 1
            if options.trace { trace("\(id) transfers leadership to \(target)") }
            process(id)
        }
    }

    private mutating func requestRead() {
        guard let id = random.pick(leaders) else { return }
        let requestID = nextReadID
        nextReadID += 1
        if case .success = nodes[id]?.readIndex(requestID: requestID) {
            checker.readRequested(requestID)
            process(id)
        }
    }

    private mutating func compactSomeNode() {
        guard let id = random.pick(allNodes.filter { nodes[$0] != nil }), let node = nodes[id],
              let machine = machines[id], node.appliedIndex > node.snapshotMetadata.index + 4 else { return }
        let through = node.appliedIndex
        guard let snapshot = nodes[id]?.compact(through: through, snapshotData: machine.snapshotData()) else { return }
        disks[id]?.compact(to: snapshot)
        if options.trace { trace("\(id) compacts through \(through)") }
    }

    /// `pgquorum storage wipe`, in the operator's order: stop a member other than the leader;
    /// once nothing it sent is still on its way (the tool waits until the leader no longer hears
    /// from it), run the tool's checks — a leader, every other voter up (the tool asks each), and
    /// the other voters that hold every entry up to the commit index and up to what the member
    /// acknowledged, in the leader's view and by their own commit index, form a quorum. Then its
    /// state becomes an empty log in the highest term any node reached, its vote cast, a vote
    /// floor at the leader's entry at that index, and it starts again. When the checks fail it stays
    /// down like any crashed node.
    private mutating func wipeStep() {
        if let victim = wipeCandidate {
            guard nodes[victim] == nil else { wipeCandidate = nil; return }   // restarted meanwhile
            guard !network.carries(from: victim) else { return }
            wipeCandidate = nil
            wipe(victim)
        } else if random.chance(0.003), let leaderID = random.pick(leaders), let leader = nodes[leaderID],
                  let victim = random.pick(leader.configuration.members.sorted().filter { $0 != leaderID && nodes[$0] != nil }) {
            crash(victim, why: "stopped for a wipe")
            wipeCandidate = victim
        }
    }

    private mutating func wipe(_ victim: NodeID) {
        // The tool asks for a view the leader confirms with a quorum: a leader with its lease.
        guard let leaderID = leaders.first(where: { nodes[$0]?.hasLeaderLease == true }), let leader = nodes[leaderID] else { return }
        let others = leader.configuration.voters.filter { $0 != victim }
        guard others.allSatisfy({ nodes[$0] != nil }) else { return }
        var holdings: [NodeID: WipeRule.Holding] = [:]
        for voter in others {
            let matched = voter == leaderID ? leader.lastIndex : leader.progress[voter]?.match ?? 0
            holdings[voter] = WipeRule.Holding(match: matched, commit: nodes[voter]?.commitIndex ?? 0)
        }
        let verdict = WipeRule.check(commitIndex: leader.commitIndex, acknowledged: leader.progress[victim]?.match ?? 0,
                                     others: holdings, quorum: leader.configuration.quorum)
        guard verdict.safe else { return }
        let term = allNodes.compactMap { disks[$0]?.hardState.term }.max() ?? 0
        var fresh = DurableState.bootstrap(leader.configuration)
        fresh.hardState = WipeRule.freshHardState(node: victim, highestTerm: term, needed: verdict.needed,
                                                  floorTerm: leader.term(at: verdict.needed) ?? leader.term)
        disks[victim] = SimulatedDisk(fresh)
        result.wipes += 1
        if options.trace { trace("\(victim) wiped: empty log in term \(term), vote cast (\(verdict.holders) hold up to \(verdict.needed))") }
        start(victim)
    }

    // MARK: - Liveness

    private mutating func checkLiveness() {
        healing = true
        network.heal()
        network.dropAll()
        for id in allNodes { start(id) }
        if options.trace { trace("— heal everything, restart every node; a proposal must commit within \(options.livenessBoundTicks) ticks —") }
        let healedAt = time
        var marker: (node: NodeID, index: LogIndex, payload: EntryPayload)?
        var attempt: UInt8 = 0
        while time < healedAt + UInt64(options.livenessBoundTicks), result.violation == nil {
            if let pending = marker, let node = nodes[pending.node] {
                if checker.committedPayload(at: pending.index) == pending.payload {
                    result.recoveryTicks = time - healedAt
                    return
                }
                if node.role != .leader { marker = nil }
            }
            if marker == nil, let id = leaders.first {
                attempt &+= 1
                let bytes: [UInt8] = [0xFF, attempt]
                if case .success(let index)? = nodes[id]?.propose(bytes) {
                    marker = (id, index, .application(bytes))
                    process(id)
                }
            }
            step()
        }
        if result.violation == nil {
            let roles = allNodes.map { "\($0)=\(nodes[$0].map { "\($0.role.rawValue)/t\($0.term)/\($0.configuration)" } ?? "down")" }
            fail("liveness: no proposal committed within \(options.livenessBoundTicks) ticks after the heal (\(roles.joined(separator: " ")))")
        }
    }

    // MARK: - Reporting

    private mutating func fail(_ problem: String) {
        guard result.violation == nil else { return }
        result.violation = "tick \(time): \(problem)"
        if options.trace { trace("VIOLATION \(problem)") }
    }

    private mutating func trace(_ line: String) {
        result.trace.append("[\(time)] \(line)")
    }
}

extension Message.Kind {
    var isHeartbeatTraffic: Bool {
        switch self {
        case .heartbeat, .heartbeatResponse: true
        default: false
        }
    }
}
