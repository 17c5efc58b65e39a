import Foundation
import Agent
import Testing
@testable import pgquorum

private func member(_ name: String, role: String, state: String = "running", rtt: Double? = 1.5) -> MemberView {
    MemberView(name: name, label: "Site \(name)", location: "华东", host: "10.0.0.\(name.count)", apiPort: 8008,
               priority: 0, witness: true, role: role, state: state, lastContactMilliseconds: nil,
               rttMilliseconds: rtt, matchIndex: nil)
}

private func view(leader: String?, linearizable: Bool = true, members: [MemberView]) -> ClusterView {
    ClusterView(cluster: "c", answeredBy: leader ?? "b", linearizable: linearizable, leader: leader, term: 4,
                epoch: 0, primary: nil, commitIndex: 9, members: members)
}

private func probe(_ node: String, answered: Bool = true) -> StatusReport.Probe {
    StatusReport.Probe(node: node, endpoint: "https://h:1", httpStatus: answered ? 200 : nil,
                       responseMilliseconds: answered ? 3.4 : nil, error: answered ? nil : "connection refused")
}

@Suite struct StatusReportTests {
    let members = [member("a", role: "leader"), member("b", role: "follower"), member("c", role: "follower")]

    @Test func healthAndExitCodes() {
        let all = ["a", "b", "c"].map { probe($0) }
        #expect(StatusReport(view: view(leader: "a", members: members), probes: all, stale: false).health == .healthy)
        var down = members
        down[2].state = "unreachable"
        let oneMissing = [probe("a"), probe("b"), probe("c", answered: false)]
        #expect(StatusReport(view: view(leader: "a", members: down), probes: oneMissing, stale: false).health == .degraded)
        #expect(StatusReport(view: nil, probes: all, stale: false).health == .noLeader)
        // A stale view names a leader nobody confirmed: fine with --stale, not without.
        let unconfirmed = view(leader: "a", linearizable: false, members: members)
        #expect(StatusReport(view: unconfirmed, probes: all, stale: false).health == .noLeader)
        #expect(StatusReport(view: unconfirmed, probes: all, stale: true).health == .healthy)
        #expect(StatusReport(view: nil, probes: ["a", "b"].map { probe($0, answered: false) }, stale: false).health == .unreachable)
        // A member that answers 503 although the leader sees it: it cannot reach the leader.
        var refusing = probe("c")
        refusing.httpStatus = 503
        #expect(StatusReport(view: view(leader: "a", members: members), probes: [probe("a"), probe("b"), refusing], stale: false).health == .degraded)
        #expect([StatusReport.Health.healthy, .degraded, .noLeader, .unreachable].map(\.exitCode) == [0, 2, 3, 4])
    }

    @Test func englishLayoutFollowsTheSeed() {
        let report = StatusReport(view: view(leader: "a", members: members), probes: ["a", "b", "c"].map { probe($0) }, stale: false)
        let text = report.render(chinese: false, members: members)
        #expect(text.contains("Current leader: a (Site a)"))
        #expect(text.contains("Cluster health: healthy"))
        #expect(text.contains("🟢 b (Site b)"))
        #expect(text.contains("   Type: witness · follower | Priority: 0"))
        #expect(text.contains("   Location: 华东 (10.0.0.1)"))
        #expect(text.contains("   State: running | Response time: 3ms | Peer RTT: 1.5ms"))
        #expect(!text.contains("Could not reach"))
    }

    /// While the leader waits before choosing a primary, status says for what; the JSON field
    /// goes both ways and is absent otherwise.
    @Test func aPendingPrimaryChoiceIsShown() throws {
        var waiting = view(leader: "a", members: members)
        let why = "waiting for b holds WAL to 0/5000 on timeline 2, ahead of c at 0/4000, but its PostgreSQL cannot serve yet: starting (waiting up to 5000 ms)"
        waiting.primaryPending = why
        let probes = ["a", "b", "c"].map { probe($0) }
        #expect(StatusReport(view: waiting, probes: probes, stale: false).render(chinese: false, members: members).contains("Primary choice: " + why))
        #expect(StatusReport(view: waiting, probes: probes, stale: false).render(chinese: true, members: members).contains("主库选择: " + why))
        #expect(!StatusReport(view: view(leader: "a", members: members), probes: probes, stale: false).render(chinese: false, members: members).contains("Primary choice"))
        let json = try JSONEncoder().encode(waiting)
        #expect(String(decoding: json, as: UTF8.self).contains("\"primary_pending\""))
        #expect(try JSONDecoder().decode(ClusterView.self, from: json).primaryPending == why)
        let without = try JSONEncoder().encode(view(leader: "a", members: members))
        #expect(!String(decoding: without, as: UTF8.self).contains("primary_pending"))
    }

