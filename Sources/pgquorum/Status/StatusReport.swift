import Agent
import Foundation

/// What `pgquorum status` learned: each agent's answer (or why it gave none) and the leader view
/// chosen from the answers. Pure: rendering and exit codes are tested without a cluster.
struct StatusReport: Encodable {
    struct Probe: Encodable, Equatable, Sendable {
        var node: String
        var endpoint: String
        /// HTTP status of the agent's answer; nil when it could not be reached.
        var httpStatus: Int?
        var responseMilliseconds: Double?
        var error: String?

        var answered: Bool { httpStatus != nil }

        enum CodingKeys: String, CodingKey {
            case node, endpoint, error
            case httpStatus = "http_status"
            case responseMilliseconds = "response_ms"
        }
    }

    enum Health: String, Encodable {
        /// A leader confirmed by a quorum, every member running.
        case healthy
        /// A leader, but some member is unreachable.
        case degraded
        /// Agents answer but none can name a leader confirmed by a quorum.
        case noLeader = "no-leader"
        /// No agent answered.
        case unreachable

        /// Documented in docs/getting-started.md ("pgquorum status").
        var exitCode: Int32 {
            switch self {
            case .healthy: 0
            case .degraded: 2
            case .noLeader: 3
            case .unreachable: 4
            }
        }
    }

    var health: Health
    var view: ClusterView?
    var probes: [Probe]

    init(view: ClusterView?, probes: [Probe], stale: Bool) {
        self.view = view
        self.probes = probes
        if probes.allSatisfy({ !$0.answered }) {
            health = .unreachable
        } else if let view, view.leader != nil, stale || view.linearizable {
            let allRunning = view.members.allSatisfy { $0.state == "running" }
            // An agent that answers without the leader view (503) cannot reach the leader.
            let allAnswered = probes.allSatisfy { $0.httpStatus == 200 }
            health = allRunning && allAnswered ? .healthy : .degraded
        } else {
            health = .noLeader
        }
    }

    // MARK: - Text, in the seed's layout

    /// `latencyWarningMilliseconds`: the config's `alerts.network_latency_warning_ms` (the seed's
    /// 100 ms); a peer RTT above it is flagged.
    func render(chinese: Bool, members: [MemberView], latencyWarningMilliseconds: Double? = nil) -> String {
        let text = chinese ? Words.chinese : Words.english
        var lines: [String] = ["=== \(text.title) ==="]
        if let view, let leader = view.leader {
            let label = members.first { $0.name == leader }?.label ?? ""
            lines.append("\(text.leader): \(leader)" + (label.isEmpty ? "" : " (\(label))"))
            lines.append("\(text.primary): " + (view.primary ?? text.noPrimary))
            if let pending = view.primaryPending { lines.append("\(text.pending): \(pending)") }
        } else {
            lines.append("\(text.leader): \(text.none)")
        }
        lines.append("\(text.health): \(text.healthName(health))")
        if view?.insecureTrust == true { lines.append("\(text.security): \(text.insecureTrust)") }
        if let view {
            let how = view.linearizable ? text.confirmed : text.stale
            lines.append("\(text.term): \(view.term) | \(text.answeredBy): \(view.answeredBy) (\(how))")
        }
        lines.append("")
        lines.append("--- \(text.servers) ---")
        for member in members {
            // Two sources: the leader view (is the member in contact with the cluster?) and this
            // command's own request to the member's API (nil when it was not asked).
            let probe = probes.first { $0.node == member.name || $0.endpoint == "https://\(member.host):\(member.apiPort)" }
            let inContact = view == nil ? (probe?.answered ?? false) : member.state == "running"
            let apiFine = probe.map { $0.httpStatus == 200 } ?? true
            let icon = inContact && apiFine ? "🟢" : (inContact || probe?.answered == true ? "🟡" : "🔴")
            lines.append("\(icon) \(member.name)" + (member.label.isEmpty ? "" : " (\(member.label))"))
            let kind = member.witness ? text.witness : text.database
            lines.append("   \(text.type): \(kind) · \(text.role(member.role)) | \(text.priority): \(member.priority)")
            lines.append("   \(text.location): \(member.location.isEmpty ? "-" : member.location) (\(member.host))")
            var state = "   \(text.state): " + (inContact ? text.running : text.unreachable)
            if let probe, !probe.answered, inContact {
                state += " (\(text.apiUnreachable))"
            } else if let probe, let status = probe.httpStatus, status != 200 {
                state += " (\(text.apiAnswered) HTTP \(status))"
            }
            if let milliseconds = probe?.responseMilliseconds {
                state += " | \(text.responseTime): \(Int(milliseconds.rounded()))ms"
            }
            if let rtt = member.rttMilliseconds, member.name != view?.answeredBy, member.state == "running" {
                state += " | \(text.rtt): \(String(format: "%.1f", rtt))ms"
                if let limit = latencyWarningMilliseconds, rtt > limit {
                    state += " ⚠ \(text.above) \(Int(limit))ms"
                }
            }
            lines.append(state)
            if let postgres = member.postgres {
                var line = "   PostgreSQL: \(text.role(postgres.role)) · \(text.role(postgres.state)) | TL \(postgres.timeline)"
                if postgres.role == "replica" {
                    line += " | \(text.received) \(postgres.receivedLSN), \(text.replayed) \(postgres.replayedLSN)"
                    if let bytes = postgres.lagBytes {
                        line += " | \(text.lag): \(bytes) B"
                        if let milliseconds = postgres.lagMilliseconds { line += String(format: ", %.1f s", Double(milliseconds) / 1_000) }
                    }
                } else {
                    line += " | LSN \(postgres.receivedLSN)"
                }
                if let error = postgres.lastError { line += " | \(error)" }
                lines.append(line)
            }
        }
        let missing = probes.filter { !$0.answered }
        if !missing.isEmpty {
            lines.append("")
            lines.append("\(text.couldNotReach):")
            for probe in missing { lines.append("   \(probe.node) (\(probe.endpoint)): \(probe.error ?? "?")") }
        }
        let refused = probes.filter { $0.answered && $0.httpStatus != 200 }
        if !refused.isEmpty {
            lines.append("")
            lines.append("\(text.answeredWithError):")
            for probe in refused { lines.append("   \(probe.node) (\(probe.endpoint)): \(probe.error ?? "HTTP \(probe.httpStatus ?? 0)")") }
        }
        return lines.joined(separator: "\n")
    }

