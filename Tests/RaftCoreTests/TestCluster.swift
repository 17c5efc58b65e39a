import RaftCore

/// A tiny synchronous harness for unit tests: nodes keep their Readys' messages in a mailbox that
/// the test delivers explicitly (or all at once), with optional dropped links.
struct TestCluster {
    var nodes: [NodeID: RaftNode] = [:]
    var mailbox: [Message] = []
    var blocked: Set<[NodeID]> = []
    var applied: [NodeID: [Entry]] = [:]
    var reads: [NodeID: [ReadState]] = [:]
    var installedSnapshots: [NodeID: [Snapshot]] = [:]
    /// Every message any node sent, in order (delivered or not).
    var sent: [Message] = []
    /// Every Ready each node produced, in order.
    var readies: [NodeID: [Ready]] = [:]

    init(voters: [NodeID], learners: [NodeID] = [], options: RaftOptions = TestCluster.defaultOptions) {
        let configuration = Configuration(voters: Set(voters), learners: Set(learners))
        for id in voters + learners {
            var perNode = options
            perNode.randomSeed = id.rawValue
            nodes[id] = try! RaftNode(id: id, options: perNode, restoring: .bootstrap(configuration))
        }
    }

    static var defaultOptions: RaftOptions {
        var options = RaftOptions()
        options.electionTicks = 10
        options.heartbeatTicks = 1
        options.leaseTicks = 8
        return options
    }

    subscript(id: NodeID) -> RaftNode {
        get { nodes[id]! }
        set { nodes[id] = newValue }
    }

    /// Runs every node's Ready: messages into the mailbox, entries applied.
    mutating func process() {
        for id in nodes.keys.sorted() {
            while nodes[id]!.hasReady {
                let ready = nodes[id]!.ready()
                readies[id, default: []].append(ready)
                mailbox.append(contentsOf: ready.messages + ready.messagesAfterPersist)
                sent.append(contentsOf: ready.messages + ready.messagesAfterPersist)
                if let snapshot = ready.snapshot { installedSnapshots[id, default: []].append(snapshot) }
                applied[id, default: []].append(contentsOf: ready.committedEntries)
                reads[id, default: []].append(contentsOf: ready.readStates)
                nodes[id]!.advance(ready)
            }
        }
    }

    /// Delivers mail until none is left (or `limit` rounds), dropping mail on blocked links.
    mutating func deliverAll(limit: Int = 100) {
        process()
        var rounds = 0
        while !mailbox.isEmpty, rounds < limit {
            rounds += 1
            let batch = mailbox
            mailbox = []
            for message in batch where !blocked.contains([message.from, message.to]) {
                nodes[message.to]?.step(message)
            }
            process()
        }
    }

    mutating func tick(_ ids: [NodeID]? = nil, times: Int = 1) {
        for _ in 0..<times {
            for id in ids ?? nodes.keys.sorted() { nodes[id]?.tick() }
            deliverAll()
        }
    }

    /// Lets the other nodes' leader contact run out (their own mail is discarded), then ticks `id`
    /// alone until it starts an election, and lets the cluster settle.
    mutating func campaign(_ id: NodeID) {
        for other in nodes.keys.sorted() where other != id {
            for _ in 0..<nodes[other]!.options.electionTicks { nodes[other]!.tick() }
            while nodes[other]!.hasReady { nodes[other]!.advance(nodes[other]!.ready()) }
        }
        let start = nodes[id]!.term
        var guardTicks = 0
        while nodes[id]!.role == .follower, nodes[id]!.term == start, guardTicks < 100 {
            nodes[id]!.tick()
            guardTicks += 1
        }
        deliverAll()
    }

    mutating func isolate(_ id: NodeID) {
        for other in nodes.keys where other != id {
            blocked.insert([id, other])
            blocked.insert([other, id])
        }
    }

    mutating func cut(_ from: NodeID, _ to: NodeID) { blocked.insert([from, to]) }
    mutating func heal() { blocked = [] }

    var leaders: [NodeID] { nodes.keys.sorted().filter { nodes[$0]!.role == .leader } }
}

extension RaftNode {
    /// Makes a lone node leader by hand: its election timer fires, then `voter`'s pre-vote and
    /// vote arrive. Enough for a three-voter configuration.
    mutating func electByHand(voter: NodeID = 2) {
        for _ in 0..<(2 * options.electionTicks) where role == .follower { tick() }
        step(Message(from: voter, to: id, term: term + 1, kind: .preVoteResponse(granted: true)))
        step(Message(from: voter, to: id, term: term, kind: .voteResponse(granted: true)))
    }
}
