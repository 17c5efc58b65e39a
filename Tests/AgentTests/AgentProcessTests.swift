import Agent
import LocalCluster
import ClusterCertificates
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Real agent processes on loopback (mutual TLS, real disks, real signals). Serialized: each test
/// runs its own cluster, and timing-sensitive elections should not share two cores with another.
@Suite(.serialized) struct AgentProcessTests {
    @Test func threeAgentsElectOneLeaderAndEveryNodeNamesIt() async throws {
        let cluster = try LocalCluster(nodes: 3)
        defer { cluster.tearDown() }
        try cluster.startAll()
        // A generous wait: this test starts with the run, while synchronous tests (initdb and
        // the like) hold both threads of the cooperative pool, which this loop needs too.
        let elected = try #require(await cluster.agreedLeader(within: 60))

        // The linearizable view, asked of every node (followers forward to the leader), agrees.
        for name in cluster.names {
            let view = try #require(await cluster.view(of: name, stale: false), "no linearizable view from \(name)")
            #expect(view.linearizable)
            #expect(view.leader == elected.name)
            #expect(view.answeredBy == elected.name)
            #expect(view.members.map(\.name) == cluster.names)
            #expect(view.members.allSatisfy { $0.state == "running" })
        }
        // GET /leader: 200 on the leader only.
        for name in cluster.names {
            #expect(await cluster.status(of: name, path: "/leader") == (name == elected.name ? 200 : 503))
            #expect(await cluster.status(of: name, path: "/health") == 200)
            #expect(await cluster.status(of: name, path: "/cluster?stale=maybe") == 400)
            #expect(await cluster.status(of: name, path: "/no-such-endpoint") == 404)
        }

        // `pgquorum status` names the same leader, from the config and from each endpoint.
        let status = try cluster.run(["status", "--config", cluster.configPath])
        #expect(status.status == 0, "\(status.output)")
        #expect(status.output.contains("Current leader: \(elected.name)"))
        #expect(status.output.contains("Cluster health: healthy"))
        for name in cluster.names {
            let port = try #require(cluster.apiPorts[name])
            let one = try cluster.run(["status", "--endpoint", "https://127.0.0.1:\(port)", "--ca", cluster.directory + "/tls/ca.crt", "--json"])
            #expect(one.status == 0, "\(one.output)")
            let leaderLine = one.output.split(separator: "\n").first { $0.contains("\"leader\"") }
            #expect(leaderLine?.contains("\"\(elected.name)\"") == true, "\(one.output)")
        }
        let chinese = try cluster.run(["status", "--config", cluster.configPath], environment: ["LANG": "zh_CN.UTF-8"])
        #expect(chinese.output.contains("当前领导者: \(elected.name)"))
        #expect(chinese.output.contains("集群健康状态: 健康"))

        // Each node's own view sees every member running: followers know each other by pings.
        let deadline = ContinuousClock.now + .seconds(10)
        var lastViews: [ClusterView] = []
        repeat {
            lastViews = []
            for name in cluster.names { if let view = await cluster.view(of: name) { lastViews.append(view) } }
            if lastViews.count == 3, lastViews.allSatisfy({ $0.members.allSatisfy { $0.state == "running" } }) { break }
            try await Task.sleep(for: .milliseconds(200))
        } while ContinuousClock.now < deadline
        #expect(lastViews.count == 3 && lastViews.allSatisfy { $0.members.allSatisfy { $0.state == "running" } }, "\(lastViews)")

        // A second agent for a node that already runs is refused before it touches the state.
        let second = try cluster.run(["agent", "--config", cluster.configPath, "--node", cluster.names[1]], includeErrors: true)
        #expect(second.status != 0)
        #expect(second.output.contains("already running"), "\(second.output)")
    }

    @Test func anAgentNeedsOnlyTheCAAndItsOwnKeyPair() async throws {
        let cluster = try LocalCluster(nodes: 3)
        defer { cluster.tearDown() }
        // Every machine gets ca.crt and its own pair only (ca.key stays offline).
        for name in cluster.names {
            let machine = cluster.directory + "/tls-\(name)"
            try FileManager.default.createDirectory(atPath: machine, withIntermediateDirectories: true)
            for file in ["ca.crt", "\(name).crt", "\(name).key"] {
                try FileManager.default.copyItem(atPath: cluster.directory + "/tls/" + file, toPath: machine + "/" + file)
            }
        }
        for name in cluster.names { try cluster.start(name, tlsDirectory: cluster.directory + "/tls-\(name)") }
        #expect(await cluster.agreedLeader() != nil, "\(cluster.names.map { cluster.log(of: $0) })")
    }