    @Test func chineseLayoutAndUnreachableNodes() {
        var down = members
        down[2].state = "unreachable"
        let probes = [probe("a"), probe("b"), probe("c", answered: false)]
        let text = StatusReport(view: view(leader: "a", members: down), probes: probes, stale: false).render(chinese: true, members: down)
        #expect(text.contains("=== 分布式容灾集群状态 ==="))
        #expect(text.contains("当前领导者: a (Site a)"))
        #expect(text.contains("集群健康状态: 降级"))
        #expect(text.contains("🔴 c (Site c)"))
        #expect(text.contains("状态: 不可达"))
        #expect(text.contains("无法连接:"))
        #expect(text.contains("c (https://h:1): connection refused"))
    }

    @Test func membersNotAskedAndRefusalsAreToldApart() {
        // Only "a" was asked (--endpoint): b and c take their state from the view alone.
        let onlyA = [probe("a")]
        let text = StatusReport(view: view(leader: "a", members: members), probes: onlyA, stale: false).render(chinese: false, members: members)
        #expect(!text.contains("did not answer"))
        #expect(text.contains("🟢 b (Site b)"))
        // An agent that answers 503 (no leader) is up, not unreachable.
        let refusing = StatusReport.Probe(node: "b", endpoint: "https://h:2", httpStatus: 503, responseMilliseconds: 2,
                                          error: "HTTP 503: no leader known to b")
        let noLeader = StatusReport(view: nil, probes: [refusing], stale: false)
        let members = [member("b", role: "unknown", state: "unknown")]
        let lines = noLeader.render(chinese: false, members: members)
        #expect(lines.contains("🟡 b (Site b)"))
        #expect(lines.contains("State: running (its API answered HTTP 503)"))
        #expect(lines.contains("Answered without the leader view:"))
        #expect(lines.contains("no leader known to b"))
    }

    @Test func peerLatencyAboveTheAlertThresholdIsFlagged() {
        let slow = [member("a", role: "leader"), member("b", role: "follower", rtt: 140), member("c", role: "follower", rtt: 40)]
        let report = StatusReport(view: view(leader: "a", members: slow), probes: ["a", "b", "c"].map { probe($0) }, stale: false)
        let text = report.render(chinese: false, members: slow, latencyWarningMilliseconds: 100)
        #expect(text.contains("Peer RTT: 140.0ms ⚠ network latency above 100ms"))
        #expect(text.contains("Peer RTT: 40.0ms\n") || text.hasSuffix("Peer RTT: 40.0ms"))
        #expect(report.render(chinese: true, members: slow, latencyWarningMilliseconds: 100).contains("⚠ 网络延迟超过 100ms"))
    }

    @Test func languageFollowsLocaleVariables() {
        #expect(StatusCommand.prefersChinese(["LANG": "zh_CN.UTF-8"]))
        #expect(!StatusCommand.prefersChinese(["LANG": "en_US.UTF-8"]))
        #expect(!StatusCommand.prefersChinese(["LC_ALL": "C", "LANG": "zh_CN.UTF-8"]))
        #expect(StatusCommand.prefersChinese(["LC_MESSAGES": "zh_TW.UTF-8", "LANG": "en_US.UTF-8"]))
        #expect(!StatusCommand.prefersChinese([:]))
    }

    @Test func endpointParsing() {
        #expect(StatusCommand.parse(endpoint: "https://127.0.0.1:8401")! == ("127.0.0.1", 8401))
        #expect(StatusCommand.parse(endpoint: "http://127.0.0.1:8401") == nil)
        #expect(StatusCommand.parse(endpoint: "127.0.0.1:8401") == nil)
        #expect(StatusCommand.parse(endpoint: "https://host") == nil)
    }
}
