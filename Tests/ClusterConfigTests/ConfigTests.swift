import ClusterConfig
import Foundation
import Testing

/// The repository's `cluster-configs/` folder, found from this file's path.
private let configsDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("cluster-configs").path

private func parse(_ yaml: String) -> Result<ClusterConfig, ConfigError> {
    Result { () throws(ConfigError) in try ConfigLoader.parse(yaml, path: "/etc/pgquorum/test.yaml", tlsFiles: .skip) }
}

private func problems(_ yaml: String) -> [String] {
    switch parse(yaml) {
    case .success: []
    case .failure(let error): error.problems.map(\.description)
    }
}

private let minimal = """
cluster: test
tls:
  dir: tls
data_dir: /var/lib/pgquorum
nodes:
  - name: a
    host: 10.0.0.1
  - name: b
    host: 10.0.0.2
  - name: c
    host: 10.0.0.3
"""

@Suite struct ConfigTests {
    @Test func everyShippedFileIsValid() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: configsDirectory).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files.contains("three-dc.yaml") && files.contains("local-3.yaml") && files.contains("local-5.yaml"))
        for file in files {
            // TLS files are made per deployment (pgquorum certs init), so not checked here.
            let result = Result { () throws(ConfigError) in try ConfigLoader.load(path: configsDirectory + "/" + file, tlsFiles: .skip) }
            if case .failure(let error) = result { Issue.record("\(file): \(error)") }
        }
    }

    @Test func threeDataCentresMatchTheSeed() throws {
        let config = try ConfigLoader.load(path: configsDirectory + "/three-dc.yaml", tlsFiles: .skip)
        #expect(config.nodes.map(\.name) == ["primary", "secondary1", "secondary2"])
        #expect(config.nodes.map(\.label) == ["主数据中心", "同城备份中心", "异地备份中心"])
        #expect(config.nodes.map(\.location) == ["华东", "华东", "华南"])
        #expect(config.nodes.map(\.host) == ["10.0.1.100", "10.0.2.100", "10.1.1.100"])
        #expect(config.nodes.map(\.priority) == [0, 1, 2])
        #expect(config.nodes.allSatisfy { !$0.isWitness })
        #expect(config.alerts == AlertThresholds())
        #expect(config.nodes[0].dataDirectory == "/var/lib/pgquorum/primary")
        // The seed's postgresql.conf is written out in the example, and equals the built-in defaults.
        for (key, value) in config.postgres.parameters where PostgresSettings.defaultParameters[key] != nil {
            #expect(PostgresSettings.defaultParameters[key] == value, "\(key)")
        }
        #expect(config.postgres.parameters["wal_level"] == "logical" && config.postgres.passfile == "/etc/pgquorum/pgpass")
    }

    @Test func defaultsAndRelativePaths() throws {
        let config = try parse(minimal).get()
        #expect(config.tlsDirectory == "/etc/pgquorum/tls")
        #expect(config.timing == Timing(heartbeatMilliseconds: 100, electionTimeoutMilliseconds: 1_000))
        #expect(config.timing.raftOptions.electionTicks == 10)
        #expect(config.timing.raftOptions.problems.isEmpty)
        #expect(config.alerts.replicationLagWarningSeconds == 30)
        #expect(config.alerts.replicationLagCriticalSeconds == 120)
        #expect(config.alerts.networkLatencyWarningMilliseconds == 100)
        #expect(config.alerts.failedConnectionChecks == 3)
        #expect(config.nodes[1].agentPort == 7400 && config.nodes[1].apiPort == 8008)
        #expect(config.nodes[1].isWitness)
        #expect(Set(config.nodes.map(\.id)).count == 3)
    }

    @Test func timingAlwaysGivesValidRaftOptions() {
        for heartbeat in [10, 50, 100, 250] {
            for factor in 5...30 {
                let timing = Timing(heartbeatMilliseconds: heartbeat, electionTimeoutMilliseconds: heartbeat * factor)
                #expect(timing.raftOptions.problems.isEmpty, "heartbeat \(heartbeat), factor \(factor)")
            }
        }
    }

    /// The freeze limits of docs/configuration.md's timing table.
    @Test func theFreezeLimitEndsWhenAnotherNodeCouldTakeOver() {
        #expect(Timing().freezeLimitMilliseconds == 600)
        #expect(Timing(heartbeatMilliseconds: 50, electionTimeoutMilliseconds: 500).freezeLimitMilliseconds == 300)
        #expect(Timing(heartbeatMilliseconds: 100, electionTimeoutMilliseconds: 500).freezeLimitMilliseconds == 500)
        #expect(Timing(heartbeatMilliseconds: 150, electionTimeoutMilliseconds: 900).freezeLimitMilliseconds == 750)
        #expect(Timing(heartbeatMilliseconds: 200, electionTimeoutMilliseconds: 3_000).freezeLimitMilliseconds == 1_600)
        // Always past the lease's end by the two ticks the lease keeps in hand before any vote,
        // plus the three heartbeats of a promotion.
        for heartbeat in [10, 50, 100, 250] {
            for factor in 5...30 {
                let timing = Timing(heartbeatMilliseconds: heartbeat, electionTimeoutMilliseconds: heartbeat * factor)
                #expect(timing.freezeLimitMilliseconds >= 5 * heartbeat, "heartbeat \(heartbeat), factor \(factor)")
            }
        }
    }

    @Test func unknownKeysAreNamedWithTheirLine() {
        let found = problems(minimal + "\n    prority: 3\n")
        #expect(found.count == 1)
        #expect(found.first?.contains("unknown key 'prority'") == true)
        #expect(found.first?.hasPrefix("/etc/pgquorum/test.yaml:12:") == true)
        #expect(problems("cluster: x\ntls: {dir: t}\ndata_dir: d\nnodes: [{name: a, host: h}]\nheartbeat: 5\n").first?.contains("unknown key 'heartbeat'") == true)
    }

    @Test func everyProblemIsReportedAtOnce() {
        let yaml = """
        cluster: Bad Name
        tls: {dir: tls}
        data_dir: d
        timing: {heartbeat_ms: 100, election_timeout_ms: 300}
        alerts: {replication_lag_warning_s: 200, replication_lag_critical_s: 120}
        nodes:
          - {name: a, host: h1, agent_port: 7000, api_port: 7000}
          - {name: a, host: h2, priority: -1}
          - {name: c, host: h3, agent_port: 70000, tags: {replicate_from: zz}}
          - {name: d}
        """
        let found = problems(yaml)
        let expected = [
            "cluster: \"Bad Name\" may only hold",
            "election_timeout_ms: 300 is below 5 × heartbeat_ms (500)",
            "replication_lag_warning_s must be positive and at most replication_lag_critical_s",
            "api_port h1:7000 is already used by node a (agent_port)",
            "node a: the name appears twice",
            "priority -1 is negative",
            "agent_port: 70000 is not a TCP port",
            "replicate_from names zz, which is not a node",
            "node d: host: missing",
        ]
        for text in expected {
            #expect(found.contains { $0.contains(text) }, "no problem mentions \(text): \(found)")
        }
    }

    @Test func electionTimeoutMustBeWholeHeartbeatsAndAlertsMustBeNumbers() {
        let base = "cluster: x\ntls: {dir: t}\ndata_dir: d\nnodes: [{name: a, host: h}]\n"
        #expect(problems(base + "timing: {heartbeat_ms: 150, election_timeout_ms: 1000}\n").contains { $0.contains("not a multiple of heartbeat_ms (150)") })
        #expect(problems(base + "timing: {heartbeat_ms: 150, election_timeout_ms: 1050}\n").isEmpty)
        // Huge values are refused, not overflowed.
        #expect(problems(base + "timing: {heartbeat_ms: 9223372036854775807}\n").contains { $0.contains("above 10000 ms") })
        #expect(problems(base + "timing: {election_timeout_ms: 9223372036854775800}\n").contains { $0.contains("above 600000 ms") })
        #expect(problems(base + "alerts: {replication_lag_warning_s: .nan}\n").contains { $0.contains("replication_lag_warning_s must be positive") })
        #expect(problems(base + "alerts: {network_latency_warning_ms: .nan}\n").contains { $0.contains("network_latency_warning_ms must be positive") })
    }

    @Test func raftLogCompaction() throws {
        #expect(try parse(minimal).get().raftLog == RaftLogSettings(snapshotEntries: 10_000, keepEntries: 5_000))
        #expect(try parse(minimal + "\nraft: {snapshot_entries: 50, keep_entries: 0}\n").get().raftLog == RaftLogSettings(snapshotEntries: 50, keepEntries: 0))
        #expect(problems(minimal + "\nraft: {snapshot_entries: 5}\n").contains { $0.contains("raft.snapshot_entries: 5 is outside 10...10000000") })
        #expect(problems(minimal + "\nraft: {keep_entries: -1}\n").contains { $0.contains("raft.keep_entries: -1 is outside 0...10000000") })
        #expect(problems(minimal + "\nraft: {snapshot_count: 10}\n").contains { $0.contains("snapshot_count") })
    }

    @Test func failoverReportWait() throws {
        #expect(try parse(minimal).get().failover.reportWaitMilliseconds == 5_000)
        #expect(try parse(minimal + "\nfailover: {report_wait_ms: 0}\n").get().failover.reportWaitMilliseconds == 0)
        #expect(problems(minimal + "\nfailover: {report_wait_ms: -1}\n").contains { $0.contains("failover.report_wait_ms: -1 is outside 0...600000") })
        #expect(problems(minimal + "\nfailover: {report_wait: 10}\n").contains { $0.contains("report_wait") })
    }

    @Test func peerAddressCheckIsOnByDefaultOffOrAList() throws {
        let node = "\n  - name: d\n    host: 10.0.0.4\n"
        #expect(try parse(minimal).get().nodes.allSatisfy { $0.peerAddressCheck == .configuredHost })
        #expect(try parse(minimal + node + "    tags: {peer_address_check: false}\n").get().nodes[3].peerAddressCheck == .off)
        #expect(try parse(minimal + node + "    tags: {peer_address_check: true}\n").get().nodes[3].peerAddressCheck == .configuredHost)
        #expect(try parse(minimal + node + "    tags: {peer_address_check: [192.0.2.7, \"2001:db8::1\"]}\n").get().nodes[3].peerAddressCheck
                == .addresses(["192.0.2.7", "2001:db8::1"]))
        #expect(problems(minimal + node + "    tags: {peer_address_check: [gateway.example]}\n").contains { $0.contains("each entry must be an IP address") })
        #expect(problems(minimal + node + "    tags: {peer_address_check: []}\n").contains { $0.contains("use false to turn the check off") })
    }

    @Test func insecureTrustIsExplicitAndExcludesAPassfile() throws {
        #expect(try parse(minimal).get().postgres.insecureTrust == false)
        #expect(try parse(minimal + "\npostgresql: {insecure_trust: true}\n").get().postgres.insecureTrust)
        #expect(problems(minimal + "\npostgresql: {insecure_trust: true, passfile: /etc/pgquorum/pgpass}\n")
            .contains { $0.contains("postgresql.insecure_trust: true contradicts postgresql.passfile") })
    }

    @Test func healthPortIsOffByDefaultSetForAllOrPerNode() throws {
        #expect(try parse(minimal).get().nodes.allSatisfy { $0.healthPort == nil })
        let all = try parse(minimal + "\napi: {health_port: 8009}\n").get()
        #expect(all.nodes.allSatisfy { $0.healthPort == 8009 })
        let own = try parse(minimal.replacingOccurrences(of: "    host: 10.0.0.2", with: "    host: 10.0.0.2\n    health_port: 9000") + "\napi: {health_port: 8009}\n").get()
        #expect(own.nodes.map(\.healthPort) == [8009, 9000, 8009])
        #expect(problems(minimal + "\napi: {health_port: 8008}\n").contains { $0.contains("health_port 10.0.0.1:8008 is already used by node a (api_port)") })
        #expect(problems(minimal + "\napi: {health_port: 70000}\n").contains { $0.contains("api.health_port") })
    }

    @Test func postgresqlSectionDefaultsAndOverrides() throws {
        let defaults = try parse(minimal).get().postgres
        #expect(defaults == PostgresSettings())
        #expect(defaults.parameters["wal_level"] == "logical" && defaults.parameters["max_wal_senders"] == "10")
        #expect(defaults.maximumLagOnFailoverBytes == 1 << 20 && defaults.healthCheckFailures == 3 && !defaults.allowReclone)
        let yaml = minimal.replacingOccurrences(of: "nodes:\n", with: """
        postgresql:
          bin_dir: /opt/pg/bin
          os_user: pg
          replication_user: repl
          passfile: secrets/pgpass
          maximum_lag_on_failover: 4096
          health_check_failures: 5
          restart_timeout_s: 2.5
          allow_reclone: true
          hba: ["host all app 10.0.0.0/8 scram-sha-256"]
          parameters: {shared_buffers: 1GB, work_mem: 8MB}
        nodes:

        """)
        let settings = try parse(yaml).get().postgres
        #expect(settings.binDirectory == "/opt/pg/bin" && settings.osUser == "pg" && settings.replicationUser == "repl")
        #expect(settings.passfile == "/etc/pgquorum/secrets/pgpass")
        #expect(settings.maximumLagOnFailoverBytes == 4096 && settings.healthCheckFailures == 5 && settings.restartTimeoutSeconds == 2.5)
        #expect(settings.allowReclone && settings.hbaLines == ["host all app 10.0.0.0/8 scram-sha-256"])
        #expect(settings.parameters["shared_buffers"] == "1GB" && settings.parameters["work_mem"] == "8MB")
        #expect(settings.parameters["wal_level"] == "logical", "the seed's defaults stay unless overridden")
    }

    @Test func postgresqlSectionProblems() {
        let base = minimal.replacingOccurrences(of: "nodes:\n", with: "postgresql:\n  PLACEHOLDER\nnodes:\n")
        func with(_ line: String) -> [String] { problems(base.replacingOccurrences(of: "PLACEHOLDER", with: line)) }
        #expect(with("parameters: {port: 5433}").contains { $0.contains("postgresql.parameters.port: set by the agent itself") })
        #expect(with("parameters: {primary_conninfo: x}").contains { $0.contains("set by the agent itself") })
        #expect(with("parameters: {search_path: \"'a'\"}").contains { $0.contains("without quotes") })
        #expect(with("health_check_failures: 0").contains { $0.contains("at least 1") })
        #expect(with("restart_timeout_s: -1").contains { $0.contains("must be positive") })
        #expect(with("maximum_lag_on_failover: -5").contains { $0.contains("is negative") })
        #expect(with("replication_user: \"Robert'); DROP\"").contains { $0.contains("may only hold") })
        #expect(with("hba: [\"host all\"]").contains { $0.contains("one pg_hba.conf line") })
        #expect(with("maximum_lag: 5").contains { $0.contains("unknown key 'maximum_lag'") })
        // PostgreSQL's socket lives under the node's data directory; its path is limited.
        let long = String(repeating: "d", count: 90)
        #expect(problems(minimal.replacingOccurrences(of: "data_dir: /var/lib/pgquorum", with: "data_dir: /\(long)")
            .replacingOccurrences(of: "host: 10.0.0.1", with: "host: 10.0.0.1\n    postgres_port: 5432")).contains { $0.contains("too long for PostgreSQL's socket path") })
    }

    @Test func wrongTypesAndBrokenYAML() {
        #expect(problems(minimal.replacingOccurrences(of: "host: 10.0.0.3", with: "host: 10.0.0.3\n    agent_port: seven")).contains { $0.contains("agent_port: expected a whole number") })
        #expect(problems("nodes: 3\ncluster: x\ntls: {dir: t}\n").contains { $0.contains("nodes: expected a list") })
        #expect(problems("cluster: [unclosed\n").first?.contains("not valid YAML") == true)
        #expect(problems("").first?.contains("empty") == true)
        #expect(problems("cluster: x\n").contains { $0.contains("tls: missing") })
        #expect(problems("cluster: x\n").contains { $0.contains("nodes: missing") })
    }

    @Test func missingTLSFilesAreListedWithTheCommandThatMakesThem() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgq-config-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory + "/tls", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try minimal.write(toFile: directory + "/cluster.yaml", atomically: true, encoding: .utf8)
        for file in ["ca.crt", "a.crt", "a.key", "b.crt", "b.key"] {
            FileManager.default.createFile(atPath: directory + "/tls/" + file, contents: Data())
        }
        let result = Result { () throws(ConfigError) in try ConfigLoader.load(path: directory + "/cluster.yaml") }
        guard case .failure(let error) = result else { Issue.record("missing c.crt/c.key went unnoticed"); return }
        #expect(error.problems.count == 1)
        #expect(error.description.contains("missing c.crt, c.key"))
        // The CA exists, so the fix is to issue (init would refuse).
        #expect(error.description.contains("pgquorum certs issue --config"))
        #expect(error.description.contains("holds ca.key"))
        #expect(error.description.contains("--nodes c=10.0.0.3"))
        // An agent needs only the CA and its own pair.
        #expect(throws: Never.self) { try ConfigLoader.load(path: directory + "/cluster.yaml", tlsFiles: .node("a")) }
        #expect(throws: ConfigError.self) { try ConfigLoader.load(path: directory + "/cluster.yaml", tlsFiles: .node("c")) }
        try FileManager.default.removeItem(atPath: directory + "/tls/ca.crt")
        let noCA = Result { () throws(ConfigError) in try ConfigLoader.load(path: directory + "/cluster.yaml", tlsFiles: .node("a")) }
        guard case .failure(let caError) = noCA else { Issue.record("missing ca.crt went unnoticed"); return }
        #expect(caError.description.contains("missing ca.crt"))
        #expect(caError.description.contains("pgquorum certs init --config"))
        FileManager.default.createFile(atPath: directory + "/tls/ca.crt", contents: Data())
        FileManager.default.createFile(atPath: directory + "/tls/c.crt", contents: Data())
        FileManager.default.createFile(atPath: directory + "/tls/c.key", contents: Data())
        #expect(throws: Never.self) { try ConfigLoader.load(path: directory + "/cluster.yaml") }
    }

    @Test func nodeIdentityDependsOnTheNameOnly() {
        #expect(NodeConfig.id(forName: "primary") == NodeConfig.id(forName: "primary"))
        #expect(NodeConfig.id(forName: "primary") != NodeConfig.id(forName: "secondary1"))
    }
}
