import Testing
@testable import RaftCore

/// A node whose Raft state was lost and replaced (`pgquorum storage wipe`: an empty log, the
/// highest term with its vote cast) must rejoin under the leader it left, without the leader
/// sending at network speed.
@Suite struct WipedNodeTests {
    /// Node 3 acknowledged every entry, then comes back empty while node 1 keeps leading.
    static func clusterWithWipedFollower() -> (cluster: TestCluster, term: Term, lastIndex: LogIndex) {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        for byte: UInt8 in 1...20 { _ = cluster[1].propose([byte]) }
        cluster.deliverAll()
        cluster.tick(times: 2)
        let term = cluster[1].term
        let lastIndex = cluster[1].lastIndex
        #expect(cluster[1].progress[3]?.match == lastIndex)

        var wiped = DurableState.bootstrap(Configuration(voters: [1, 2, 3]))
        // As `storage wipe` writes it: the highest term with the vote cast, and a vote floor at
        // the leader's entry at max(commit, node 3's match).
        wiped.hardState = HardState(term: term, vote: 3, commit: 0, voteFloorIndex: lastIndex, voteFloorTerm: term)
        var options = TestCluster.defaultOptions
        options.randomSeed = 3
        cluster[3] = try! RaftNode(id: 3, options: options, restoring: wiped)
        cluster.applied[3] = []
        cluster.sent = []
        return (cluster, term, lastIndex)
    }

    static func appends(to peer: NodeID, in messages: [Message]) -> Int {
        messages.filter { message in
            if message.to == peer, case .append = message.kind { true } else { false }
        }.count
    }

    @Test func aWipedFollowerIsWholeAgainWithinAFewHeartbeats() {
        var (cluster, term, lastIndex) = Self.clusterWithWipedFollower()
        _ = cluster[1].propose([21])
        cluster.tick(times: 3)
        #expect(cluster[1].role == .leader && cluster[1].term == term, "the wipe cost a leader change")
        #expect(cluster[3].lastIndex == lastIndex + 1)
        #expect(cluster[1].progress[3]?.match == lastIndex + 1)
        #expect(cluster[1].progress[3]?.lostEntries == 1)
        let payloads = cluster.applied[3]!.compactMap { entry -> UInt8? in
            if case .application(let bytes) = entry.payload { bytes.first } else { nil }
        }
        #expect(payloads == Array(1...21))
        // The old leader answered each rejection with the same probe, at network speed: here the
        // whole catch-up took a handful of appends.
        #expect(Self.appends(to: 3, in: cluster.sent) <= 8, "\(Self.appends(to: 3, in: cluster.sent)) appends to the wiped node")
    }

    /// Every rejection of the wiped node is answered by at most one append, further back.
    @Test func aRejectionIsAnsweredOnlyByAProbeFurtherBack() {
        var (cluster, _, _) = Self.clusterWithWipedFollower()
        _ = cluster[1].propose([21])
        cluster.process()
        var rejections = 0
        for _ in 0..<20 {
            for id: NodeID in [1, 2, 3] { cluster[id].tick() }
            cluster.process()
            let batch = cluster.mailbox
            cluster.mailbox = []
            for message in batch {
                cluster.process()   // what came before this message is out of the way
                cluster.nodes[message.to]?.step(message)
                guard case .appendResponse(.rejected(let prevIndex, _), _) = message.kind, message.to == 1 else { continue }
                let ready = cluster[1].ready()
                let answer = (ready.messages + ready.messagesAfterPersist).filter { $0.to == message.from }
                rejections += 1
                for reply in answer {
                    if case .append(let probe, _, _, _, _) = reply.kind {
                        #expect(probe < prevIndex, "a rejection of \(prevIndex) was answered by another append at \(probe)")
                    }
                }
                #expect(Self.appends(to: message.from, in: answer) <= 1)
            }
            cluster.process()
        }
        #expect(rejections >= 1, "the wiped node never rejected an append")
    }

    /// The empty log must not vouch for a candidate that lacks what node 3 once held (its old
    /// log would have refused), but may for one that has it; and node 3 does not campaign.
    @Test func theWipedNodeVotesOnlyForCandidatesPastItsFloor() {
        let (cluster, term, lastIndex) = Self.clusterWithWipedFollower()
        var node = cluster[3]
        for _ in 0..<(4 * node.options.electionTicks) { node.tick() }
        #expect(node.role == .follower, "a wiped node below its vote floor campaigned")
        node.step(Message(from: 2, to: 3, term: term + 1, kind: .voteRequest(lastIndex: lastIndex - 1, lastTerm: term, leadershipTransfer: false)))
        node.step(Message(from: 1, to: 3, term: term + 1, kind: .voteRequest(lastIndex: lastIndex, lastTerm: term, leadershipTransfer: false)))
        let ready = node.ready()
        let votes = (ready.messages + ready.messagesAfterPersist).compactMap { message -> (NodeID, Bool)? in
            if case .voteResponse(let granted) = message.kind { (message.to, granted) } else { nil }
        }
        #expect(votes.map(\.0) == [2, 1])
        #expect(votes.map(\.1) == [false, true])
    }

    /// With no new entries the leader sends no appends, only heartbeats: their commit index
    /// (never above what the peer acknowledged) tells the wiped node that it lost entries, and
    /// its answer tells the leader.
    @Test func anIdleLeaderNoticesAtTheFirstHeartbeat() {
        var (cluster, term, lastIndex) = Self.clusterWithWipedFollower()
        cluster.tick(times: 2)
        #expect(cluster[1].term == term)
        #expect(cluster[1].progress[3]?.lostEntries == 1)
        #expect(cluster[3].lastIndex == lastIndex)
        #expect(cluster[1].progress[3]?.match == lastIndex)
    }

    /// A late rejection of an append the follower has acknowledged since looks like a wiped
    /// node's answer: the match is forgotten (safe: nothing commits on it), and one round trip
    /// later the follower is matched again.
    @Test func aLateRejectionOnlyCostsARoundTrip() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        for byte: UInt8 in 1...5 { _ = cluster[1].propose([byte]) }
        cluster.deliverAll()
        cluster.tick(times: 2)
        let match = cluster[1].progress[2]!.match
        let commit = cluster[1].commitIndex
        cluster[1].step(Message(from: 2, to: 1, term: cluster[1].term,
                                kind: .appendResponse(.rejected(prevIndex: match, hint: .init(conflictTerm: nil, firstIndex: 2)), round: 1)))
        #expect(cluster[1].progress[2]?.match == 0)
        #expect(cluster[1].commitIndex == commit)
        cluster.deliverAll()
        #expect(cluster[1].progress[2]?.match == match)
        #expect(cluster[1].progress[2]?.state == .replicate)
        let payloads = cluster.applied[2]!.compactMap { entry -> UInt8? in
            if case .application(let bytes) = entry.payload { bytes.first } else { nil }
        }
        #expect(payloads == [1, 2, 3, 4, 5], "entries applied twice or lost")
    }
}
