import ArgumentParser

@main
struct PGQuorum: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "pgquorum",
        abstract: "Quorum-based high availability for PostgreSQL across data centres.",
        discussion: """
            One pgquorum agent runs beside each PostgreSQL server. The agents elect a leader with \
            Raft over mutual TLS; only the leader, while a quorum confirms its lease, may run a \
            writable primary, so a network partition never produces two primaries.

            Available now: `demo` (an in-process simulated cluster), `storage verify` (check a \
            node's Raft log and snapshots) and `certs init` / `certs check` (the cluster's mutual-TLS \
            certificates). The agent, status, failover, switchover, backup and lab \
            commands arrive with the next milestones; see docs/.
            """,
        version: version,
        subcommands: [DemoCommand.self, StorageCommand.self, CertsCommand.self]
    )
}
