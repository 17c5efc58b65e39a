import ArgumentParser
import ClusterConfig

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check cluster configuration files.",
        subcommands: [ValidateConfig.self]
    )
}

struct ValidateConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Validate a cluster config: one line per problem, exit 1 when there is any.",
        discussion: """
            Checks the YAML, unknown and missing keys, types, node names, duplicate names, ports \
            and data directories, timing (election timeout at least 5 × heartbeat and a multiple \
            of it), alert \
            thresholds, tags, and that the TLS files exist in tls.dir: every node's by default, \
            only ca.crt and one node's with --node NAME (what that node's agent needs), none with \
            --skip-tls-files (validating a file away from its machines). \
            docs/configuration.md describes every key.
            """
    )

    @Argument(help: "The cluster config file.")
    var file: String

    @Flag(help: "Do not require the TLS files (ca.crt, <node>.crt, <node>.key) to exist.")
    var skipTLSFiles = false

    @Option(help: "Validate for this node's machine: require only ca.crt and this node's certificate and key.")
    var node: String?

    func run() throws {
        let check: TLSFileCheck = skipTLSFiles ? .skip : node.map { .node($0) } ?? .allNodes
        let config: ClusterConfig
        do {
            config = try ConfigLoader.load(path: file, tlsFiles: check)
        } catch {
            for problem in error.problems { print(problem) }
            throw ExitCode.failure
        }
        if let node, config.node(named: node) == nil {
            print("\(file): node '\(node)' is not in the file (its nodes: \(config.nodes.map(\.name).joined(separator: ", ")))")
            throw ExitCode.failure
        }
        let witnesses = config.nodes.filter(\.isWitness).count
        print("\(file): ok — cluster \(config.cluster), \(config.nodes.count) nodes (\(witnesses) witnesses), heartbeat \(config.timing.heartbeatMilliseconds) ms, election timeout \(config.timing.electionTimeoutMilliseconds) ms")
    }
}
