import Foundation
import Lab
import LocalCluster
import Testing
import WorkloadCheck

/// Every scenario once, end to end on its own fresh lab with PostgreSQL and a writing
/// client: what `pgquorum lab scenario NAME` does. Part of the serialized LabTests suite, so no
/// two labs run at once.
extension LabTests {
    @Test(arguments: Scenario.allCases)
    func scenarioKeepsItsGuarantees(_ scenario: Scenario) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgq-scn-\(UUID().uuidString.prefix(8))").path
        let outcome = try await ScenarioRunner(scenario: scenario, trials: 1, directory: directory, binary: LocalCluster.defaultBinary()).run()
        let report = outcome.report
        #expect(outcome.passed, "\(scenario.rawValue): \(outcome.violations)")
        #expect(report.splitBrain.isEmpty)
        #expect(report.finalStateProblem == nil)
        #expect(report.acknowledged > 100, "the client kept writing through the scenario")
        #expect(report.trials.count == 1)
        guard let trial = report.trials.first else { return }
        if scenario.expectsFailover {
            #expect(trial.newPrimary != nil && trial.newPrimary != trial.primaryBefore)
            #expect(trial.failoverMilliseconds != nil)
        }
        if scenario == .partitionHalves || scenario == .asymmetricCut {
            // The primary kept its majority: it stays, and the client barely notices.
            #expect(trial.newPrimary == nil)
            #expect(report.lost.isEmpty)
        }
        if scenario.ridesThrough {
            #expect(trial.newPrimary == nil, "a blip moved the primary")
            #expect(trial.postgresStarts == 0, "a blip restarted PostgreSQL")
        }
        if scenario == .sameCityDisaster {
            // The survivor, forced: the history names the operator's reason.
            #expect(outcome.history.promotions.contains { $0.reason.contains("same-city disaster drill") })
        }
        if scenario == .storageWipe {
            #expect(trial.newPrimary == nil, "wiping a replica moved the primary")
            #expect(outcome.checks.contains { $0.contains("streams again within 10 s") && $0.hasSuffix(": ok") })
        }
        if scenario == .coldRestartStaggered {
            // The old primary alone holds the last writes: the leader waits for its crash
            // recovery and gives it the primary back, instead of promoting a replica without them.
            #expect(outcome.checks.contains { $0.contains("acknowledged writes alone") && $0.hasSuffix(": ok") })
            #expect(report.lost.isEmpty)
            #expect(trial.newPrimary == nil, "the primary moved to a node without its last writes")
        }
        if scenario == .rollingRestart {
            #expect(report.lost.isEmpty, "a graceful restart hands the primary over without losing an acknowledged write")
        }
    }
}
