import Testing
@testable import RaftCore

/// Disaster recovery after a quorum loss: `forceMembership(voters:)`.
@Suite struct ForcedMembershipTests {
    /// Voters 1–3, node 1 leading with a committed entry; then 1 and 2 are lost.
    private func clusterAfterLosingTwo() -> TestCluster {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        _ = cluster[1].propose([7])
        cluster.deliverAll()
        cluster.isolate(1)
        cluster.isolate(2)
        return cluster
    }

    @Test func theSurvivorLeadsAloneWithALeaseAndCommitsAgain() {
        var cluster = clusterAfterLosingTwo()
        cluster.tick([3], times: 60)
        #expect(cluster[3].role != .leader, "no quorum: no leader")
        let termBefore = cluster[3].term
        let lastBefore = cluster[3].lastIndex
        let index = try? cluster[3].forceMembership(voters: [3]).get()
        #expect(index == lastBefore + 1, "one entry for the whole shrink")
        cluster.process()
        #expect(cluster[3].role == .leader)
        #expect(cluster[3].configuration.voters == [3])
        #expect(cluster[3].term >= termBefore + 2)
        #expect(cluster[3].commitIndex >= lastBefore + 2, "the shrink and the new leader's no-op commit")
        #expect(cluster[3].hasLeaderLease)
        let proposal = try? cluster[3].propose([8]).get()
        cluster.process()
        #expect(proposal.map { cluster[3].commitIndex >= $0 } == true)
    }

    @Test func theShrinkUsesATermNoOldLeaderWrote() {
        var cluster = clusterAfterLosingTwo()
        let oldTerm = cluster[3].term
        let index = try? cluster[3].forceMembership(voters: [3]).get()
        #expect(index.flatMap { cluster[3].term(at: $0) } == oldTerm + 1)
    }

    /// No intermediate membership exists anywhere: the one entry takes the voters straight to the
    /// survivors, and drops the old learners as well.
    @Test func oneEntryGoesStraightToTheSurvivors() throws {
        var cluster = TestCluster(voters: [1, 2, 3, 4, 5])
        cluster.campaign(1)
        cluster.deliverAll()
        for lost: NodeID in [1, 2, 3, 4] { cluster.isolate(lost) }
        cluster.tick([5], times: 60)
        let before = cluster[5].lastIndex
        #expect(try cluster[5].forceMembership(voters: [5]).get() == before + 1)
        #expect(cluster[5].configuration == Configuration(voters: [5]))
    }

    @Test func refusalsSayWhy() {
        var cluster = clusterAfterLosingTwo()
        #expect(cluster[3].forceMembership(voters: [1, 2]) == .failure(.invalidMembershipChange("this node must be one of the survivors")))
        #expect(cluster[3].forceMembership(voters: [3, 9]) == .failure(.invalidMembershipChange("not voters now: n9")))
        #expect(cluster[3].forceMembership(voters: [1, 2, 3]) == .failure(.invalidMembershipChange("every voter survives: nothing to force")))
        var healthy = TestCluster(voters: [1, 2, 3])
        healthy.campaign(1)
        #expect(healthy[1].forceMembership(voters: [1]) == .failure(.invalidMembershipChange("this node leads a quorum; change the membership the normal way")))
    }

    @Test func twoSurvivorsOfFiveElectOneOfThem() {
        var cluster = TestCluster(voters: [1, 2, 3, 4, 5])
        cluster.campaign(1)
        cluster.deliverAll()
        for lost: NodeID in [1, 2, 3] { cluster.isolate(lost) }
        _ = cluster[4].forceMembership(voters: [4, 5])
        cluster.deliverAll()
        cluster.tick([4, 5], times: 5)
        #expect(cluster[4].role == .leader)
        #expect(cluster[5].configuration.voters == [4, 5])
        #expect(cluster[4].commitIndex == cluster[4].lastIndex)
    }
}
