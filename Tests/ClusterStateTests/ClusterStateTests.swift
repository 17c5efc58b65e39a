import ClusterState
import Testing

private func node(_ name: String, healthy: Bool = true, noFailover: Bool = false, timeline: UInt32 = 2,
                  wal: UInt64, priority: Int, location: String = "华东") -> CandidateReport {
    CandidateReport(node: name, healthy: healthy, noFailover: noFailover, timeline: timeline, walPosition: wal,
                    priority: priority, location: location)
}

@Suite struct FailoverPolicyTests {
    @Test func highestWALWinsThenPriorityThenLocation() {
        #expect(FailoverPolicy.best([node("a", wal: 100, priority: 2), node("b", wal: 200, priority: 1)], lastPrimaryPosition: 200) == "b")
        #expect(FailoverPolicy.best([node("a", wal: 200, priority: 2), node("b", wal: 200, priority: 1)], lastPrimaryPosition: 200) == "b")
        #expect(FailoverPolicy.best([node("a", wal: 200, priority: 1, location: "华南"), node("b", wal: 200, priority: 1, location: "华东")], lastPrimaryPosition: 0) == "b")
        #expect(FailoverPolicy.best([node("b", wal: 200, priority: 1), node("a", wal: 200, priority: 1)], lastPrimaryPosition: 0) == "a")
    }

    @Test func ineligibleNodesAreNeverChosen() {
        #expect(FailoverPolicy.best([node("a", healthy: false, wal: 900, priority: 0), node("b", wal: 100, priority: 1)], lastPrimaryPosition: 0) == "b")
        #expect(FailoverPolicy.best([node("a", noFailover: true, wal: 900, priority: 0), node("b", wal: 100, priority: 1)], lastPrimaryPosition: 0) == "b")
        #expect(FailoverPolicy.best([node("a", timeline: 1, wal: 900, priority: 0), node("b", timeline: 2, wal: 100, priority: 1)], lastPrimaryPosition: 0) == "b")
        #expect(FailoverPolicy.best([node("a", healthy: false, wal: 1, priority: 0)], lastPrimaryPosition: 0) == nil)
        #expect(FailoverPolicy.best([], lastPrimaryPosition: 0) == nil)
    }

    @Test func theLagGuardRefusesNodesTooFarBehind() {
        let mib: UInt64 = 1 << 20
        #expect(FailoverPolicy.best([node("a", wal: 10 * mib - mib, priority: 0)], lastPrimaryPosition: 10 * mib) == "a")
        #expect(FailoverPolicy.best([node("a", wal: 10 * mib - mib - 1, priority: 0)], lastPrimaryPosition: 10 * mib) == nil)
        #expect(FailoverPolicy.best([node("a", wal: 5, priority: 0)], lastPrimaryPosition: 100, maximumLagBytes: 10) == nil)
        let verdicts = FailoverPolicy.evaluate([node("a", wal: 5, priority: 0), node("b", healthy: false, wal: 100, priority: 1)],
                                               lastPrimaryPosition: 100, maximumLagBytes: 10).map(\.verdict)
        #expect(verdicts == [.tooFarBehind(bytes: 95, limit: 10), .unhealthy])
        #expect(verdicts[0].description == "95 bytes behind the last primary position (limit 10)")
    }
}

@Suite struct ClusterStateTests {
    @Test func bootstrapThenPromotionsInEpochOrder() {
        var state = ClusterState()
        #expect(state.apply(.promote(node: "b", epoch: 1, timeline: 2, walPosition: 0, reason: "x", unixMilliseconds: 0)) == .notBootstrapped)
        #expect(state.apply(.bootstrap(systemIdentifier: 7, primary: "a", unixMilliseconds: 1)) == nil)
        #expect(state.primary == "a" && state.epoch == 1 && state.systemIdentifier == 7)
        #expect(state.apply(.bootstrap(systemIdentifier: 8, primary: "b", unixMilliseconds: 2)) == .alreadyBootstrapped)
        #expect(state.apply(.promote(node: "b", epoch: 3, timeline: 2, walPosition: 50, reason: "x", unixMilliseconds: 3)) == .wrongEpoch(proposed: 3, expected: 2))
        #expect(state.apply(.promote(node: "b", epoch: 2, timeline: 2, walPosition: 50, reason: "primary down", unixMilliseconds: 3)) == nil)
        #expect(state.primary == "b" && state.epoch == 2 && state.lastPrimaryPosition == 50)
        // A second promotion for the same epoch (a stale leader's) is refused everywhere.
        #expect(state.apply(.promote(node: "c", epoch: 2, timeline: 2, walPosition: 60, reason: "x", unixMilliseconds: 4)) == .wrongEpoch(proposed: 2, expected: 3))
        #expect(state.history.map(\.primary) == ["a", "b"])
        #expect(state.history.map(\.reason) == ["bootstrap", "primary down"])
    }