    private struct Words {
        var title, leader, primary, noPrimary, none, health, term, answeredBy, confirmed, stale, servers: String
        var type, priority, location, state, responseTime, rtt, running, unreachable, apiUnreachable: String
        var witness, database, couldNotReach, answeredWithError, apiAnswered, above: String
        var received, replayed, lag, pending, security, insecureTrust: String
        var healthNames: [Health: String]
        var roles: [String: String]

        func healthName(_ health: Health) -> String { healthNames[health] ?? health.rawValue }
        func role(_ role: String) -> String { roles[role] ?? role }

        static let english = Words(
            title: "pgquorum cluster status", leader: "Current leader", primary: "Current primary",
            noPrimary: "none (not bootstrapped yet, or no node may be promoted now)", none: "none",
            health: "Cluster health", term: "Term", answeredBy: "answered by", confirmed: "confirmed by a quorum",
            stale: "local view, may be stale", servers: "Servers", type: "Type", priority: "Priority",
            location: "Location", state: "State", responseTime: "Response time", rtt: "Peer RTT",
            running: "running", unreachable: "unreachable", apiUnreachable: "its API did not answer",
            witness: "witness", database: "database server", couldNotReach: "Could not reach",
            answeredWithError: "Answered without the leader view", apiAnswered: "its API answered", above: "network latency above",
            received: "received", replayed: "replayed", lag: "Replication lag", pending: "Primary choice",
            security: "Security", insecureTrust: "PostgreSQL lets the nodes' hosts in without a password (postgresql.insecure_trust); use a passfile outside labs and tests",
            healthNames: [.healthy: "healthy", .degraded: "degraded", .noLeader: "no leader (no quorum)", .unreachable: "unreachable"],
            roles: ["leader": "leader", "follower": "follower", "candidate": "candidate", "pre-candidate": "pre-candidate",
                    "primary": "primary", "replica": "replica", "stopped": "stopped", "streaming": "streaming", "failing": "failing"]
        )

        static let chinese = Words(
            title: "分布式容灾集群状态", leader: "当前领导者", primary: "当前主数据库",
            noPrimary: "无（尚未初始化，或暂无可提升的节点）", none: "无",
            health: "集群健康状态", term: "任期", answeredBy: "应答节点", confirmed: "已经多数派确认",
            stale: "本地视图，可能过时", servers: "数据库服务器", type: "类型", priority: "优先级",
            location: "位置", state: "状态", responseTime: "响应时间", rtt: "节点往返时间",
            running: "正常", unreachable: "不可达", apiUnreachable: "接口未应答",
            witness: "见证节点", database: "数据库服务器", couldNotReach: "无法连接",
            answeredWithError: "应答但未给出领导者视图", apiAnswered: "接口应答", above: "网络延迟超过",
            received: "已接收", replayed: "已回放", lag: "复制延迟", pending: "主库选择",
            security: "安全", insecureTrust: "PostgreSQL 允许各节点主机免密码登录 (postgresql.insecure_trust)；生产环境请使用密码文件",
            healthNames: [.healthy: "健康", .degraded: "降级", .noLeader: "无领导者（无多数派）", .unreachable: "不可达"],
            roles: ["leader": "领导者", "follower": "跟随者", "candidate": "候选者", "pre-candidate": "预候选者",
                    "primary": "主库", "replica": "备库", "stopped": "已停止", "streaming": "流复制中", "failing": "故障", "running": "正常"]
        )
    }
}
