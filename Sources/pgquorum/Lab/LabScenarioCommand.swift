import ArgumentParser
import Foundation
import Lab
import WorkloadCheck

struct LabScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scenario",
        abstract: "Run a failure scenario end to end on a fresh lab while a client writes, then check for lost and split-brain writes (needs root).",
        discussion: """
            A fresh three-node lab with PostgreSQL (primary, secondary1, secondary2) starts in \
            --dir; a client writes a unique row every --interval-ms through libpq's multi-host \
            connection (target_session_attrs=read-write), recording every acknowledged write with \
            its node and time. Each trial injects the fault and waits until the cluster is whole \
            again (a primary, every other node a streaming replica). Then every node is read and \
            the checker reports acknowledged, lost and split-brain writes, unavailability and \
            failover times. Exits 1 on any split-brain write, or on a lost acknowledged write \
            where the guarantee says none may be (see docs/failure-scenarios.md).

            Scenarios:
            \(Scenario.allCases.map { "  \($0.rawValue): \($0.summary)" }.joined(separator: "\n"))
            """
    )

    @Argument(help: "The scenario's name (see below).")
    var name: String

    @Option(help: "How many times to inject the fault.")
    var trials = 1

    @Option(help: "Also write the history and the report as JSON to this file.")
    var json: String?

    @Option(help: "Milliseconds between the client's writes.")
    var intervalMs = 20

    @Option(help: "flapping: milliseconds each isolation of the primary lasts (and each heal between them).")
    var blipMs = 300

    @Option(help: "The lab directory (must not hold a running lab; removed at the end unless --keep).")
    var dir = "scenario-lab"

    @Flag(help: "Leave the lab running afterwards (pgquorum lab down --dir DIR removes it).")
    var keep = false

    func validate() throws {
        guard Scenario(rawValue: name) != nil else {
            throw ValidationError("unknown scenario '\(name)'; one of: \(Scenario.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard (1...100).contains(trials) else { throw ValidationError("--trials must be between 1 and 100") }
        guard (5...1_000).contains(intervalMs) else { throw ValidationError("--interval-ms must be between 5 and 1000") }
        guard (50...10_000).contains(blipMs) else { throw ValidationError("--blip-ms must be between 50 and 10000") }
    }

    func run() async throws {
        guard let scenario = Scenario(rawValue: name) else { throw ExitCode.validationFailure }
        let directory = URL(fileURLWithPath: dir).standardizedFileURL.path
        print("scenario \(scenario.rawValue): \(scenario.summary(blip: .milliseconds(Int64(blipMs))))")
        let runner = ScenarioRunner(scenario: scenario, trials: trials, directory: directory, binary: LabUp.ownBinary(),
                                    interval: .milliseconds(Int64(intervalMs)), blip: .milliseconds(Int64(blipMs)), keep: keep) { line in print("  " + line) }
        let outcome: ScenarioOutcome
        do { outcome = try await runner.run() } catch { throw CommandFailure(error.description) }
        print()
        print(ScenarioTable.render(outcome))
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            do { try encoder.encode(outcome).write(to: URL(fileURLWithPath: json)) } catch {
                throw CommandFailure("cannot write \(json): \(error.localizedDescription)")
            }
            print("history and report written to \(json)")
        }
        if keep { print("the lab is still running: pgquorum lab status --dir \(dir); pgquorum lab down --dir \(dir)") }
        if !outcome.passed { throw ExitCode.failure }
    }
}

/// The scenario's figures as a table for people.
enum ScenarioTable {
    static func render(_ outcome: ScenarioOutcome) -> String {
        let report = outcome.report
        func ms(_ value: Double?) -> String { value.map { String(format: "%.0f ms", $0) } ?? "-" }
        var lines = [row("trial", "fault", "primary before", "new primary", "detection", "failover", "longest gap", "lost", "split-brain", "pg starts")]
        for trial in report.trials {
            lines.append(row("\(trial.number)", trial.fault, trial.primaryBefore ?? "-", trial.newPrimary ?? "-",
                             ms(trial.detectionMilliseconds), ms(trial.failoverMilliseconds), ms(trial.longestGapMilliseconds),
                             "\(trial.lostWrites)", "\(trial.splitBrainWrites)", trial.postgresStarts.map { "\($0)" } ?? "-"))
        }
        func figures(_ what: String, _ values: [Double]) -> String? {
            Percentiles(values).map { String(format: "%@: median %.0f ms, p99 %.0f ms, min %.0f ms, max %.0f ms (n=%d)", what, $0.median, $0.p99, $0.min, $0.max, $0.count) }
        }
        lines.append("")
        if let line = figures("failover (fault → first write acknowledged by the new primary)", report.trials.compactMap(\.failoverMilliseconds)) { lines.append(line) }
        if let line = figures("detection (fault → the cluster committed the new primary)", report.trials.compactMap(\.detectionMilliseconds)) { lines.append(line) }
        if let line = figures("longest write gap per trial", report.trials.map(\.longestGapMilliseconds)) { lines.append(line) }
        let starts = report.trials.compactMap(\.postgresStarts)
        if !starts.isEmpty {
            lines.append("PostgreSQL starts during the trials (fences, crashes, rewinds): \(starts.reduce(0, +)) in \(starts.count) trials, at most \(starts.max() ?? 0) in one")
        }
        let longest = report.unavailable.map(\.milliseconds).max()
        lines.append("acknowledged writes: \(report.acknowledged) (failed attempts \(report.failedAttempts)); lost: \(report.lost.count)"
                     + (outcome.scenario.guaranteesNoLoss ? " (none may be)" : " (asynchronous replication: the unstreamed tail may be)")
                     + "; split-brain: \(report.splitBrain.count)")
        lines.append("unavailability windows (no acknowledged write for > \(Int(max(250, WorkloadChecker.unavailableAfterIntervals * outcome.history.intervalMilliseconds))) ms): "
                     + "\(report.unavailable.count)" + (longest.map { String(format: ", longest %.0f ms", $0) } ?? ""))
        for write in report.splitBrain.prefix(5) {
            lines.append("  split-brain: row \(write.write.id) acknowledged by \(write.write.node) after \(write.supersededBy.node) was promoted in epoch \(write.supersededBy.epoch)")
        }
        for check in outcome.checks { lines.append("check: \(check)") }
        lines.append(outcome.passed ? "result: passed" : "result: FAILED — " + outcome.violations.joined(separator: "; "))
        return lines.joined(separator: "\n")
    }

    private static func row(_ cells: String...) -> String {
        let widths = [5, 42, 14, 12, 10, 10, 11, 5, 11, 9]
        return zip(cells, widths).enumerated().map { index, pair in
            let (cell, width) = pair
            let padding = String(repeating: " ", count: max(0, width - cell.count))
            return index == 1 || index == 2 || index == 3 ? cell + padding : padding + cell
        }.joined(separator: "  ")
    }
}
