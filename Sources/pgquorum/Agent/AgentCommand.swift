import Agent
import ArgumentParser
import ClusterConfig
import Logging
import ServiceLifecycle

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run this machine's pgquorum agent (one per PostgreSQL server, or a witness).",
        discussion: """
            Reads the cluster config, opens (or creates) the node's Raft state in \
            <data_dir>/<node>/raft, talks to the other agents over mutual TLS on agent_port and \
            serves the operator API over HTTPS on api_port. SIGTERM or SIGINT stops it gracefully: \
            a leader first hands leadership to another voter. Logs go to standard error.
            """
    )

    @Option(help: "The cluster config file.")
    var config: String

    @Option(help: "This node's name in the config.")
    var node: String

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        let loaded: ClusterConfig
        do {
            loaded = try ConfigLoader.load(path: config, tlsFiles: .node(node))
        } catch {
            for problem in error.problems { print(problem) }
            throw CommandFailure("the config has \(error.problems.count) problem(s); the agent did not start")
        }
        LoggingSystem.bootstrap { label in
            var handler = AgentLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "pgquorum.agent")
        do {
            let agent = try AgentService(config: loaded, nodeName: node, logger: logger)
            let group = ServiceGroup(configuration: .init(
                services: [.init(service: agent)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            ))
            try await group.run()
        } catch let error as AgentStartError {
            throw CommandFailure(error.description)
        }
    }
}
