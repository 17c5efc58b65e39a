import Testing
import WorkloadCheck

struct WorkloadCheckerTests {
    typealias Write = WorkloadHistory.Write
    typealias Promotion = WorkloadHistory.Promotion

    /// A write every 20 ms on `node`, ids from `firstID`, server time 1 ms after sending.
    static func writes(on node: String, from start: Double, to end: Double, firstID: Int64) -> [Write] {
        stride(from: start, to: end, by: 20).enumerated().map { offset, at in
            Write(id: firstID + Int64(offset), node: node, sentAt: at, serverAt: at + 1, ackedAt: at + 2)
        }
    }

    static func history(_ writes: [Write], promotions: [Promotion], trials: [WorkloadHistory.Trial] = [],
                        final primary: String? = "b", rows: [String: Set<Int64>]? = nil) -> WorkloadHistory {
        let all = Set(writes.map(\.id))
        return WorkloadHistory(writes: writes, failedAttempts: 0, promotions: promotions, trials: trials, finalPrimary: primary,
                               finalRows: rows ?? ["a": all, "b": all, "c": all], intervalMilliseconds: 20)
    }

    static let promotions = [Promotion(node: "a", epoch: 1, at: 0, reason: "bootstrap"),
                             Promotion(node: "b", epoch: 2, at: 2_000, reason: "failover")]

    @Test func aCleanFailoverHasNoSplitBrainAndNoLoss() {
        let writes = Self.writes(on: "a", from: 10, to: 1_000, firstID: 1) + Self.writes(on: "b", from: 2_100, to: 3_000, firstID: 1_000)
        let trial = WorkloadHistory.Trial(number: 1, fault: "kill a", at: 1_000, primaryBefore: "a", endedAt: 3_000)
        let report = WorkloadChecker.check(Self.history(writes, promotions: Self.promotions, trials: [trial]))
        #expect(report.splitBrain.isEmpty)
        #expect(report.lost.isEmpty)
        #expect(report.acknowledged == writes.count)
        #expect(report.trials.count == 1)
        #expect(report.trials[0].newPrimary == "b")
        #expect(report.trials[0].detectionMilliseconds == 1_000)
        #expect(report.trials[0].failoverMilliseconds == 1_102)
        #expect(report.unavailable.count == 1)
        #expect(report.unavailable[0].from == 992 && report.unavailable[0].to == 2_102)
    }

    @Test func aWriteOnTheOldPrimaryAfterTheNewPromotionIsSplitBrain() {
        var writes = Self.writes(on: "a", from: 10, to: 1_000, firstID: 1) + Self.writes(on: "b", from: 2_100, to: 3_000, firstID: 1_000)
        writes.append(Write(id: 5_000, node: "a", sentAt: 2_400, serverAt: 2_401, ackedAt: 2_402))
        let report = WorkloadChecker.check(Self.history(writes, promotions: Self.promotions))
        #expect(report.splitBrain.map(\.write.id) == [5_000])
        #expect(report.splitBrain.first?.supersededBy.node == "b")
    }

    @Test func aWriteThatRanBeforeThePromotionButWasAcknowledgedAfterIsNotSplitBrain() {
        // The server ran it before the proposal: the commit may well precede it too.
        let writes = [Write(id: 1, node: "a", sentAt: 1_990, serverAt: 1_995, ackedAt: 2_010)]
        #expect(WorkloadChecker.check(Self.history(writes, promotions: Self.promotions)).splitBrain.isEmpty)
    }

    @Test func anAcknowledgedWriteMissingFromTheFinalPrimaryIsLost() {
        let writes = Self.writes(on: "a", from: 10, to: 200, firstID: 1)
        var rows = Set(writes.map(\.id))
        rows.remove(5)
        let report = WorkloadChecker.check(Self.history(writes, promotions: Self.promotions, rows: ["b": rows, "a": rows]))
        #expect(report.lost.map(\.id) == [5])
        #expect(report.replicasBehind.isEmpty)
    }

    @Test func aReplicaLackingRowsOfThePrimaryIsBehindNotLost() {
        let writes = Self.writes(on: "a", from: 10, to: 200, firstID: 1)
        let all = Set(writes.map(\.id))
        let report = WorkloadChecker.check(Self.history(writes, promotions: Self.promotions, rows: ["b": all, "c": all.subtracting([1, 2])]))
        #expect(report.lost.isEmpty)
        #expect(report.replicasBehind == ["c": 2])
    }

    @Test func withoutAFinalPrimaryTheCheckSaysWhy() {
        let report = WorkloadChecker.check(Self.history(Self.writes(on: "a", from: 0, to: 100, firstID: 1), promotions: Self.promotions, final: nil))
        #expect(report.finalStateProblem != nil)
        let unreadable = WorkloadChecker.check(Self.history([], promotions: Self.promotions, final: "b", rows: ["a": []]))
        #expect(unreadable.finalStateProblem == "the final primary b could not be read")
    }

    @Test func aFaultThatKeepsThePrimaryHasNoFailoverFigures() {
        let writes = Self.writes(on: "a", from: 0, to: 3_000, firstID: 1)
        let trial = WorkloadHistory.Trial(number: 1, fault: "isolate c", at: 1_000, primaryBefore: "a", endedAt: 2_000)
        let report = WorkloadChecker.check(Self.history(writes, promotions: [Self.promotions[0]], trials: [trial], final: "a"))
        #expect(report.trials[0].newPrimary == nil)
        #expect(report.trials[0].failoverMilliseconds == nil)
        #expect(report.trials[0].longestGapMilliseconds == 20)
        #expect(report.unavailable.isEmpty)
    }

    @Test func lostWritesAreCountedInTheTrialTheyBelongTo() {
        let writes = Self.writes(on: "a", from: 0, to: 2_000, firstID: 1)
        let trials = [WorkloadHistory.Trial(number: 1, fault: "x", at: 100, primaryBefore: "a", endedAt: 1_000),
                      WorkloadHistory.Trial(number: 2, fault: "y", at: 1_100, primaryBefore: "a", endedAt: 2_000)]
        let rows = Set(writes.map(\.id)).subtracting([writes[60].id])   // acknowledged at 1,202
        let report = WorkloadChecker.check(Self.history(writes, promotions: [Self.promotions[0]], trials: trials, final: "a", rows: ["a": rows]))
        #expect(report.trials.map(\.lostWrites) == [0, 1])
    }

    @Test func percentilesUseTheNearestRank() {
        let figures = Percentiles((1...100).map(Double.init))
        #expect(figures?.median == 50)
        #expect(figures?.p99 == 99)
        #expect(figures?.max == 100)
        #expect(Percentiles([]) == nil)
        #expect(Percentiles([7])?.p99 == 7)
    }
}
