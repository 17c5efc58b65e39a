import Testing
@testable import RaftCore

@Suite struct LeaseTests {
    @Test func leaderHoldsLeaseWhileQuorumAcknowledges() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        #expect(cluster[1].role == .leader)
        cluster.tick(times: 3)
        #expect(cluster[1].hasLeaderLease)
        #expect(!cluster[2].hasLeaderLease)
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
