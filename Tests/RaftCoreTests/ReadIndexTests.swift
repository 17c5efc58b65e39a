import Testing
@testable import RaftCore

@Suite struct ReadIndexTests {
    @Test func readIsConfirmedAfterAQuorumAcknowledgesANewRound() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        _ = cluster[1].propose([1])
        cluster.deliverAll()
        let commit = cluster[1].commitIndex
        #expect(throws: Never.self) { try cluster[1].readIndex(requestID: 42).get() }
        cluster.process()
        #expect(cluster.reads[1, default: []].isEmpty)
        cluster.deliverAll()
        #expect(cluster.reads[1] == [ReadState(requestID: 42, index: commit)])
    }

    @Test func isolatedLeaderNeverConfirmsARead() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.isolate(1)
        _ = cluster[1].readIndex(requestID: 7)
        cluster.tick([1], times: 5)
        #expect(cluster.reads[1, default: []].isEmpty)
    }

    @Test func followerRefusesReadIndex() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        #expect(throws: ProposalError.notLeader(leader: 1)) { try cluster[2].readIndex(requestID: 1).get() }
    }

    @Test func readWaitsForTheLeadersFirstCommit() {
        var node = try! RaftNode(id: 1, options: TestCluster.defaultOptions,
                                 restoring: .bootstrap(Configuration(voters: [1, 2, 3])))
        node.electByHand()
        #expect(node.role == .leader)
        #expect(throws: Never.self) { try node.readIndex(requestID: 5).get() }
        node.advance(node.ready())
        // Nothing is committed in term 1 yet: no heartbeat round is started for the read.
        node.step(Message(from: 2, to: 1, term: 1, kind: .heartbeatResponse(round: 1)))
        #expect(node.ready().readStates.isEmpty)
        // The no-op commits; now the read gets its own round.
        node.step(Message(from: 2, to: 1, term: 1, kind: .appendResponse(.accepted(matchIndex: 1), round: 1)))
        let ready = node.ready()
        #expect(ready.readStates.isEmpty)
        let readRound = ready.messages.compactMap { message -> UInt64? in
            if case .heartbeat(_, let round) = message.kind { round } else { nil }
        }.max()
        node.advance(ready)
        node.step(Message(from: 2, to: 1, term: 1, kind: .heartbeatResponse(round: readRound ?? 0)))
        #expect(node.ready().readStates == [ReadState(requestID: 5, index: 1)])
    }
}
