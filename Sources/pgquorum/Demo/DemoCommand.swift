import ArgumentParser

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a simulated three-node cluster in this process and narrate what Raft does.",
        discussion: """
            The three nodes of the seed's deployment (primary, secondary1, secondary2) run the real \
            pgquorum Raft core over a simulated network with a 100 ms tick. The demo shows the first \
            election, a committed proposal, a crash of the leader, the re-election by the \
            survivors, a commit under the new leader, and the crashed node rejoining. No PostgreSQL \
            and no network are involved yet.
            """
    )

    @Option(help: "Seed for the randomised election timeouts.")
    var seed: UInt64 = 7

    func run() throws {
        var demo = try NarratedDemo(seed: seed)
        demo.run { print($0) }
    }
}
