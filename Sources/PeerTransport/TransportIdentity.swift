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

/// Reads the node a certificate names: its SAN URI `pgquorum://<cluster>/<node>`.
public enum PeerIdentity {
    public static func node(inCertificateDER der: [UInt8], cluster: String) -> String? {
        guard let certificate = try? Certificate(derEncoded: der),
              let names = try? certificate.extensions.subjectAlternativeNames else { return nil }
        let prefix = "pgquorum://\(cluster)/"
        for name in names {
            if case .uniformResourceIdentifier(let uri) = name, uri.hasPrefix(prefix) {
                return String(uri.dropFirst(prefix.count))
            }
        }
        return nil
    }
}
