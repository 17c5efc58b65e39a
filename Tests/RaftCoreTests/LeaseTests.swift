import Testing
@testable import RaftCore

/// The leader lease the agent fences PostgreSQL on.
@Suite struct LeaseTests {
    @Test func leaderHoldsLeaseWhileQuorumAcknowledges() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.tick(times: 3)
        #expect(cluster[1].hasLeaderLease)
        #expect(!cluster[2].hasLeaderLease)
        #expect(!cluster[3].hasLeaderLease)
    }

    @Test func leaseLapsesLeaseTicksAfterTheLastAcknowledgedRound() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.tick(times: 3)
        cluster.isolate(1)
        var heldFor = 0
        var remaining: [Int] = []
        while let left = cluster[1].leaderLeaseRemainingTicks, heldFor < 50 {
            remaining.append(left)
            cluster.tick([1])
            heldFor += 1
        }
        // The remaining ticks count down to 1 and then the lease is gone.
        #expect(remaining == Array((1...remaining.count).reversed()))
        // The last acknowledged round started at the tick before the isolation: the lease
        // runs out exactly leaseTicks after that round started.
        #expect(heldFor == cluster[1].options.leaseTicks)
        #expect(cluster[1].role == .leader)
    }

    @Test func isolatedLeaderLosesItsLeaseBeforeAnyoneElseIsElected() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.tick(times: 3)
        cluster.isolate(1)
        var leaseEnded: Int?
        var otherElected: Int?
        for tick in 1...60 {
            cluster.tick()
            if leaseEnded == nil, !cluster[1].hasLeaderLease { leaseEnded = tick }
            if otherElected == nil, cluster.leaders.contains(where: { $0 != 1 }) { otherElected = tick }
            #expect(cluster.nodes.values.filter(\.hasLeaderLease).count <= 1)
        }
        #expect(leaseEnded != nil && otherElected != nil)
        #expect(leaseEnded! < otherElected!)
    }

    @Test func noLeaseOnceTimeoutNowIsSent() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.tick(times: 3)
        #expect(cluster[1].hasLeaderLease)
        _ = cluster[1].transferLeadership(to: 2)
        #expect(!cluster[1].hasLeaderLease)
    }

    @Test func singleVoterHoldsItsLeaseAlone() {
        var cluster = TestCluster(voters: [1])
        cluster.tick(times: 25)
        #expect(cluster[1].hasLeaderLease)
    }

    @Test func leaseLongerThanElectionTimeoutAllowsIsRejected() {
        var options = RaftOptions()
        options.electionTicks = 10
        options.leaseTicks = 9
        #expect(options.problems.count == 1)
        #expect(throws: RestoreError.self) {
            try RaftNode(id: 1, options: options, restoring: .bootstrap(Configuration(voters: [1])))
        }
    }
}

@Suite struct BridgePartitionTests {
    /// n3 no longer hears n1 (and n1 not n3), but n2 hears both: n3 must not be elected while
    /// n1 leads with n2, and at no time may two nodes hold a lease.
    @Test func nodeCutFromLeaderCannotWinWhileLeaderHasQuorum() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.tick(times: 2)
        cluster.cut(1, 3)
        cluster.cut(3, 1)
        for _ in 0..<60 {
            cluster.tick()
            #expect(cluster.nodes.values.filter(\.hasLeaderLease).count <= 1)
        }
        #expect(cluster.leaders == [1])
        #expect(cluster[1].hasLeaderLease)
        #expect(cluster[3].role != .leader)
    }
}

@Suite struct DeposedLeaderTests {
    /// A leader pushed out by a higher term keeps refusing votes as long as the followers that
    /// acknowledged its last round do: its own vote must not complete a rival's quorum early.
    @Test func deposedLeaderWithholdsItsVoteLikeItsFollowers() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.tick(times: 2)
        #expect(cluster[1].hasLeaderLease)
        let term = cluster[1].term
        cluster[1].step(Message(from: 3, to: 1, term: term + 1, kind: .heartbeatResponse(round: 0)))
        #expect(cluster[1].role == .follower)
        #expect(!cluster[1].hasLeaderLease)
        cluster[1].step(Message(from: 3, to: 1, term: term + 2,
                                kind: .voteRequest(lastIndex: 100, lastTerm: term, leadershipTransfer: false)))
        #expect(cluster[1].vote == nil)
        #expect(cluster[1].term == term + 1)
    }

    @Test func leaseShorterThanTwoHeartbeatsIsRejected() {
        var options = RaftOptions()
        options.heartbeatTicks = 4
        options.electionTicks = 10
        options.leaseTicks = 7
        #expect(options.problems.contains { $0.description.contains("twice heartbeatTicks") })
    }
}
