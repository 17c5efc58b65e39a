import ClusterCertificates
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A small HTTPS client for the operator API: one GET per connection, a hard deadline on the
/// whole exchange (connect, handshake, response), trust in the cluster CA only. Used by
/// `pgquorum status` and by agents forwarding a linearizable read to the leader.
public struct APIClient: Sendable {
    public struct Response: Sendable {
        public var status: Int
        public var body: [UInt8]
        /// From starting to connect until the whole response arrived.
        public var elapsed: Duration
    }

    public enum Failure: Error, CustomStringConvertible {
        case timedOut(Duration)
        case connection(String)
        /// No usable client certificate (which one to use and how to make it).
        case certificate(String)

        public var description: String {
            switch self {
            case .timedOut(let limit): "no answer within \(limit)"
            case .connection(let why): why
            case .certificate(let why): why
            }
        }
    }

    private let context: NIOSSLContext
    private let group: any EventLoopGroup

    /// Trusts `<tlsDirectory>/ca.crt`. Host names are not checked (nodes are often addressed by
    /// IP); only a certificate the cluster CA signed is accepted.
    /// With `identity`, presents `<tlsDirectory>/<identity>.crt` and `.key` as the client
    /// certificate (what mutating endpoints require).
    public init(tlsDirectory: String, identity: String? = nil, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        try self.init(caFile: tlsDirectory + "/ca.crt",
                      certificate: identity.map { (tlsDirectory + "/\($0).crt", tlsDirectory + "/\($0).key") }, group: group)
    }

    /// Presents the operator's certificate, `<tlsDirectory>/operators/<name>.crt` and `.key`
    /// (what actions on the cluster require).
    public init(tlsDirectory: String, operator name: String, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        let folder = tlsDirectory + "/" + OperatorIdentity.directoryName
        try self.init(caFile: tlsDirectory + "/ca.crt", certificate: (folder + "/\(name).crt", folder + "/\(name).key"), group: group)
    }

    /// For the CLI's reads: presents the operator's certificate (an agent with
    /// `api.require_client_certificate` wants one): `named` or it fails, else the one that can be
    /// chosen, else none.
    public static func reader(tlsDirectory: String, named: String?, loginName: String?) throws -> APIClient {
        if let named { return try APIClient(tlsDirectory: tlsDirectory, operator: chooseOperator(tlsDirectory: tlsDirectory, named: named, loginName: nil)) }
        guard let name = try? chooseOperator(tlsDirectory: tlsDirectory, named: nil, loginName: loginName),
              let client = try? APIClient(tlsDirectory: tlsDirectory, operator: name) else {
            return try APIClient(tlsDirectory: tlsDirectory)
        }
        return client
    }

    /// The operator whose certificate the CLI presents from `<tlsDirectory>/operators`: `named`,
    /// else the only one there, else the one named like the login user. One line when none fits.
    public static func chooseOperator(tlsDirectory: String, named: String?, loginName: String?) throws(Failure) -> String {
        let folder = tlsDirectory + "/" + OperatorIdentity.directoryName
        let available = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
            .filter { $0.hasSuffix(".key") }.map { String($0.dropLast(4)) }.sorted()
        if let named {
            guard available.contains(named) else {
                throw Failure.certificate("no operator certificate \(named) in \(folder) (make one with pgquorum certs issue --operator \(named)\(available.isEmpty ? "" : "; there: " + available.joined(separator: ", ")))")
            }
            return named
        }
        if available.count == 1 { return available[0] }
        if let loginName, available.contains(loginName) { return loginName }
        if available.isEmpty {
            throw Failure.certificate("no operator certificate in \(folder); make one with pgquorum certs issue --operator NAME (where the CA key is) and copy it there")
        }
        throw Failure.certificate("several operator certificates in \(folder) (\(available.joined(separator: ", "))); choose one with --as NAME")
    }

    public init(caFile: String, certificate: (chain: String, key: String)? = nil,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
        if let certificate {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate.chain).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: certificate.key, format: .pem))
        }
        configuration.certificateVerification = .noHostnameVerification
        self.context = try NIOSSLContext(configuration: configuration)
        self.group = group
    }

    public func get(host: String, port: Int, path: String, headers: [(String, String)] = [],
                    timeout: Duration) async throws -> Response {
        try await send(.GET, host: host, port: port, path: path, headers: headers, timeout: timeout)
    }

    /// Any method without a body, by name ("HEAD" and "OPTIONS": what load balancers check with).
    public func request(_ method: String, host: String, port: Int, path: String, timeout: Duration) async throws -> Response {
        try await send(HTTPMethod(rawValue: method), host: host, port: port, path: path, headers: [], timeout: timeout)
    }

    public func post(host: String, port: Int, path: String, timeout: Duration) async throws -> Response {
        try await send(.POST, host: host, port: port, path: path, headers: [("Content-Length", "0")], timeout: timeout)
    }

    private func send(_ method: HTTPMethod, host: String, port: Int, path: String, headers: [(String, String)],
                      timeout: Duration) async throws -> Response {
        let started = ContinuousClock.now
        let limit = TimeAmount.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
        let eventLoop = group.next()
        let promise = eventLoop.makePromise(of: (Int, [UInt8]).self)
        let deadline = eventLoop.scheduleTask(in: limit) { promise.fail(Failure.timedOut(timeout)) }
        let context = self.context
        let connect = ClientBootstrap(group: eventLoop)
            .connectTimeout(limit)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise))
                }
            }
            .connect(host: host, port: port)
        connect.whenFailure { promise.fail(Failure.connection("cannot connect to \(host):\(port): \(Self.reason($0))")) }
        connect.whenSuccess { channel in
            var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
            head.headers.add(name: "Host", value: "\(host):\(port)")
            head.headers.add(name: "Connection", value: "close")
            for (name, value) in headers { head.headers.add(name: name, value: value) }
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
        defer { deadline.cancel() }
        let (status, body) = try await promise.futureResult.get()
        return Response(status: status, body: body, elapsed: ContinuousClock.now - started)
    }
}

private final class ResponseCollector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let promise: EventLoopPromise<(Int, [UInt8])>
    private var status = 0
    private var body: [UInt8] = []
    /// Status answers are small; a larger body means something else answered.
    private let limit = 4 << 20

    init(promise: EventLoopPromise<(Int, [UInt8])>) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
        case .body(var buffer):
            guard body.count + buffer.readableBytes <= limit else {
                promise.fail(APIClient.Failure.connection("response larger than \(limit) bytes"))
                context.close(promise: nil)
                return
            }
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            promise.succeed((status, body))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(APIClient.Failure.connection("\(error)"))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(APIClient.Failure.connection("connection closed before a complete answer"))
    }
}

extension APIClient {
    /// "Connection refused" rather than NIO's nested description of every address it tried.
    static func reason(_ error: any Error) -> String {
        var underlying: any Error = error
        if let connection = error as? NIOConnectionError, let first = connection.connectionErrors.first {
            underlying = first.error
        }
        if let io = underlying as? IOError { return String(cString: strerror(io.errnoCode)) }
        return "\(underlying)"
    }
}
