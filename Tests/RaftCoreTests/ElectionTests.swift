import Testing
@testable import RaftCore

/// §5.2 leader election, with PreVote, CheckQuorum and the leader-contact rule.
@Suite struct ElectionTests {
    @Test func singleVoterElectsItselfAtItsFirstTimeout() {
        var cluster = TestCluster(voters: [1])
        cluster.tick(times: 20)
        #expect(cluster[1].role == .leader)
        #expect(cluster[1].term == 1)
    }

    @Test func threeVotersElectExactlyOneLeaderThatOthersFollow() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.tick(times: 40)
        #expect(cluster.leaders.count == 1)
        let leader = cluster.leaders[0]
        #expect(cluster[2].leader == leader && cluster[3].leader == leader)
    }

    @Test func newLeaderAppendsAndCommitsANoop() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        #expect(cluster[1].role == .leader)
        #expect(cluster[1].term(at: 1) == cluster[1].term)
        #expect(cluster.applied[1]?.last?.payload == .noop)
        #expect(cluster[1].commitIndex == 1)
    }

    @Test func preCandidateDoesNotBumpItsTerm() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.isolate(1)
        cluster.campaign(1)
        #expect(cluster[1].role == .preCandidate)
        #expect(cluster[1].term == 0)
    }

    @Test func isolatedNodeKeepsItsTermAndDoesNotDisruptOnReturn() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        let term = cluster[1].term
        cluster.isolate(3)
        cluster.tick(times: 100)
        #expect(cluster[3].term == term)
        cluster.heal()
        cluster.tick(times: 30)
        #expect(cluster.leaders == [1])
        #expect(cluster[1].term == term)
        #expect(cluster[3].leader == 1)
    }

    /// The old leader, cut off, steps down and keeps campaigning in vain; PreVote keeps it from
    /// raising its term, so when it returns it simply follows the new leader.
    @Test func partitionedOldLeaderReturnsWithoutDisturbingTheMajority() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        let oldTerm = cluster[1].term
        cluster.isolate(1)
        cluster.tick(times: 100)
        #expect(cluster[1].role != .leader)
        #expect(cluster[1].term == oldTerm)
        let newLeader = cluster.leaders.first { $0 != 1 }
        #expect(newLeader != nil)
        let term = newLeader.map { cluster[$0].term } ?? 0
        cluster.heal()
        cluster.tick(times: 5)
        #expect(cluster[1].role == .follower)
        #expect(cluster[1].term == term)
        #expect(cluster.leaders == [newLeader].compactMap { $0 })
        #expect(newLeader.map { cluster[$0].term } == term)
    }

    /// A pre-vote reaching a node of a higher term is refused with that term, and the
    /// pre-candidate adopts it instead of retrying at its stale term forever.
    @Test func preVoteRefusedByHigherTermTeachesThatTerm() {
        var node = try! RaftNode(id: 1, options: TestCluster.defaultOptions,
                                 restoring: .bootstrap(Configuration(voters: [1, 2, 3])))
        var higher = try! RaftNode(id: 2, options: TestCluster.defaultOptions,
                                   restoring: DurableState(hardState: HardState(term: 5), snapshot: .init(metadata: .init(index: 0, term: 0, configuration: Configuration(voters: [1, 2, 3])), data: []), entries: []))
        higher.step(Message(from: 1, to: 2, term: 1, kind: .preVoteRequest(lastIndex: 0, lastTerm: 0)))
        let reply = higher.ready().messagesAfterPersist
        #expect(reply == [Message(from: 2, to: 1, term: 5, kind: .preVoteResponse(granted: false))])
        for _ in 0..<30 where node.role == .follower { node.tick() }
        #expect(node.role == .preCandidate)
        node.step(reply[0])
        #expect(node.role == .follower)
        #expect(node.term == 5)
    }

    @Test func preCandidateForgetsTheOldLeaderAndCanVoteForOthers() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.isolate(1)
        cluster.tick([2], times: 30)
        #expect(cluster[2].leader == nil)
        #expect(cluster[2].role == .preCandidate || cluster[2].role == .follower)
        // n3's own timer fires later; n2 must not refuse it on behalf of the dead leader.
        cluster.tick([3], times: 30)
        #expect(cluster.leaders.contains(2) || cluster.leaders.contains(3))
    }

    /// Granting a pre-vote must not reset the granter's timers: otherwise a pre-candidate that can
    /// never win would keep everyone from timing out.
    @Test func grantingAPreVoteDoesNotDelayTheGrantersOwnElection() {
        func ticksUntilNode2Campaigns(receivingPreVote: Bool) -> Int {
            var cluster = TestCluster(voters: [1, 2, 3])
            cluster.campaign(1)
            cluster.isolate(1)
            for tick in 1...60 {
                cluster[2].tick()
                cluster[3].tick()
                if tick == 12, receivingPreVote {
                    cluster[2].step(Message(from: 3, to: 2, term: cluster[2].term + 1,
                                            kind: .preVoteRequest(lastIndex: cluster[2].lastIndex, lastTerm: cluster[2].lastTerm)))
                }
                if cluster[2].role != .follower { return tick }
                cluster.mailbox = []
                while cluster[2].hasReady { cluster[2].advance(cluster[2].ready()) }
                while cluster[3].hasReady { cluster[3].advance(cluster[3].ready()) }
            }
            return -1
        }
        let without = ticksUntilNode2Campaigns(receivingPreVote: false)
        #expect(without > 12)
        #expect(ticksUntilNode2Campaigns(receivingPreVote: true) == without)
    }

    @Test func voteRefusedWithinElectionTimeoutOfHearingFromLeader() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.tick(times: 2)
        let term = cluster[2].term
        cluster[2].step(Message(from: 3, to: 2, term: term + 1,
                                kind: .voteRequest(lastIndex: 100, lastTerm: term, leadershipTransfer: false)))
        #expect(cluster[2].term == term)
        #expect(cluster[2].vote == 1)
        #expect(cluster[2].ready().messagesAfterPersist.isEmpty)
    }

    @Test func voteGrantedOnceLeaderContactHasLapsed() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.isolate(1)
        cluster.tick([2], times: 10)
        let term = cluster[2].term
        cluster[2].step(Message(from: 3, to: 2, term: term + 1,
                                kind: .voteRequest(lastIndex: 100, lastTerm: term, leadershipTransfer: false)))
        #expect(cluster[2].vote == 3)
    }

    @Test func leadershipTransferVoteBypassesLeaderContact() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        let term = cluster[2].term
        cluster[2].step(Message(from: 3, to: 2, term: term + 1,
                                kind: .voteRequest(lastIndex: 100, lastTerm: term, leadershipTransfer: true)))
        #expect(cluster[2].term == term + 1)
        #expect(cluster[2].vote == 3)
    }

    @Test func restartedNodeRefusesVotesForAnElectionTimeout() {
        var node = try! RaftNode(id: 2, options: TestCluster.defaultOptions,
                                 restoring: .bootstrap(Configuration(voters: [1, 2, 3])))
        node.step(Message(from: 3, to: 2, term: 1, kind: .voteRequest(lastIndex: 0, lastTerm: 0, leadershipTransfer: false)))
        #expect(node.vote == nil)
        node.step(Message(from: 3, to: 2, term: 1, kind: .preVoteRequest(lastIndex: 0, lastTerm: 0)))
        #expect(node.ready().messagesAfterPersist.last?.kind == .preVoteResponse(granted: false))
    }

    @Test func candidateWithStaleLogLoses() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.isolate(3)
        _ = cluster[1].propose([1])
        cluster.deliverAll()
        cluster.heal()
        cluster.isolate(1)
        cluster.campaign(3)
        #expect(cluster[3].role != .leader)
        cluster.tick([2, 3], times: 40)
        #expect(cluster[2].role == .leader)
        #expect(cluster[3].leader == 2)
    }

    @Test func leaderInMinorityStepsDownAfterAnElectionTimeout() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.isolate(1)
        cluster.tick([1], times: 9)
        #expect(cluster[1].role == .leader)
        cluster.tick([1], times: 11)
        #expect(cluster[1].role == .follower)
        #expect(cluster[1].leader == nil)
    }

    @Test func votesGoOutOnlyAfterTheVoteIsPersisted() {
        var node = try! RaftNode(id: 2, options: TestCluster.defaultOptions,
                                 restoring: .bootstrap(Configuration(voters: [1, 2, 3])))
        for _ in 0..<10 { node.tick() }
        node.step(Message(from: 3, to: 2, term: 1, kind: .voteRequest(lastIndex: 0, lastTerm: 0, leadershipTransfer: false)))
        let ready = node.ready()
        #expect(ready.hardState?.vote == 3)
        #expect(ready.messages.isEmpty)
        #expect(ready.messagesAfterPersist.map(\.kind) == [.voteResponse(granted: true)])
    }
}

