import Testing
@testable import RaftCore

/// Single-server membership changes (dissertation chapter 4, with the errata fix).
@Suite struct MembershipTests {
    /// A cluster of voters 1–3 with nodes 4 and 5 started as joiners.
    private func clusterWithJoiners() -> TestCluster {
        var cluster = TestCluster(voters: [1, 2, 3])
        for id: NodeID in [4, 5] {
            var options = TestCluster.defaultOptions
            options.randomSeed = id.rawValue
            cluster.nodes[id] = try! RaftNode(id: id, options: options, restoring: .joining)
        }
        cluster.campaign(1)
        return cluster
    }

    @Test func learnerReceivesTheLogButNeitherVotesNorCounts() {
        var cluster = clusterWithJoiners()
        #expect(throws: Never.self) { try cluster[1].proposeMembershipChange(.addLearner(4)).get() }
        cluster.tick(times: 3)
        #expect(cluster[4].configuration.learners == [4])
        #expect(cluster[4].lastIndex == cluster[1].lastIndex)
        #expect(cluster[1].configuration.quorum == 2)
        cluster.tick([4], times: 60)
        #expect(cluster[4].role == .follower)
    }

    @Test func addedVoterCatchesUpAndCountsTowardsQuorum() {
        var cluster = clusterWithJoiners()
        _ = cluster[1].proposeMembershipChange(.addVoter(4))
        cluster.tick(times: 3)
        #expect(cluster[1].configuration.voters == [1, 2, 3, 4])
        #expect(cluster[4].lastIndex == cluster[1].lastIndex)
        // With 4 voters the quorum is 3: the leader and one follower no longer commit.
        cluster.isolate(3)
        cluster.isolate(4)
        let before = cluster[1].commitIndex
        _ = cluster[1].propose([1])
        cluster.deliverAll()
        #expect(cluster[1].commitIndex == before)
    }

    @Test func oneChangeAtATime() {
        var cluster = clusterWithJoiners()
        cluster.isolate(2)
        cluster.isolate(3)
        _ = cluster[1].proposeMembershipChange(.addLearner(4))
        #expect(cluster[1].proposeMembershipChange(.addLearner(5)) == .failure(.membershipChangePending))
    }

    /// The errata fix: a new leader must commit an entry of its own term before it changes the membership.
    @Test func newLeaderMustCommitInItsTermBeforeAChange() {
        var node = try! RaftNode(id: 1, options: TestCluster.defaultOptions,
                                 restoring: .bootstrap(Configuration(voters: [1, 2, 3])))
        node.electByHand()
        #expect(node.role == .leader)
        #expect(node.proposeMembershipChange(.addLearner(4)) == .failure(.leaderNotReady))
    }

    @Test func invalidChangesAreRefused() {
        var cluster = clusterWithJoiners()
        #expect(cluster[1].proposeMembershipChange(.addVoter(2)) == .failure(.invalidMembershipChange("n2 is already a voter")))
        #expect(cluster[1].proposeMembershipChange(.remove(9)) == .failure(.invalidMembershipChange("n9 is not a member")))
    }

    @Test func removedFollowerLearnsItsRemovalAndStopsCampaigning() {
        var cluster = clusterWithJoiners()
        let term = cluster[1].term
        _ = cluster[1].proposeMembershipChange(.remove(3))
        cluster.tick(times: 3)
        #expect(cluster[1].configuration.voters == [1, 2])
        #expect(cluster[3].configuration.voters == [1, 2])
        #expect(cluster[1].progress[3] == nil)
        cluster.tick(times: 60)
        #expect(cluster[3].role == .follower)
        #expect(cluster.leaders == [1])
        #expect(cluster[1].term == term)
    }

    /// A leader that removes itself keeps leading until the change commits, then steps down; the
    /// remaining voters elect a leader among themselves.
    @Test func removedLeaderStepsDownAfterCommit() {
        var cluster = clusterWithJoiners()
        #expect(throws: Never.self) { try cluster[1].proposeMembershipChange(.remove(1)).get() }
        cluster.deliverAll()
        #expect(cluster[1].role == .follower)
        #expect(!cluster[1].hasLeaderLease)
        cluster.tick(times: 60)
        #expect(cluster[2].role == .leader || cluster[3].role == .leader)
        #expect(cluster[1].role == .follower)
    }

    @Test func membershipRevertsWhenTheChangeIsOverwritten() {
        var cluster = clusterWithJoiners()
        cluster.isolate(1)
        _ = cluster[1].proposeMembershipChange(.addVoter(4))
        cluster.process()
        #expect(cluster[1].configuration.voters.contains(4))
        cluster.tick([2, 3], times: 40)
        let newLeader = cluster.leaders.first { $0 != 1 }
        #expect(newLeader != nil)
        cluster.heal()
        cluster.tick(times: 5)
        #expect(cluster[1].configuration.voters == [1, 2, 3])
    }
}

@Suite struct MembershipSafetyTests {
    /// A change whose new voters cannot currently form a quorum would leave the cluster unable
    /// to commit or undo it: refused up front (etcd's strict reconfiguration check).
    @Test func changeWithoutAReachableNewQuorumIsRefused() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.isolate(3)
        cluster.tick([1, 2], times: 12)
        #expect(cluster[1].role == .leader)
        guard case .failure(.invalidMembershipChange(let why)) = cluster[1].proposeMembershipChange(.remove(2)) else {
            Issue.record("removing a live voter while another is down was accepted")
            return
        }
        #expect(why.contains("no reachable quorum") && why.contains("n3"))
        guard case .failure = cluster[1].proposeMembershipChange(.addVoter(4)) else {
            Issue.record("adding an absent voter while another is down was accepted")
            return
        }
        // Removing the dead voter itself is fine: n1 and n2 are the new quorum.
        guard case .success = cluster[1].proposeMembershipChange(.remove(3)) else {
            Issue.record("removing the unreachable voter was refused")
            return
        }
    }

    /// A joining node does not know the membership before the entry that added it; it must not
    /// write a snapshot that claims an empty one.
    @Test func joinerDoesNotSnapshotAnUnknownMembership() throws {
        let configuration = Configuration(voters: [1, 2, 3, 4])
        let entries = [Entry(term: 1, index: 1, payload: .noop),
                       Entry(term: 1, index: 2, payload: .membership(.addVoter(4), result: configuration)),
                       Entry(term: 1, index: 3, payload: .application([1]))]
        var node = try RaftNode(id: 4, restoring: DurableState(hardState: HardState(term: 1, commit: 3),
                                                               snapshot: DurableState.joining.snapshot, entries: entries))
        node.advance(node.ready())
        #expect(node.appliedIndex == 3)
        #expect(node.compact(through: 1, snapshotData: []) == nil)
        #expect(node.compact(through: 2, snapshotData: [])?.metadata.configuration == configuration)
    }
}
