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
            and data directories, timing (election timeout at least 5 × heartbeat), alert \
            thresholds, tags, and that the TLS files every node needs exist in tls.dir \
            (skip that with --skip-tls-files when validating a file away from its machines). \
            docs/configuration.md describes every key.
            """
    )

    @Argument(help: "The cluster config file.")
    var file: String

    @Flag(help: "Do not require the TLS files (ca.crt, <node>.crt, <node>.key) to exist.")
    var skipTLSFiles = false

    func run() throws {
        do {
            let config = try ConfigLoader.load(path: file, checkFiles: !skipTLSFiles)
            let witnesses = config.nodes.filter(\.isWitness).count
            print("\(file): ok — cluster \(config.cluster), \(config.nodes.count) nodes (\(witnesses) witnesses), heartbeat \(config.timing.heartbeatMilliseconds) ms, election timeout \(config.timing.electionTimeoutMilliseconds) ms")
        } catch {
            for problem in error.problems { print(problem) }
            throw ExitCode.failure
        }
    }
}
