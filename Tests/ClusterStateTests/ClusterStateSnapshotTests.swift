import ClusterState
import Testing

/// A state that exercises every field: a bootstrap, promotions, a recorded position and a plan.
private func busyState() -> ClusterState {
    var state = ClusterState()
    state.apply(.bootstrap(systemIdentifier: 7_312_345_678, primary: "primary", unixMilliseconds: 1_700_000_000_000, timeline: 2), term: 1)
    state.apply(.promote(node: "secondary1", epoch: 2, timeline: 3, walPosition: 0x3000_0050, reason: "failover: 主数据中心 unreachable",
                         unixMilliseconds: 1_700_000_100_000), term: 4)
    state.apply(.recordPrimaryPosition(epoch: 2, walPosition: 0x3100_0000))
    state.apply(.planPrimary(node: "primary", reason: "switchover by alice", epoch: 2, force: true))
    return state
}

@Suite struct ClusterStateSnapshotTests {
    @Test func everyFieldSurvivesTheRoundTrip() throws {
        let state = busyState()
        let restored = try ClusterStateSnapshot.decode(ClusterStateSnapshot.encode(state))
        #expect(restored == state)
        #expect(restored.plannedPrimary?.force == true)
        #expect(restored.history.count == 2)
        // And the restored state goes on exactly like the original.
        var original = state, copy = restored
        let next = ClusterState.Command.promote(node: "primary", epoch: 3, timeline: 4, walPosition: 0x3200_0000, reason: "switchover",
                                                unixMilliseconds: 1_700_000_200_000)
        #expect(original.apply(next, term: 5) == nil)
        #expect(copy.apply(next, term: 5) == nil)
        #expect(copy == original)
    }

    @Test func anEmptySnapshotIsTheStateBeforeAnyCommand() throws {
        #expect(try ClusterStateSnapshot.decode([]) == ClusterState())
        #expect(try ClusterStateSnapshot.decode(ClusterStateSnapshot.encode(ClusterState())) == ClusterState())
    }

    @Test func fieldsAppendedByANewerAgentAreIgnored() throws {
        let state = busyState()
        #expect(try ClusterStateSnapshot.decode(ClusterStateSnapshot.encode(state) + [9, 9, 9]) == state)
    }

    @Test func anUnknownVersionOrDamageIsRefusedWithAReason() {
        var newer = ClusterStateSnapshot.encode(busyState())
        newer[0] = 2
        #expect(throws: ClusterStateSnapshot.DecodingError.unsupportedVersion(2)) { try ClusterStateSnapshot.decode(newer) }
        #expect("\(ClusterStateSnapshot.DecodingError.unsupportedVersion(2))".contains("upgrade this agent"))
        let bytes = ClusterStateSnapshot.encode(busyState())
        // Every truncation is refused, never read as a smaller state.
        for length in 1..<bytes.count {
            #expect(throws: (any Error).self) { try ClusterStateSnapshot.decode(Array(bytes.prefix(length))) }
        }
        // A damaged history count does not make the reader reserve memory for it.
        var huge = ClusterStateSnapshot.encode(ClusterState())
        huge.replaceSubrange(38..<42, with: [0xFF, 0xFF, 0xFF, 0x7F])
        #expect(throws: (any Error).self) { try ClusterStateSnapshot.decode(huge) }
    }
}

@Suite struct CompactionScheduleTests {
    private func state(epoch: UInt64) -> ClusterState {
        var state = ClusterState()
        state.apply(.bootstrap(systemIdentifier: 1, primary: "a", unixMilliseconds: 0), term: 1)
        for next in stride(from: 2, through: epoch, by: 1) {
            state.apply(.promote(node: "b", epoch: next, timeline: UInt32(next), walPosition: 0, reason: "", unixMilliseconds: 0), term: next)
        }
        return state
    }

    @Test func checkpointsEveryIntervalAndCompactsOnceTheWindowIsBehindIt() throws {
        var schedule = CompactionSchedule(interval: 10, keep: 4, snapshotIndex: 0)
        for index in UInt64(1)...9 { schedule.applied(index: index, state: state(epoch: 1)) }
        #expect(schedule.checkpoint == nil)
        schedule.applied(index: 10, state: state(epoch: 2))
        let checkpoint = try #require(schedule.checkpoint)
        #expect(checkpoint.index == 10)
        #expect(try ClusterStateSnapshot.decode(checkpoint.data) == state(epoch: 2))
        // Later states do not replace the checkpoint: it is the state as of its index.
        schedule.applied(index: 11, state: state(epoch: 3))
        #expect(schedule.checkpoint == checkpoint)
        #expect(schedule.due(appliedIndex: 13) == nil)
        #expect(schedule.due(appliedIndex: 14) == checkpoint)
        schedule.compacted(through: 10)
        #expect(schedule.checkpoint == nil)
        #expect(schedule.snapshotIndex == 10)
        for index in UInt64(12)...19 { schedule.applied(index: index, state: state(epoch: 3)) }
        #expect(schedule.checkpoint == nil)
        schedule.applied(index: 20, state: state(epoch: 3))
        #expect(schedule.checkpoint?.index == 20)
    }

    @Test func aSnapshotFromTheLeaderOverridesAnOlderCheckpoint() {
        var schedule = CompactionSchedule(interval: 10, keep: 100, snapshotIndex: 0)
        schedule.applied(index: 10, state: state(epoch: 1))
        #expect(schedule.checkpoint?.index == 10)
        schedule.compacted(through: 500)
        #expect(schedule.checkpoint == nil)
        schedule.applied(index: 505, state: state(epoch: 1))
        #expect(schedule.checkpoint == nil)
        schedule.applied(index: 510, state: state(epoch: 1))
        #expect(schedule.checkpoint?.index == 510)
    }

    @Test func aStartAfterASnapshotCountsFromIt() {
        var schedule = CompactionSchedule(interval: 10, keep: 0, snapshotIndex: 30)
        schedule.applied(index: 31, state: state(epoch: 1))
        #expect(schedule.checkpoint == nil)
        schedule.applied(index: 40, state: state(epoch: 1))
        #expect(schedule.due(appliedIndex: 40)?.index == 40)
    }
}
