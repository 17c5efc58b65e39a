import RaftCore

/// A three-node cluster of real `RaftNode`s on a simulated, lossless network, driven tick by
/// tick (100 ms each), that narrates the interesting moments.
struct NarratedDemo {
    private struct Member {
        let name: String
        let label: String
        var node: RaftNode?
        var applied: [Entry] = []
    }

    private static let tickMilliseconds = 100
    private var members: [NodeID: Member] = [:]
    private var disks: [NodeID: DurableState] = [:]
    private var inFlight: [Message] = []
    private var time = 0
    private let options: RaftOptions
    private var log: (String) -> Void = { _ in }

    init(seed: UInt64) throws {
        var options = RaftOptions()
        options.randomSeed = seed
        self.options = options
        let ids: [NodeID] = [1, 2, 3]
        let configuration = Configuration(voters: Set(ids))
        let names = [("primary", "main DC, East China"), ("secondary1", "same-city backup, East China"),
                     ("secondary2", "remote backup, South China")]
        for (id, (name, label)) in zip(ids, names) {
            disks[id] = .bootstrap(configuration)
            members[id] = Member(name: name, label: label)
        }
        for id in ids { try boot(id) }
    }

    mutating func run(_ output: @escaping (String) -> Void) {
        log = output
        say("Three agents start: \(members.keys.sorted().map { "\(name($0)) (\(members[$0]!.label))" }.joined(separator: ", ")).")
        say("Election timeout \(options.electionTicks * Self.tickMilliseconds) ms, randomised up to \(2 * options.electionTicks * Self.tickMilliseconds) ms; heartbeat every \(options.heartbeatTicks * Self.tickMilliseconds) ms; leader lease \(options.leaseTicks * Self.tickMilliseconds) ms.")
        say("A freshly started node refuses votes for one election timeout, as if it had just heard from a leader.")

        guard let first = runUntil(limit: 100, { $0.currentLeader != nil }), let leader = first.currentLeader else {
            return say("No leader was elected within 10 s; this should not happen on a lossless network.")
        }
        _ = runUntil(limit: 10) { $0.members[leader]?.node?.hasLeaderLease == true }
        say("\(name(leader)) holds the leader lease: a quorum acknowledged its heartbeat less than \(options.leaseTicks * Self.tickMilliseconds) ms ago. Only now could it run a writable PostgreSQL.")

        propose(at: leader, "primary=\(name(leader)) epoch=1")

        say("")
        say("CRASH: \(name(leader)) is killed (kill -9). Its unsynced memory is gone; its disk stays.")
        members[leader]?.node = nil
        inFlight.removeAll { $0.to == leader }
        let crashedAt = time
        guard let second = runUntil(limit: 100, { $0.currentLeader != nil && $0.currentLeader != leader }),
              let successor = second.currentLeader else {
            return say("The survivors did not elect a new leader within 10 s.")
        }
        say("\(name(successor)) took over \((time - crashedAt) * Self.tickMilliseconds) ms after the crash (pre-vote first, so a lone node cannot disrupt a healthy cluster).")
        propose(at: successor, "primary=\(name(successor)) epoch=2")

        say("")
        say("RESTART: \(name(leader)) comes back from its disk (term \(disks[leader]?.hardState.term ?? 0)).")
        try? boot(leader)
        _ = runUntil(limit: 50) { demo in
            demo.members[leader]?.node?.commitIndex == demo.members[successor]?.node?.commitIndex
                && demo.members[leader]?.node?.leader == successor
        }
        if let node = members[leader]?.node {
            say("\(name(leader)) follows \(name(successor)) in term \(node.term) and has applied up to index \(node.appliedIndex): it rejoined as a follower, it did not take leadership back.")
        }
        say("")
        say("Demo complete. Every decision above was taken by the same Raft core the agents run; `pgquorum-sim` checks it under partitions and crashes.")
    }

    // MARK: - Driving the world

    private var currentLeader: NodeID? {
        members.keys.sorted().first { members[$0]?.node?.role == .leader }
    }