    @Test func killingTheLeaderElectsAnotherAndTheRestartedNodeRejoinsQuietly() async throws {
        let cluster = try LocalCluster(nodes: 3)
        defer { cluster.tearDown() }
        try cluster.startAll()
        let first = try #require(await cluster.agreedLeader())

        cluster.stop(first.name, signal: SIGKILL)
        let survivors = cluster.names.filter { $0 != first.name }
        let second = try #require(await cluster.agreedLeader(among: survivors))
        #expect(second.name != first.name)
        #expect(second.term > first.term)

        let degraded = try cluster.run(["status", "--config", cluster.configPath])
        #expect(degraded.status == 2, "\(degraded.output)")
        #expect(degraded.output.contains("Could not reach"))
        #expect(degraded.output.contains(first.name))

        // The killed node restarts from its disk and follows; the leader and term do not change
        // (PreVote and leader contact keep the returning node from disrupting the cluster).
        try cluster.start(first.name)
        let rejoined = try #require(await cluster.agreedLeader(among: cluster.names))
        #expect(rejoined.name == second.name)
        #expect(rejoined.term == second.term)
        try await Task.sleep(for: .seconds(2))
        let later = try #require(await cluster.agreedLeader(among: cluster.names))
        #expect(later.name == second.name && later.term == second.term)
    }

    @Test func sigtermOfTheLeaderHandsLeadershipOverBeforeExit() async throws {
        let cluster = try LocalCluster(nodes: 3)
        defer { cluster.tearDown() }
        try cluster.startAll()
        let first = try #require(await cluster.agreedLeader())

        let exitStatus = cluster.stop(first.name, signal: SIGTERM)
        #expect(exitStatus == 0)
        let log = cluster.log(of: first.name)
        #expect(log.contains("handing leadership over"))
        #expect(!log.contains("leadership was not handed over"), "\(log)")
        // The successor named in the log leads, one term later (a transfer, not a timeout).
        let survivors = cluster.names.filter { $0 != first.name }
        let next = try #require(await cluster.agreedLeader(among: survivors))
        #expect(log.contains("to=\(next.name)"))
        #expect(next.term == first.term + 1)
        // A transfer (TimeoutNow) skips PreVote; an election after a timeout would not.
        #expect(!cluster.log(of: next.name).contains("role=pre-candidate term=\(first.term)"), "\(cluster.log(of: next.name))")
    }