    @Test func primaryPositionsOnlyGrowAndOnlyForTheCurrentEpoch() {
        var state = ClusterState()
        _ = state.apply(.bootstrap(systemIdentifier: 7, primary: "a", unixMilliseconds: 1))
        #expect(state.apply(.recordPrimaryPosition(epoch: 1, walPosition: 500)) == nil)
        #expect(state.apply(.recordPrimaryPosition(epoch: 1, walPosition: 400)) == nil)
        #expect(state.lastPrimaryPosition == 500)
        #expect(state.apply(.recordPrimaryPosition(epoch: 0, walPosition: 900)) == .staleEpoch(0, current: 1))
        #expect(state.lastPrimaryPosition == 500)
    }
}

@Suite struct CommandCodecTests {
    static let commands: [ClusterState.Command] = [
        .bootstrap(systemIdentifier: 7_312_345_678_901_234_567, primary: "primary", unixMilliseconds: 1_795_000_000_000, timeline: 2),
        .promote(node: "secondary1", epoch: 2, timeline: 2, walPosition: 0x16_B374_D848, reason: "灾难恢复", unixMilliseconds: 5),
        .recordPrimaryPosition(epoch: 9, walPosition: .max),
    ]

    @Test func roundTrips() throws {
        for command in Self.commands {
            #expect(try CommandCodec.decode(CommandCodec.encode(command)) == command)
            // A newer agent may append fields: trailing bytes are ignored.
            #expect(try CommandCodec.decode(CommandCodec.encode(command) + [1, 2, 3]) == command)
        }
    }

    @Test func damagedBytesAreRefusedNeverGuessed() {
        #expect(throws: CommandCodec.DecodingError.unsupportedVersion(0)) { try CommandCodec.decode([0, 1]) }
        #expect(throws: CommandCodec.DecodingError.unknownKind(99)) { try CommandCodec.decode([1, 99]) }
        #expect(throws: CommandCodec.DecodingError.self) { try CommandCodec.decode([]) }
        // Every truncation of every command fails cleanly (down from the bootstrap's first
        // layout, without the timeline that was appended later).
        for command in Self.commands {
            let bytes = CommandCodec.encode(command)
            let whole: Int
            if case .bootstrap = command { whole = bytes.count - 4 } else { whole = bytes.count }
            for length in 0..<whole {
                #expect(throws: CommandCodec.DecodingError.self) { try CommandCodec.decode(Array(bytes.prefix(length))) }
            }
        }
        // A name that is not UTF-8.
        var bad = CommandCodec.encode(.bootstrap(systemIdentifier: 1, primary: "ab", unixMilliseconds: 0))
        bad[bad.count - 13] = 0xFF
        #expect(throws: CommandCodec.DecodingError.self) { try CommandCodec.decode(bad) }
    }

    /// A bootstrap entry of the first layout (no timeline) still reads, as timeline 1.
    @Test func bootstrapEntriesWithoutATimelineReadAsTimelineOne() throws {
        let bytes = CommandCodec.encode(.bootstrap(systemIdentifier: 5, primary: "p", unixMilliseconds: 9, timeline: 2))
        #expect(try CommandCodec.decode(Array(bytes.dropLast(4))) == .bootstrap(systemIdentifier: 5, primary: "p", unixMilliseconds: 9, timeline: 1))
        var state = ClusterState()
        state.apply(.bootstrap(systemIdentifier: 5, primary: "p", unixMilliseconds: 9, timeline: 2))
        #expect(state.history.first?.timeline == 2)
    }
}
