import ArgumentParser
import ClusterCertificates
import ClusterConfig
import Foundation

struct CertsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "Create and check the cluster CA, the node certificates and the operators' certificates for mutual TLS.",
        subcommands: [InitCerts.self, IssueCerts.self, CheckCerts.self]
    )
}

/// `--nodes primary=10.0.1.100,secondary1=10.0.2.100,witness` — a host is optional; several
/// hosts for one node are joined with `+`.
struct NodeList: ExpressibleByArgument {
    var nodes: [NodeIdentity]

    init?(argument: String) {
        var nodes: [NodeIdentity] = []
        for item in argument.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = parts.first, !name.isEmpty else { return nil }
            let hosts = parts.count > 1 ? parts[1].split(separator: "+").map(String.init) : []
            nodes.append(NodeIdentity(name: String(name), hosts: hosts))
        }
        guard !nodes.isEmpty else { return nil }
        self.nodes = nodes
    }
}

/// Where the certificates live and whose they are: shared by `init`, `issue` and `check`. Either
/// from a cluster config (`--config`: its cluster name, `tls.dir` and nodes with their hosts) or
/// from `--dir`, `--cluster` and `--nodes`.
struct CertificateSetOptions: ParsableArguments {
    @Option(help: "Cluster config file: takes the cluster name, tls.dir and every node with its host from it.")
    var config: String?

    @Option(help: "Directory of ca.crt and the nodes' .crt and .key files (init creates it with mode 0700).")
    var dir: String?

    @Option(help: "Cluster name, recorded in (and required of) every node certificate.")
    var cluster: String?

    @Option(help: "Nodes as name[=host[+host…]], comma-separated (check ignores the hosts).")
    var nodes: NodeList?

    func validate() throws {
        if config == nil, dir == nil {
            throw ValidationError("give --config FILE, or --dir DIR (with --nodes for node certificates)")
        }
    }

    /// The certificate set these options describe.
    func resolved() throws -> (cluster: String, directory: String, nodes: [NodeIdentity]) {
        guard let config else {
            // The cluster's name is in the CA's own certificate, once there is one.
            let directory = dir ?? ""
            return (cluster ?? ClusterCertificates.clusterOfAuthority(in: directory) ?? "pgquorum", directory, nodes?.nodes ?? [])
        }
        let loaded: ClusterConfig
        do {
            loaded = try ConfigLoader.load(path: config, tlsFiles: .skip)
        } catch {
            throw CommandFailure("\(error)")
        }
        // Nodes on one machine (loopback) share a host; every node still gets its own name.
        let identities = loaded.nodes.map { NodeIdentity(name: $0.name, hosts: [$0.host]) }
        return (cluster ?? loaded.cluster, dir ?? loaded.tlsDirectory, nodes?.nodes ?? identities)
    }

    /// Runs `create` or `issue` for these nodes and lists the files written.
    func writeCertificates(
        days: Int,
        _ write: (String, [NodeIdentity], String, TimeInterval, Date) throws -> [String]
    ) throws {
        guard days > 0 else { throw CommandFailure("--days must be positive") }
        let (cluster, dir, nodes) = try resolved()
        guard !nodes.isEmpty else { throw CommandFailure("no nodes: give --config FILE, or --nodes with --dir") }
        let files: [String]
        do {
            files = try write(cluster, nodes, dir, TimeInterval(days) * 86_400, Date())
        } catch {
            throw CommandFailure("\(error)")
        }
        for file in files { print("wrote \(file)") }
    }
}

struct InitCerts: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a cluster CA and a key and certificate per node.",
        discussion: """
            Writes DIR/ca.crt, DIR/ca.key and, per node, DIR/<node>.crt and DIR/<node>.key (keys \
            with mode 0600). Each node certificate names the node (SAN URI \
            pgquorum://<cluster>/<node>, CN <node>) and carries its hosts as DNS or IP SANs; it is \
            valid for TLS server and client authentication between agents. It also writes one \
            operator certificate, DIR/operators/<name>.crt and .key (SAN URI \
            pgquorum-operator://<cluster>/<name>; client authentication only): what switchover, \
            failover and recover-quorum present; node certificates are refused there. Existing \
            files are never overwritten. Keep ca.key offline once the certificates are issued.
            Examples: pgquorum certs init --config cluster-configs/three-dc.yaml
                      pgquorum certs init --dir /etc/pgquorum/tls --cluster seed-3dc \\
                        --nodes primary=10.0.1.100,secondary1=10.0.2.100,secondary2=10.1.1.100
            """
    )

    @OptionGroup var set: CertificateSetOptions

    func validate() throws {
        if set.config == nil, set.nodes == nil { throw ValidationError("give --config FILE, or --dir and --nodes") }
    }

    @Option(help: "Validity of the node and operator certificates, in days (the CA gets one more day).")
    var days = 825

    @Option(name: .customLong("operator"), help: "The operator certificate to make (repeat for more).")
    var operators: [String] = ["admin"]

    func run() throws {
        let nodes = try set.resolved().nodes
        if let clash = operators.first(where: { name in nodes.contains { $0.name == name } }) {
            throw CommandFailure("\(clash) is a node of the cluster; name operators after people or scripts, not nodes")
        }
        try set.writeCertificates(days: days) { cluster, nodes, directory, validity, now in
            try ClusterCertificates.create(cluster: cluster, nodes: nodes, operators: operators, directory: directory, validity: validity, now: now)
        }
        print("Certificates are valid for \(days) days. Copy each node's .crt and .key, and ca.crt, to that node; give each operator their files from operators/ (with ca.crt); keep ca.key offline.")
    }
}

