import Testing
@testable import RaftCore

@Suite struct RestoreTests {
    private let configuration = Configuration(voters: [1, 2, 3])
    private var emptySnapshot: Snapshot { Snapshot(metadata: .init(index: 0, term: 0, configuration: configuration), data: []) }

    @Test func restartKeepsTermVoteLogAndCommit() throws {
        let entries = [Entry(term: 1, index: 1, payload: .noop), Entry(term: 2, index: 2, payload: .application([1]))]
        let node = try RaftNode(id: 2, restoring: DurableState(
            hardState: HardState(term: 3, vote: 1, commit: 2), snapshot: emptySnapshot, entries: entries))
        #expect(node.term == 3 && node.vote == 1)
        #expect(node.lastIndex == 2 && node.commitIndex == 2)
        #expect(node.ready().committedEntries == entries)
    }

    @Test func logWithAGapIsRefused() {
        let entries = [Entry(term: 1, index: 1, payload: .noop), Entry(term: 1, index: 3, payload: .noop)]
        #expect(throws: RestoreError.inconsistentState("entry 3 follows 1; the log has a gap")) {
            try RaftNode(id: 1, restoring: DurableState(hardState: HardState(term: 1), snapshot: emptySnapshot, entries: entries))
        }
    }

    @Test func logTermAboveHardStateTermIsRefused() {
        let entries = [Entry(term: 4, index: 1, payload: .noop)]
        #expect(throws: RestoreError.self) {
            try RaftNode(id: 1, restoring: DurableState(hardState: HardState(term: 1), snapshot: emptySnapshot, entries: entries))
        }
    }

    @Test func readyReportsOnlyWhatChanged() throws {
        var node = try RaftNode(id: 1, options: TestCluster.defaultOptions, restoring: .bootstrap(configuration))
        #expect(!node.hasReady)
        node.tick()
        #expect(!node.hasReady)
    }
}
