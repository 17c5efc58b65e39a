import Testing
@testable import RaftCore

@Suite struct LeadershipTransferTests {
    @Test func transferToAnUpToDateFollowerHandsOverLeadership() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.tick(times: 2)
        let term = cluster[1].term
        #expect(throws: Never.self) { try cluster[1].transferLeadership(to: 3).get() }
        cluster.deliverAll()
        #expect(cluster[3].role == .leader)
        #expect(cluster[3].term == term + 1)
        #expect(cluster[1].role == .follower)
    }

    @Test func transferWaitsForTheTargetToCatchUp() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.isolate(3)
        for byte: UInt8 in 0..<5 { _ = cluster[1].propose([byte]) }
        cluster.deliverAll()
        _ = cluster[1].transferLeadership(to: 3)
        cluster.process()
        #expect(!cluster.mailbox.contains { $0.kind == .timeoutNow })
        cluster.heal()
        cluster.tick(times: 3)
        #expect(cluster[3].role == .leader)
        #expect(cluster[3].lastIndex >= 6)
    }

    @Test func proposalsAreRefusedDuringATransfer() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.isolate(3)
        _ = cluster[1].propose([1])
        _ = cluster[1].transferLeadership(to: 3)
        #expect(cluster[1].propose([2]) == .failure(.leadershipTransferInProgress))
    }

    @Test func transferIsAbandonedAfterAnElectionTimeout() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.isolate(3)
        _ = cluster[1].propose([1])
        cluster.deliverAll()
        _ = cluster[1].transferLeadership(to: 3)
        cluster.tick([1, 2], times: 10)
        #expect(cluster[1].role == .leader)
        #expect(cluster[1].transferTarget == nil)
        guard case .success = cluster[1].propose([2]) else {
            Issue.record("proposals still refused after the transfer was abandoned")
            return
        }
    }

    @Test func transferToANonVoterIsRefused() {
        var cluster = TestCluster(voters: [1, 2, 3], learners: [4])
        cluster.campaign(1)
        #expect(throws: ProposalError.self) { try cluster[1].transferLeadership(to: 4).get() }
    }
}

@Suite struct LeadershipTransferEdgeTests {
    /// A second transfer in the same term, to a target that must first catch up, still ends with
    /// a TimeoutNow once the target's log is current.
    @Test func secondTransferInATermCompletes() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.cut(1, 2)
        _ = cluster[1].propose([1])
        cluster.deliverAll()
        cluster.cut(1, 3)
        #expect(throws: Never.self) { try cluster[1].transferLeadership(to: 3).get() }
        cluster.deliverAll()
        #expect(cluster[1].role == .leader)
        #expect(throws: Never.self) { try cluster[1].transferLeadership(to: 2).get() }
        cluster.heal()
        cluster.cut(1, 3)
        cluster.tick([1, 2], times: 3)
        #expect(cluster[2].role == .leader)
    }

    /// Once TimeoutNow went out the leader has no lease for the rest of its term; if the target
    /// never takes over, the leader steps down so an election can produce a leader with a lease.
    @Test func abandonedTransferAfterTimeoutNowEndsInANewElection() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.tick(times: 2)
        let term = cluster[1].term
        cluster.isolate(3)
        #expect(throws: Never.self) { try cluster[1].transferLeadership(to: 3).get() }
        #expect(!cluster[1].hasLeaderLease)
        cluster.tick([1, 2], times: 10)
        #expect(cluster[1].role == .follower)
        cluster.tick([1, 2], times: 40)
        let leader = cluster.leaders.first { $0 != 3 }
        #expect(leader != nil)
        #expect(cluster[leader ?? 1].term > term)
        cluster.tick([1, 2], times: 2)
        #expect(cluster[leader ?? 1].hasLeaderLease)
    }

    @Test func transferToANonVoterNamesTheProblem() {
        var cluster = TestCluster(voters: [1, 2, 3], learners: [4])
        cluster.campaign(1)
        #expect(throws: ProposalError.invalidTransferTarget("n4 is not a voter")) {
            try cluster[1].transferLeadership(to: 4).get()
        }
    }
}
