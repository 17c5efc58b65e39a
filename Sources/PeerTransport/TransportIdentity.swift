import ClusterCertificates
import NIOCore
import NIOSSL
import X509

/// This node's TLS material (from `pgquorum certs init`) and the contexts built from it: TLS 1.3
/// only, mutual authentication against the cluster CA on both sides. Host names are not
/// checked by TLS; the node identity in the peer's certificate is (see `PeerIdentity`).
public struct TransportIdentity: Sendable {
    public let cluster: String
    public let node: String
    let serverContext: NIOSSLContext
    let clientContext: NIOSSLContext

    /// Loads `<directory>/ca.crt`, `<directory>/<node>.crt` and `<directory>/<node>.key`.
    public init(cluster: String, node: String, directory: String) throws {
        let chain = try NIOSSLCertificate.fromPEMFile(directory + "/\(node).crt").map { NIOSSLCertificateSource.certificate($0) }
        let key = NIOSSLPrivateKeySource.privateKey(try NIOSSLPrivateKey(file: directory + "/\(node).key", format: .pem))
        let roots = NIOSSLTrustRoots.certificates(try NIOSSLCertificate.fromPEMFile(directory + "/ca.crt"))

        var server = TLSConfiguration.makeServerConfigurationWithMTLS(certificateChain: chain, privateKey: key, trustRoots: roots)
        server.minimumTLSVersion = .tlsv13
        var client = TLSConfiguration.makeClientConfiguration()
        client.minimumTLSVersion = .tlsv13
        client.certificateVerification = .noHostnameVerification
        client.trustRoots = roots
        client.certificateChain = chain
        client.privateKey = key
        self.cluster = cluster
        self.node = node
        self.serverContext = try NIOSSLContext(configuration: server)
        self.clientContext = try NIOSSLContext(configuration: client)
    }
}

/// Whom a certificate from the cluster CA names (its SAN URI, `ClusterCertificates`): a node
/// (peer links; a follower forwarding a read) or an operator (actions on the API).
public enum CertificateSubject: Sendable, Equatable {
    case node(String)
    case `operator`(String)
}

public enum PeerIdentity {
    /// The node a certificate names, or nil (an operator's certificate names no node).
    public static func node(inCertificateDER der: [UInt8], cluster: String) -> String? {
        guard case .node(let name)? = subject(inCertificateDER: der, cluster: cluster) else { return nil }
        return name
    }

    public static func subject(inCertificateDER der: [UInt8], cluster: String) -> CertificateSubject? {
        guard let certificate = try? Certificate(derEncoded: der),
              let names = try? certificate.extensions.subjectAlternativeNames else { return nil }
        let node = NodeIdentity.uri(cluster: cluster, node: "")
        let operatorPrefix = OperatorIdentity.uri(cluster: cluster, name: "")
        for name in names {
            guard case .uniformResourceIdentifier(let uri) = name else { continue }
            // Only names `certs` can issue: no path, no escapes, nothing odd in logs and history.
            if uri.hasPrefix(node) {
                let name = String(uri.dropFirst(node.count))
                return ClusterCertificates.isValidName(name) ? .node(name) : nil
            }
            if uri.hasPrefix(operatorPrefix) {
                let name = String(uri.dropFirst(operatorPrefix.count))
                return ClusterCertificates.isValidName(name) ? .operator(name) : nil
            }
        }
        return nil
    }
}