    @Test func storageWipeReplacesANodesStateOnlyWhenSafe() async throws {
        let cluster = try LocalCluster(nodes: 3)
        defer { cluster.tearDown() }
        try cluster.startAll()
        let first = try #require(await cluster.agreedLeader())
        let victim = try #require(cluster.names.first { $0 != first.name })
        let other = try #require(cluster.names.first { $0 != first.name && $0 != victim })
        let wipe = ["storage", "wipe", "--config", cluster.configPath, "--node", victim]
        /// Whether, within 5 s, `leader` sees `node`'s match at its commit index and `node`
        /// itself has committed that far.
        func caughtUp(_ node: String, leader: String) async -> Bool {
            let deadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < deadline {
                if let view = await cluster.view(of: leader, stale: false), let match = view.members.first(where: { $0.name == node })?.matchIndex,
                   match >= view.commitIndex, let own = await cluster.view(of: node), own.commitIndex >= view.commitIndex {
                    return true
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
            return false
        }

        // Refused while the node's agent runs.
        let running = try cluster.run(wipe + ["--yes"], includeErrors: true)
        #expect(running.status != 0 && running.output.contains("is running"), "\(running.output)")

        cluster.stop(victim, signal: SIGTERM)
        // Refused while another voter is down: the terms the victim may have voted in are unknown.
        cluster.stop(other, signal: SIGKILL)
        let missing = try cluster.run(wipe + ["--yes"], includeErrors: true)
        #expect(missing.status != 0 && missing.output.contains("cannot reach \(other)"), "\(missing.output)")
        try cluster.start(other)
        _ = try #require(await cluster.agreedLeader(among: [first.name, other]))

        // The victim runs again and catches up, so the leader records its match; then it stops
        // for good. The tool waits until the leader no longer hears from it.
        try cluster.start(victim)
        let settled = try #require(await cluster.agreedLeader(among: cluster.names))
        try #require(await caughtUp(victim, leader: settled.name), "\(victim) did not catch up before the wipe")
        cluster.stop(victim, signal: SIGTERM)
        let early = try cluster.run(wipe, includeErrors: true)
        #expect(early.status != 0 && early.output.contains("still hears from \(victim)"), "\(early.output)")
        var unreachable = false
        for _ in 0..<50 where !unreachable {
            try await Task.sleep(for: .milliseconds(100))
            unreachable = await cluster.view(of: settled.name, stale: false)?.members.first { $0.name == victim }?.state == "unreachable"
        }

        // Without --yes it only reports; with it, the old state is moved aside, never deleted.
        let dry = try cluster.run(wipe, includeErrors: true)
        #expect(dry.status == 0 && dry.output.contains("run again with --yes"), "\(dry.output)")
        let done = try cluster.run(wipe + ["--yes"], includeErrors: true)
        #expect(done.status == 0, "\(done.output)")
        let data = cluster.directory + "/data/\(victim)"
        let entries = try FileManager.default.contentsOfDirectory(atPath: data)
        #expect(entries.contains { $0.hasPrefix("raft.wiped-") }, "\(entries)")

        // The node returns with its fresh state and follows; the leader and its term stay, and
        // within a few heartbeats it holds the whole log again (the leader forgot its old match).
        try cluster.start(victim)
        let after = try #require(await cluster.agreedLeader(among: cluster.names))
        #expect(after.name == settled.name && after.term == settled.term)
        #expect(await caughtUp(victim, leader: after.name), "the wiped node did not catch up under the same leader within 5 s")
        #expect(cluster.log(of: after.name).contains("lacks entries it acknowledged"), "the leader did not say the peer lost its entries")
        let verify = try cluster.run(["storage", "verify", "--data-dir", data + "/raft"], includeErrors: true)
        #expect(verify.status == 0, "\(verify.output)")
    }

    @Test func switchoverMovesLeadershipOnlyForOperatorCertificates() async throws {
        let cluster = try LocalCluster(nodes: 3)
        defer { cluster.tearDown() }
        try cluster.startAll()
        let first = try #require(await cluster.agreedLeader())
        let target = try #require(cluster.names.last { $0 != first.name })
        let tls = cluster.directory + "/tls"
        let port = try #require(cluster.apiPorts[first.name])
        func refusal(_ client: APIClient) async throws -> (Int, String) {
            let answer = try await client.post(host: "127.0.0.1", port: port, path: "/switchover?to=\(target)", timeout: .seconds(3))
            return (answer.status, String(decoding: answer.body, as: UTF8.self))
        }

        // Without a client certificate the mutating endpoint refuses; reads still work.
        let (anonymousStatus, anonymousBody) = try await refusal(try APIClient(tlsDirectory: tls))
        #expect(anonymousStatus == 403 && anonymousBody.contains("needs an operator certificate"), "\(anonymousBody)")
        // A node's certificate only identifies agents to each other: refused, saying which to use.
        let (nodeStatus, nodeBody) = try await refusal(try APIClient(tlsDirectory: tls, identity: target))
        #expect(nodeStatus == 403 && nodeBody.contains("\(target)'s is a node certificate") && nodeBody.contains("certs issue --operator"),
                "\(nodeBody)")
        let nodeClient = try APIClient(tlsDirectory: tls, identity: target)
        for path in ["/failover?to=\(target)&reason=test", "/recover-quorum?reason=test"] {
            let answer = try await nodeClient.post(host: "127.0.0.1", port: port, path: path, timeout: .seconds(3))
            #expect(answer.status == 403, "\(path): \(answer.status)")
        }
        // The same CA's operator of another cluster names nobody here.
        _ = try ClusterCertificates.issueOperators(cluster: "other", names: ["mallory"], directory: tls)
        let (foreignStatus, foreignBody) = try await refusal(try APIClient(tlsDirectory: tls, operator: "mallory"))
        #expect(foreignStatus == 403 && foreignBody.contains("names no operator or node of cluster test"), "\(foreignBody)")
        try FileManager.default.removeItem(atPath: tls + "/operators/mallory.crt")
        try FileManager.default.removeItem(atPath: tls + "/operators/mallory.key")
        // A node certificate the CA signed for a name outside the cluster is no operator either.
        _ = try ClusterCertificates.issue(cluster: "test", nodes: [NodeIdentity(name: "alice", hosts: ["127.0.0.1"])], directory: tls)
        let (strangerStatus, _) = try await refusal(try APIClient(tlsDirectory: tls, identity: "alice"))
        #expect(strangerStatus == 403)
        #expect(await cluster.agreedLeader(among: cluster.names)?.name == first.name)

        // Two operators: the CLI wants to know which one, then records who asked.
        _ = try ClusterCertificates.issueOperators(cluster: "test", names: ["bob"], directory: tls)
        let ambiguous = try cluster.run(["switchover", "--config", cluster.configPath, "--to", target],
                                        environment: ["USER": "nobody-here", "SUDO_USER": ""], includeErrors: true)
        #expect(ambiguous.status != 0 && ambiguous.output.contains("several operator certificates") && ambiguous.output.contains("--as NAME"),
                "\(ambiguous.output)")
        // With an operator certificate: the named node takes over, by transfer (no PreVote).
        let moved = try cluster.run(["switchover", "--config", cluster.configPath, "--to", target, "--as", "bob"], includeErrors: true)
        #expect(moved.status == 0, "\(moved.output)")
        #expect(moved.output.contains("leadership moved from \(first.name) to \(target)"), "\(moved.output)")
        let after = try #require(await cluster.agreedLeader(among: cluster.names))
        #expect(after.name == target && after.term == first.term + 1)
        #expect(cluster.log(of: first.name).contains("by=bob"), "the leader did not log who asked")

        // An unknown target is a clear refusal, and nothing moves.
        let unknown = try cluster.run(["switchover", "--config", cluster.configPath, "--to", "node9", "--as", "bob"], includeErrors: true)
        #expect(unknown.status != 0 && unknown.output.contains("no node node9"), "\(unknown.output)")
    }

