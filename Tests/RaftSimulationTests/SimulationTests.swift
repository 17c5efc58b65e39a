import Testing
import RaftCore
@testable import RaftSimulation

@Suite struct SimulationTests {
    @Test func aFewSeedsRunWithoutViolations() {
        var options = SimulationOptions()
        options.chaosTicks = 600
        for seed: UInt64 in 1...8 {
            let result = Simulation.run(seed: seed, options: options)
            #expect(result.violation == nil, "seed \(seed): \(result.violation ?? "")")
            #expect(result.elections > 0)
            #expect(result.committedEntries > 0)
        }
    }

    @Test func aSeedReplaysExactly() {
        var options = SimulationOptions()
        options.chaosTicks = 500
        options.trace = true
        let first = Simulation.run(seed: 12_345, options: options)
        let second = Simulation.run(seed: 12_345, options: options)
        #expect(first.trace == second.trace)
        #expect(first.trace.count > 100)
        #expect(first.messagesDelivered == second.messagesDelivered)
        #expect(SimulationSummary(results: [first]).line == SimulationSummary(results: [second]).line)
    }

    @Test func differentSeedsExploreDifferentRuns() {
        var options = SimulationOptions()
        options.chaosTicks = 300
        let a = Simulation.run(seed: 1, options: options)
        let b = Simulation.run(seed: 2, options: options)
        #expect(a.faultProfile != b.faultProfile || a.messagesDelivered != b.messagesDelivered)
    }

    @Test func summaryLineHasTheDocumentedShape() {
        let line = SimulationSummary(results: []).line
        #expect(line.hasPrefix("seeds=0 steps=0 violations=0 "))
    }
}

/// The checker must notice each kind of violation it claims to check.
@Suite struct InvariantCheckerTests {
    private func leader(_ id: NodeID, term: Term) -> RaftNode {
        var node = try! RaftNode(id: id, restoring: DurableState(
            hardState: HardState(term: term - 1),
            snapshot: Snapshot(metadata: .init(index: 0, term: 0, configuration: Configuration(voters: [id])), data: []),
            entries: []))
        for _ in 0..<40 where node.role != .leader { node.tick() }
        while node.hasReady { node.advance(node.ready()) }
        return node
    }

    @Test func twoLeadersInOneTermAreReported() {
        var checker = InvariantChecker()
        #expect(checker.leaderElected(1, leader(1, term: 1)) == nil)
        #expect(checker.leaderElected(2, leader(2, term: 1))?.hasPrefix("election safety") == true)
    }

    @Test func differentEntriesAppliedAtOneIndexAreReported() {
        var checker = InvariantChecker()
        let a = Entry(term: 1, index: 1, payload: .application([1]))
        let b = Entry(term: 1, index: 1, payload: .application([2]))
        #expect(checker.applied(a, digest: 1, node: 1) == nil)
        #expect(checker.applied(a, digest: 1, node: 2) == nil)
        #expect(checker.applied(b, digest: 2, node: 3)?.hasPrefix("state machine safety") == true)
    }

    @Test func twoPayloadsUnderOneIndexAndTermAreReported() {
        var checker = InvariantChecker()
        let node = leader(1, term: 1)
        #expect(checker.entriesArriving([Entry(term: 1, index: 1, payload: .noop)], at: node) == nil)
        #expect(checker.entriesArriving([Entry(term: 1, index: 1, payload: .application([1]))], at: node)?
            .hasPrefix("log matching") == true)
    }

    @Test func leaderMissingACommittedEntryIsReported() {
        var checker = InvariantChecker()
        _ = checker.applied(Entry(term: 1, index: 1, payload: .noop), digest: 1, node: 2)
        // A fresh single-node leader's log holds only its own no-op at index 1, of another term.
        let node = leader(3, term: 5)
        #expect(checker.leaderElected(3, node)?.hasPrefix("leader completeness") == true)
    }

    @Test func staleReadIndexIsReported() {
        var checker = InvariantChecker()
        _ = checker.afterProcessing(1, leader(1, term: 1), disks: [:])
        checker.readRequested(9)
        let problem = checker.readConfirmed(ReadState(requestID: 9, index: 0), node: 1)
        #expect(problem?.hasPrefix("linearizability") == true)
    }

    @Test func twoLeaseHoldersAreReported() {
        let nodes: [NodeID: RaftNode] = [1: leader(1, term: 1), 2: leader(2, term: 2)]
        #expect(nodes.values.allSatisfy { $0.hasLeaderLease })
        #expect(InvariantChecker().leases(nodes)?.hasPrefix("lease safety") == true)
    }
}
