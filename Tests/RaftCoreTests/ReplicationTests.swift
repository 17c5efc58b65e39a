import Testing
@testable import RaftCore

/// §5.3–5.4 log replication and commitment.
@Suite struct ReplicationTests {
    @Test func proposalsCommitAndApplyInOrderEverywhere() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        for byte: UInt8 in 1...5 { _ = cluster[1].propose([byte]) }
        cluster.deliverAll()
        cluster.tick(times: 2)
        for id: NodeID in [1, 2, 3] {
            let payloads = cluster.applied[id]!.compactMap { entry -> UInt8? in
                if case .application(let bytes) = entry.payload { bytes.first } else { nil }
            }
            #expect(payloads == [1, 2, 3, 4, 5])
        }
    }

    /// `mustSync`: entries, a snapshot and a new term or vote must be durable before what
    /// follows; a Ready whose hard state only moves the commit index need not be synced.
    @Test func onlyEntriesAndVotingStateMustBeSynced() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        for byte: UInt8 in 1...3 { _ = cluster[1].propose([byte]) }
        cluster.deliverAll()
        cluster.tick(times: 2)
        var previous = HardState()
        var commitOnly = 0
        for ready in cluster.readies[2]! {
            let voting = ready.hardState.map { $0.term != previous.term || $0.vote != previous.vote } ?? false
            #expect(ready.mustSync == (!ready.entries.isEmpty || ready.snapshot != nil || voting), "\(ready)")
            if let state = ready.hardState {
                if !voting, ready.entries.isEmpty { commitOnly += 1 }
                previous = state
            }
        }
        #expect(commitOnly > 0, "no Ready moved only the commit index")
        #expect(cluster.readies[2]!.contains { $0.mustSync && !$0.entries.isEmpty })
    }

    @Test func followerRefusesProposals() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        #expect(cluster[2].propose([1]) == .failure(.notLeader(leader: 1)))
    }

    @Test func leaderCountsItselfOnlyOnceItsEntryIsDurable() {
        var node = try! RaftNode(id: 1, options: TestCluster.defaultOptions,
                                 restoring: .bootstrap(Configuration(voters: [1])))
        for _ in 0..<20 { node.tick() }
        #expect(node.role == .leader)
        var ready = node.ready()
        #expect(ready.entries.count == 1)
        #expect(ready.committedEntries.isEmpty)
        node.advance(ready)
        ready = node.ready()
        #expect(ready.committedEntries.map(\.payload) == [.noop])
    }

    /// The leader's own copy counts towards a commit only after `advance` declared it durable,
    /// even when a follower acknowledges first.
    @Test func followerAckBeforeTheLeadersOwnPersistDoesNotCommit() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        let before = cluster[1].commitIndex
        guard case .success(let index) = cluster[1].propose([1]) else {
            Issue.record("proposal refused")
            return
        }
        let ready = cluster[1].ready()
        #expect(ready.entries.last?.index == index)
        cluster[1].step(Message(from: 2, to: 1, term: cluster[1].term,
                                kind: .appendResponse(.accepted(matchIndex: index), round: 1)))
        #expect(cluster[1].commitIndex == before)
        cluster[1].advance(ready)
        #expect(cluster[1].commitIndex == index)
    }

    @Test func leaderAppendsMayBeSentBeforePersisting() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        _ = cluster[1].propose([7])
        let ready = cluster[1].ready()
        #expect(!ready.entries.isEmpty)
        #expect(ready.messages.allSatisfy { if case .append = $0.kind { true } else { false } })
        #expect(ready.messages.count == 2)
    }

    /// A follower that holds a long divergent tail from an old term is repaired in a few round
    /// trips (one per conflicting term), not one per entry.
    @Test func conflictingTailIsReplacedWithFewRejections() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.isolate(1)
        for byte: UInt8 in 0..<30 { _ = cluster[1].propose([byte]) }
        cluster.deliverAll()
        #expect(cluster[1].lastIndex == 31)
        cluster.tick([2, 3], times: 40)
        let newLeader = cluster.leaders.first { $0 != 1 }!
        for byte: UInt8 in 100..<105 { _ = cluster[newLeader].propose([byte]) }
        cluster.deliverAll()
        cluster.heal()
        var rejections = 0
        for _ in 0..<20 {
            cluster.process()
            for message in cluster.mailbox {
                if case .appendResponse(.rejected, _) = message.kind, message.from == 1 { rejections += 1 }
            }
            cluster.tick()
        }
        #expect(cluster[1].lastIndex == cluster[newLeader].lastIndex)
        #expect(cluster[1].term(at: cluster[1].lastIndex) == cluster[newLeader].term)
        #expect(rejections <= 3)
    }

    /// Figure 8 of the Raft paper: an entry of an earlier term that sits on a majority is not
    /// committed by counting replicas; it commits only together with an entry of the leader's term.
    @Test func onlyEntriesOfTheCurrentTermCommitByCounting() {
        let configuration = Configuration(voters: [1, 2, 3])
        let old = Entry(term: 1, index: 1, payload: .application([1]))
        var leader = try! RaftNode(id: 1, options: TestCluster.defaultOptions, restoring: DurableState(
            hardState: HardState(term: 2), snapshot: Snapshot(metadata: .init(index: 0, term: 0, configuration: configuration), data: []),
            entries: [old]))
        leader.electByHand()
        #expect(leader.role == .leader)
        #expect(leader.term(at: 2) == 3)
        leader.advance(leader.ready())
        leader.step(Message(from: 2, to: 1, term: 3, kind: .appendResponse(.accepted(matchIndex: 1), round: 1)))
        #expect(leader.commitIndex == 0)
        leader.step(Message(from: 2, to: 1, term: 3, kind: .appendResponse(.accepted(matchIndex: 2), round: 1)))
        #expect(leader.commitIndex == 2)
    }

    @Test func inFlightAppendsAreBounded() {
        var options = TestCluster.defaultOptions
        options.maxInflightAppends = 2
        options.maxEntriesPerAppend = 1
        var cluster = TestCluster(voters: [1, 2, 3], options: options)
        cluster.campaign(1)
        cluster.cut(2, 1)
        cluster.cut(3, 1)
        cluster.process()
        cluster.mailbox = []
        for byte: UInt8 in 0..<10 { _ = cluster[1].propose([byte]) }
        cluster.process()
        let appendsToTwo = cluster.mailbox.filter { message in
            if case .append = message.kind { message.to == 2 } else { false }
        }
        #expect(appendsToTwo.count == 2)
    }

    @Test func lostAppendIsResentAfterAHeartbeatRound() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.tick(times: 2)
        _ = cluster[1].propose([1])
        cluster.process()
        cluster.mailbox.removeAll { $0.to == 2 }
        cluster.deliverAll()
        #expect(cluster[2].lastIndex < cluster[1].lastIndex)
        cluster.tick(times: 3)
        #expect(cluster[2].lastIndex == cluster[1].lastIndex)
    }
}
