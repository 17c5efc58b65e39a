import ArgumentParser

@main
struct PGQuorum: AsyncParsableCommand {
    static let version = "0.2.0~dev"

    static let configuration = CommandConfiguration(
        commandName: "pgquorum",
        abstract: "Quorum-based high availability for PostgreSQL across data centres.",
        discussion: """
            One pgquorum agent runs beside each PostgreSQL server. The agents elect a leader with \
            Raft over mutual TLS; only the leader, while a quorum confirms its lease, may run a \
            writable primary, so a network partition never produces two primaries.

            Available now: `agent` (run a node and its PostgreSQL), `status` (the leader view), \
            `switchover` (move the primary cleanly), `failover` (move it now, with a reason), \
            `history` (every promotion), `lab` (partition rehearsals in network namespaces), \
            `config validate`, `certs init|issue|check` (the cluster's mutual-TLS certificates), \
            `storage verify|wipe` (a node's Raft state) and `demo` (an in-process simulated cluster). \
            A node without postgres_port is a voting witness. Backups and synchronous replication \
            arrive with later milestones; see docs/.
            """,
        version: version,
        subcommands: [AgentCommand.self, StatusCommand.self, SwitchoverCommand.self, FailoverCommand.self, RecoverQuorumCommand.self, HistoryCommand.self, LabCommand.self, ConfigCommand.self, CertsCommand.self, StorageCommand.self, DemoCommand.self]
    )
}
