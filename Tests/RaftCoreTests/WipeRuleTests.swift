import RaftCore
import Testing

@Suite struct WipeRuleTests {
    @Test func aQuorumOfTheOthersMustHoldWhatWasCommittedAndWhatTheNodeAcknowledged() {
        let both = ["a": WipeRule.Holding(match: 9, commit: 9), "b": WipeRule.Holding(match: 9, commit: 9)]
        #expect(WipeRule.check(commitIndex: 7, acknowledged: 9, others: both, quorum: 2) == .init(needed: 9, holders: ["a", "b"], safe: true))
        // The node acknowledged more than the others hold: its copy may be needed.
        let behind = ["a": WipeRule.Holding(match: 9, commit: 9), "b": WipeRule.Holding(match: 8, commit: 8)]
        #expect(WipeRule.check(commitIndex: 7, acknowledged: 9, others: behind, quorum: 2) == .init(needed: 9, holders: ["a"], safe: false))
        // In the log is not enough: the holder must know it committed.
        let unaware = ["a": WipeRule.Holding(match: 9, commit: 9), "b": WipeRule.Holding(match: 9, commit: 5)]
        #expect(WipeRule.check(commitIndex: 9, acknowledged: 0, others: unaware, quorum: 2).safe == false)
        // The commit index counts even when the node acknowledged less.
        #expect(WipeRule.check(commitIndex: 9, acknowledged: 3, others: both, quorum: 2).needed == 9)
    }

    @Test func theFreshStateVotedForItselfAboveItsFloor() {
        let state = WipeRule.freshHardState(node: NodeID(3), highestTerm: 12, needed: 40, floorTerm: 11)
        #expect(state == HardState(term: 12, vote: NodeID(3), commit: 0, voteFloorIndex: 40, voteFloorTerm: 11))
    }
}
