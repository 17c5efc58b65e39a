import Testing
@testable import RaftCore

@Suite struct SnapshotTests {
    @Test func compactionKeepsTheLogConsistent() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        for byte: UInt8 in 0..<10 { _ = cluster[1].propose([byte]) }
        cluster.deliverAll()
        let applied = cluster[1].appliedIndex
        let snapshot = cluster[1].compact(through: applied, snapshotData: [0xAA])
        #expect(snapshot?.metadata.index == applied)
        #expect(snapshot?.metadata.configuration.voters == [1, 2, 3])
        #expect(cluster[1].term(at: applied - 1) == nil)
        #expect(cluster[1].term(at: applied) == cluster[1].term)
    }

    @Test func compactionBeyondTheAppliedIndexIsRefused() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        #expect(cluster[1].compact(through: cluster[1].appliedIndex + 1, snapshotData: []) == nil)
    }

    @Test func laggingFollowerReceivesTheSnapshot() {
        var cluster = TestCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.isolate(3)
        for byte: UInt8 in 0..<10 { _ = cluster[1].propose([byte]) }
        cluster.deliverAll()
        let applied = cluster[1].appliedIndex
        _ = cluster[1].compact(through: applied, snapshotData: [0xAA, 0xBB])
        cluster.heal()
        cluster.tick(times: 5)
        #expect(cluster.installedSnapshots[3]?.map(\.data) == [[0xAA, 0xBB]])
        #expect(cluster[3].snapshotMetadata.index == applied)
        #expect(cluster[3].lastIndex == cluster[1].lastIndex)
        #expect(cluster[3].commitIndex == cluster[1].commitIndex)
    }
}