    private mutating func boot(_ id: NodeID) throws {
        guard let disk = disks[id] else { return }
        var perNode = options
        perNode.randomSeed = options.randomSeed &+ id.rawValue
        members[id]?.node = try RaftNode(id: id, options: perNode, restoring: disk)
        members[id]?.applied = []
    }

    /// Ticks until `condition` holds (returning self) or `limit` ticks pass (returning nil).
    private mutating func runUntil(limit: Int, _ condition: (NarratedDemo) -> Bool) -> NarratedDemo? {
        for _ in 0..<limit {
            if condition(self) { return self }
            tick()
        }
        return condition(self) ? self : nil
    }

    private mutating func propose(at id: NodeID, _ text: String) {
        guard case .success(let index)? = members[id]?.node?.propose(Array(text.utf8)) else {
            return say("\(name(id)) refused the proposal.")
        }
        say("\(name(id)) proposes \"\(text)\" as entry \(index).")
        let start = time
        _ = runUntil(limit: 20) { $0.members[id]?.node?.commitIndex ?? 0 >= index }
        say("Entry \(index) is committed (on a majority of disks) after \((time - start) * Self.tickMilliseconds) ms; every live node applies it.")
    }

    private mutating func tick() {
        time += 1
        for id in members.keys.sorted() {
            members[id]?.node?.tick()
            drain(id)
        }
        // Lossless network, one tick of latency.
        let deliveries = inFlight
        inFlight = []
        for message in deliveries where members[message.to]?.node != nil {
            narrate(message)
            members[message.to]?.node?.step(message)
            drain(message.to)
        }
    }

    /// Carries out every Ready of a node: send, persist, send what waited for the disk, apply, advance.
    private mutating func drain(_ id: NodeID) {
        while let node = members[id]?.node, node.hasReady {
            let ready = node.ready()
            if let soft = ready.softState { narrate(soft, of: id) }
            inFlight.append(contentsOf: ready.messages)
            persist(ready, on: id)
            inFlight.append(contentsOf: ready.messagesAfterPersist)
            members[id]?.applied.append(contentsOf: ready.committedEntries)
            members[id]?.node?.advance(ready)
        }
    }

    private mutating func persist(_ ready: Ready, on id: NodeID) {
        guard var disk = disks[id] else { return }
        if let snapshot = ready.snapshot {
            disk.snapshot = snapshot
            disk.entries = []
        }
        if let first = ready.entries.first {
            disk.entries.removeAll { $0.index >= first.index }
            disk.entries.append(contentsOf: ready.entries)
        }
        if let hardState = ready.hardState { disk.hardState = hardState }
        disks[id] = disk
    }

    // MARK: - Narration

    private mutating func narrate(_ soft: SoftState, of id: NodeID) {
        switch soft.role {
        case .preCandidate:
            say("\(name(id)) heard no leader for its election timeout: it asks for pre-votes for term \(soft.term + 1) without bumping its own term.")
        case .candidate:
            say("\(name(id)) won the pre-vote: it becomes candidate in term \(soft.term) and votes for itself.")
        case .leader:
            say("\(name(id)) won a majority and LEADS term \(soft.term); it appends a no-op to commit its term.")
        case .follower:
            if let leader = soft.leader, leader != id, members[id]?.node?.term == soft.term {
                say("\(name(id)) follows \(name(leader)) in term \(soft.term).")
            }
        }
    }

    private mutating func narrate(_ message: Message) {
        switch message.kind {
        case .voteResponse(let granted), .preVoteResponse(let granted):
            let kind = if case .voteResponse = message.kind { "vote" } else { "pre-vote" }
            say("  \(name(message.from)) \(granted ? "grants" : "refuses") its \(kind) to \(name(message.to)).")
        default:
            break
        }
    }

    private func name(_ id: NodeID) -> String { members[id]?.name ?? id.description }

    private func say(_ line: String) {
        guard !line.isEmpty else { return log("") }
        let seconds = Double(time * Self.tickMilliseconds) / 1000
        let stamp = "t=" + String(Int(seconds)) + "." + String(Int((seconds * 10).rounded()) % 10) + "s"
        log(stamp + String(repeating: " ", count: max(1, 8 - stamp.count)) + line)
    }
}