    /// `api.require_client_certificate`: reads want a certificate from the cluster CA (an
    /// operator's or a node's); the load-balancer checks stay open; a follower's forwarded read
    /// and the CLI's reads present theirs.
    @Test func aRequiredClientCertificateClosesReadsButNotLoadBalancerChecks() async throws {
        let cluster = try LocalCluster(nodes: 3)
        defer { cluster.tearDown() }
        let config = try String(contentsOfFile: cluster.configPath, encoding: .utf8)
        try config.replacingOccurrences(of: "timing:\n", with: "api:\n  require_client_certificate: true\ntiming:\n")
            .write(toFile: cluster.configPath, atomically: true, encoding: .utf8)
        try cluster.startAll()
        let leader = try #require(await cluster.agreedLeader())
        let follower = try #require(cluster.names.first { $0 != leader.name })
        let port = try #require(cluster.apiPorts[follower])
        let tls = cluster.directory + "/tls"
        let anonymous = try APIClient(tlsDirectory: tls)
        for path in ["/cluster", "/cluster?stale=true", "/history", "/metrics"] {
            let answer = try await anonymous.get(host: "127.0.0.1", port: port, path: path, timeout: .seconds(3))
            #expect(answer.status == 403 && String(decoding: answer.body, as: UTF8.self).contains("requires a client certificate"),
                    "\(path): \(answer.status) \(String(decoding: answer.body, as: UTF8.self))")
        }
        for path in ["/primary", "/replica", "/health", "/leader"] {
            let status = try await anonymous.get(host: "127.0.0.1", port: port, path: path, timeout: .seconds(3)).status
            #expect(status == 200 || status == 503, "\(path): \(status)")
        }
        // A node's certificate reads; an operator's linearizable read at a follower is forwarded
        // to the leader, which wants the follower's certificate.
        let node = try APIClient(tlsDirectory: tls, identity: leader.name)
        #expect(try await node.get(host: "127.0.0.1", port: port, path: "/cluster?stale=true", timeout: .seconds(3)).status == 200)
        // A node certificate the CA signed for a name outside the cluster reads nothing.
        _ = try ClusterCertificates.issue(cluster: "test", nodes: [NodeIdentity(name: "alice", hosts: ["127.0.0.1"])], directory: tls)
        let stranger = try APIClient(tlsDirectory: tls, identity: "alice")
        #expect(try await stranger.get(host: "127.0.0.1", port: port, path: "/cluster?stale=true", timeout: .seconds(3)).status == 403)
        let forwarded = try await APIClient(tlsDirectory: tls, operator: "admin").get(host: "127.0.0.1", port: port, path: "/cluster", timeout: .seconds(3))
        #expect(forwarded.status == 200, "\(String(decoding: forwarded.body, as: UTF8.self))")
        let status = try cluster.run(["status", "--config", cluster.configPath], includeErrors: true)
        #expect(status.status == 0, "\(status.output)")
        // The agent's peer links run on threads of their own (AgentEventLoops.peers).
        let pid = try #require(cluster.pid(of: follower))
        let threads = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task").compactMap {
            try? String(contentsOfFile: "/proc/\(pid)/task/\($0)/comm", encoding: .utf8).trimmingCharacters(in: .newlines)
        }
        #expect(threads.filter { $0 == "pgquorum-peers" }.count == 2, "\(threads)")
        #expect(threads.contains("pgquorum-raft"), "\(threads)")
    }

    @Test func aMinorityNeverElectsALeader() async throws {
        let cluster = try LocalCluster(nodes: 5)
        defer { cluster.tearDown() }
        try cluster.startAll()
        let first = try #require(await cluster.agreedLeader())
        // Stop the leader and two followers: two of five remain.
        let stopped = [first.name] + cluster.names.filter { $0 != first.name }.prefix(2)
        for name in stopped { cluster.stop(name, signal: SIGKILL) }
        let minority = cluster.names.filter { !stopped.contains($0) }

        // For several election timeouts, neither survivor leads and neither /leader says 200.
        let deadline = ContinuousClock.now + .seconds(4)
        while ContinuousClock.now < deadline {
            for name in minority {
                let view = await cluster.view(of: name)
                #expect(view != nil, "\(name) stopped answering")
                #expect(view?.leader == nil || view?.leader == first.name, "\(name) sees leader \(view?.leader ?? "")")
                #expect(await cluster.status(of: name, path: "/leader") == 503)
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        let status = try cluster.run(["status", "--config", cluster.configPath, "--timeout-ms", "1500"])
        #expect(status.status == 3, "\(status.output)")
        // A stopped agent is reported in one plain line, not NIO's list of every address tried.
        #expect(status.output.contains(": Connection refused\n") && !status.output.contains("SingleConnectionFailure"), "\(status.output)")

        // No quorum: failover --force never turns into a quorum-loss recovery by itself, and
        // recover-quorum shows the survivor's own view and does nothing unconfirmed.
        let forced = try cluster.run(["failover", minority[0], "--force", "--reason", "test", "--config", cluster.configPath], includeErrors: true)
        #expect(forced.status != 0 && forced.output.contains("pgquorum recover-quorum \(minority[0])"), "\(forced.output)")
        let unconfirmed = try cluster.run(["recover-quorum", minority[0], "--reason", "test", "--config", cluster.configPath], includeErrors: true)
        #expect(unconfirmed.status != 0 && unconfirmed.output.contains("not confirmed; nothing changed"), "\(unconfirmed.output)")
        #expect(unconfirmed.output.contains("\(minority[0])'s own view: leader none"), "\(unconfirmed.output)")
        // The endpoint itself: a forced failover sent straight to a node that hears no leader is
        // a failover (refused: not the leader), never a recovery, which has its own request.
        let member = try APIClient(tlsDirectory: cluster.directory + "/tls", operator: "admin")
        let survivorPort = try #require(cluster.apiPorts[minority[0]])
        let direct = try await member.post(host: "127.0.0.1", port: survivorPort,
                                           path: "/failover?to=\(minority[0])&force=true&reason=test", timeout: .seconds(5))
        #expect(direct.status == 409 && String(decoding: direct.body, as: UTF8.self).contains("not the leader"),
                "\(direct.status) \(String(decoding: direct.body, as: UTF8.self))")

        // One stopped node returns: three of five, a quorum, elect a leader again.
        try cluster.start(stopped[1])
        let back = try #require(await cluster.agreedLeader(among: minority + [stopped[1]]))
        #expect(back.term > first.term)
        // With a quorum again, recover-quorum refuses outright.
        let healthy = try cluster.run(["recover-quorum", minority[0], "--reason", "test", "--yes", "--config", cluster.configPath],
                                      includeErrors: true)
        #expect(healthy.status != 0 && healthy.output.contains("the quorum is not lost"), "\(healthy.output)")
    }
}