struct CheckCerts: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Report expiry, missing files, name mismatches and exposed keys of the cluster's certificates.",
        discussion: "Exits 1 when any certificate has a problem (expiring within --warn-days counts)."
    )

    @OptionGroup var set: CertificateSetOptions

    @Option(help: "Report certificates that expire within this many days.")
    var warnDays = 30

    func validate() throws {
        if set.config == nil, set.nodes == nil { throw ValidationError("give --config FILE, or --dir and --nodes") }
    }

    func run() throws {
        let (cluster, dir, nodes) = try set.resolved()
        let result = ClusterCertificates.check(cluster: cluster, nodes: nodes.map(\.name), directory: dir,
                                               warnWithin: TimeInterval(warnDays) * 86_400)
        var failed = !result.ca.isEmpty
        print("CA \(dir)/ca.crt: " + (result.ca.isEmpty ? "ok" : result.ca.joined(separator: "; ")))
        for status in result.nodes + ClusterCertificates.checkOperators(cluster: cluster, directory: dir, warnWithin: TimeInterval(warnDays) * 86_400) {
            let hosts = status.hosts.isEmpty ? "" : ", hosts \(status.hosts.joined(separator: ", "))"
            let expiry = status.notValidAfter.map { " (valid until \($0)\(hosts))" } ?? ""
            if status.problems.isEmpty {
                print("\(status.node): ok\(expiry)")
            } else {
                failed = true
                print("\(status.node): " + status.problems.joined(separator: "; "))
            }
        }
        if failed { throw ExitCode.failure }
    }
}

struct IssueCerts: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "issue",
        abstract: "Issue certificates for more nodes (a new member, or a renewal) or for operators, from the CA already in --dir.",
        discussion: """
            Needs DIR/ca.crt and DIR/ca.key. Writes DIR/<node>.crt and DIR/<node>.key, or with \
            --operator NAME DIR/operators/NAME.crt and .key (a certificate for switchover, failover \
            and recover-quorum; nodes are not issued then). An existing file is never overwritten \
            (move the old pair aside to renew).
            Examples: pgquorum certs issue --config cluster.yaml --operator alice
                      pgquorum certs issue --dir /etc/pgquorum/tls --nodes node4=10.0.3.100
            """
    )

    @OptionGroup var set: CertificateSetOptions

    @Option(help: "Validity of the certificates, in days.")
    var days = 825

    @Option(name: .customLong("operator"), help: "Issue an operator's certificate instead of nodes' (repeat for more).")
    var operators: [String] = []

    func run() throws {
        let (cluster, dir, nodes) = try set.resolved()
        if let made = ClusterCertificates.clusterOfAuthority(in: dir), made != cluster {
            throw CommandFailure("the CA in \(dir) is cluster \(made)'s, not \(cluster)'s: no agent of \(cluster) would accept what it signs")
        }
        guard !operators.isEmpty else { return try set.writeCertificates(days: days, ClusterCertificates.issue) }
        guard set.nodes == nil else { throw CommandFailure("give --nodes or --operator, not both: issue node and operator certificates one command at a time") }
        // An operator named like a node would read like that node's own hand-over in the history.
        if set.config != nil, let clash = operators.first(where: { name in nodes.contains { $0.name == name } }) {
            throw CommandFailure("\(clash) is a node of the cluster; name operators after people or scripts, not nodes")
        }
        guard days > 0 else { throw CommandFailure("--days must be positive") }
        let files: [String]
        do {
            files = try ClusterCertificates.issueOperators(cluster: cluster, names: operators, directory: dir, validity: TimeInterval(days) * 86_400)
        } catch {
            throw CommandFailure("\(error)")
        }
        for file in files { print("wrote \(file)") }
    }
}
