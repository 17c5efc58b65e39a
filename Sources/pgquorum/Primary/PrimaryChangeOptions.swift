import ArgumentParser

/// What `failover` and `recover-quorum` both need: the node, why (recorded in the history), the
/// cluster config and the certificate to present.
struct PrimaryChangeOptions: ParsableArguments {
    @Argument(help: "The node to promote.")
    var node: String

    @Option(help: "Why (required; recorded in the cluster history).")
    var reason: String

    @Option(help: "The cluster config file.")
    var config: String

    @Option(name: .customLong("as"), help: "Present this operator's certificate from tls.dir/operators (default: the only one there, or the one named like your login).")
    var operatorName: String?

    func validate() throws {
        if reason.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--reason must say why; it is recorded in the cluster history") }
    }

    func client() throws -> OperatorClient { try OperatorClient(configPath: config, operatorName: operatorName) }
}