@Suite struct LeaderContactEdgeTests {
    /// A follower moved to a higher term by a late response (here a pre-vote refusal from an
    /// earlier campaign of its own) must still refuse a vote while it hears from a live leader.
    @Test func lateHigherTermResponseDoesNotOpenTheVote() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.tick(times: 2)
        let term = cluster[2].term
        cluster[2].step(Message(from: 3, to: 2, term: term + 2, kind: .preVoteResponse(granted: false)))
        #expect(cluster[2].term == term + 2)
        #expect(cluster[2].leader == nil)
        cluster[2].step(Message(from: 3, to: 2, term: term + 2,
                                kind: .voteRequest(lastIndex: 100, lastTerm: term, leadershipTransfer: false)))
        #expect(cluster[2].vote == nil)
    }

    /// A single voter wins in the step that raises its term: its appends (to learners) must wait
    /// until that term is durable.
    @Test func singleVoterLeaderTrafficWaitsForItsTermOnDisk() {
        let configuration = Configuration(voters: [1], learners: [2])
        var node = try! RaftNode(id: 1, options: TestCluster.defaultOptions, restoring: .bootstrap(configuration))
        for _ in 0..<30 where node.role != .leader { node.tick() }
        let ready = node.ready()
        #expect(ready.hardState?.term == 1)
        #expect(ready.messages.isEmpty)
        #expect(ready.messagesAfterPersist.contains { if case .append = $0.kind { true } else { false } })
    }

    @Test func leaderThatRemovedItselfNamesNoLeader() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.isolate(1)
        _ = cluster[1].proposeMembershipChange(.remove(1))
        #expect(cluster[1].propose([1]) == .failure(.notLeader(leader: nil)))
    }
}
