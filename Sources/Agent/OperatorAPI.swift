import ClusterConfig
import Foundation
import Hummingbird
import NIOCore
import NIOSSL
import PeerTransport
import RaftCore

/// A request context that can tell who the client is: the node or operator named in the client
/// certificate, when one signed by the cluster CA was presented (TLS verified it).
struct OperatorRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// Whom the client certificate names, or nil (none presented, or it names neither).
    func client(cluster: String) async -> CertificateSubject? {
        guard let bytes = await certificate() else { return nil }
        return PeerIdentity.subject(inCertificateDER: bytes, cluster: cluster)
    }

    /// The client certificate's DER (TLS verified it against the cluster CA), or nil.
    private func certificate() async -> [UInt8]? {
        let der = try? await channel.pipeline.handler(type: NIOSSLHandler.self)
            .map { handler in try? handler.peerCertificate?.toDERBytes() }.get()
        return der ?? nil
    }

    /// What a refusal says about a certificate that names nobody allowed here.
    func whatTheCertificateIs(cluster: String) async -> String {
        await certificate() == nil ? "no client certificate was presented" : "the client certificate names no operator or node of cluster \(cluster)"
    }

    /// The operator who may change the cluster, or the 403 that says which certificate to use.
    func requireOperator(cluster: String, action: String) async -> Result<String, OperatorRefusal> {
        switch await client(cluster: cluster) {
        case .operator(let name)?:
            return .success(name)
        case .node(let name)?:
            return .failure(OperatorRefusal(message: "\(action) needs an operator certificate; \(name)'s is a node certificate, which only identifies agents to each other (make one with pgquorum certs issue --operator NAME)"))
        case nil:
            return .failure(OperatorRefusal(message: "\(action) needs an operator certificate from the cluster CA, and \(await whatTheCertificateIs(cluster: cluster)) (pgquorum certs issue --operator NAME; the CLI presents it from tls.dir/operators)"))
        }
    }
}

/// Why an action was refused (403), in one line.
struct OperatorRefusal: Error {
    let message: String
}

/// What the API handlers may do with the running agent: read its latest published state, and
/// ask the Raft task to confirm leadership.
public struct AgentHandle: Sendable {
    let latest: @Sendable () -> AgentSnapshot?
    let handOver: @Sendable (NodeID?) async -> HandOverResult
    /// Confirms leadership with a ReadIndex round; nil when too many reads wait already.
    let confirmLeadership: @Sendable () async -> Bool?
    let movePrimary: @Sendable (PrimaryMoveRequest) async -> PrimaryMoveResult
}

/// The operator HTTP API (docs/api.md). Reads need TLS to the cluster CA and no client
/// certificate (unless `api.require_client_certificate`), so load balancers and probes can use
/// them; actions need an operator's certificate.
enum OperatorAPI {
    /// Query parameter set on a read forwarded from a follower to the leader, so that it is never
    /// forwarded twice (the leader may have just changed).
    static let forwardedParameter = "forwarded"

    static func router(agent: AgentHandle, config: ClusterConfig, client: APIClient?) -> Router<OperatorRequestContext> {
        let router = Router(context: OperatorRequestContext.self)
        addHealthChecks(to: router, agent: agent)
        router.get("/history") { _, context -> Response in
            if let refused = await certificateMissing(context, config: config) { return refused }
            guard let snapshot = agent.latest() else { return json(.serviceUnavailable, ["error": "the agent is starting"]) }
            return encode(.ok, snapshot.history)
        }
        router.get("/metrics") { _, context -> Response in
            if let refused = await certificateMissing(context, config: config) { return refused }
            guard let snapshot = agent.latest() else { return json(.serviceUnavailable, ["state": "starting"]) }
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                            body: .init(byteBuffer: ByteBuffer(string: snapshot.prometheusText)))
        }
        router.get("/cluster") { request, context -> Response in
            if let refused = await certificateMissing(context, config: config) { return refused }
            let stale: Bool
            switch request.uri.queryParameters.get("stale") {
            case nil, "false": stale = false
            case "true", "": stale = true
            case let other?:
                return json(.badRequest, ["error": "stale must be true or false, not '\(other)'"])
            }
            return await clusterView(agent: agent, config: config, client: client, stale: stale,
                                     forwarded: request.uri.queryParameters.get(forwardedParameter) != nil)
        }
        router.post("/switchover") { request, context -> Response in
            // Mutating: only an operator's certificate from the cluster CA.
            let caller: String
            switch await context.requireOperator(cluster: config.cluster, action: "switchover") {
            case .success(let name): caller = name
            case .failure(let refusal): return json(.forbidden, ["error": refusal.message])
            }
            let to = request.uri.queryParameters.get("to")
            if let to, config.node(named: to) == nil {
                return json(.badRequest, ["error": "no node \(to) in this cluster (its nodes: \(config.nodes.map(\.name).joined(separator: ", ")))"])
            }
            let reason = request.uri.queryParameters.get("reason") ?? "planned switchover"
            context.logger.notice("switchover requested", metadata: ["by": "\(caller)", "to": "\(to ?? "best")", "reason": "\(reason)"])
            // With PostgreSQL bootstrapped, the primary moves (cleanly); otherwise only leadership.
            if (agent.latest()?.view.epoch ?? 0) > 0 {
                return moveAnswer(await agent.movePrimary(PrimaryMoveRequest(kind: .switchover, target: to, reason: reason, requestedBy: caller)),
                                  caller: caller)
            }
            switch await agent.handOver(to.flatMap { config.node(named: $0)?.id }) {
            case .done(let leader):
                return json(.ok, ["leader": leader, "requested_by": caller])
            case .notLeader(let leader):
                return json(.conflict, ["error": "this node is not the leader; send the request to the leader", "leader": leader ?? ""])
            case .refused(let why):
                return json(.conflict, ["error": why])
            case .timedOut:
                return json(.serviceUnavailable, ["error": "the target did not take over within an election timeout; leadership may not have moved"])
            }
        }
        router.post("/failover") { request, context -> Response in
            let caller: String
            switch await context.requireOperator(cluster: config.cluster, action: "failover") {
            case .success(let name): caller = name
            case .failure(let refusal): return json(.forbidden, ["error": refusal.message])
            }
            guard let to = request.uri.queryParameters.get("to"), config.node(named: to) != nil else {
                return json(.badRequest, ["error": "failover needs ?to=NODE, a node of this cluster (\(config.nodes.map(\.name).joined(separator: ", ")))"])
            }
            guard let reason = request.uri.queryParameters.get("reason"), !reason.isEmpty else {
                return json(.badRequest, ["error": "failover needs ?reason=TEXT; it is recorded in the cluster history"])
            }
            let force: Bool
            switch request.uri.queryParameters.get("force") {
            case nil, "false": force = false
            case "true", "": force = true
            case let other?: return json(.badRequest, ["error": "force must be true or false, not '\(other)'"])
            }
            context.logger.notice("failover requested", metadata: ["by": "\(caller)", "to": "\(to)", "reason": "\(reason)", "force": "\(force)"])
            return moveAnswer(await agent.movePrimary(PrimaryMoveRequest(kind: .failover, target: to, reason: reason, force: force,
                                                                         requestedBy: caller)), caller: caller)
        }
        router.post("/recover-quorum") { request, context -> Response in
            // Sent to the survivor itself (pgquorum recover-quorum): it becomes the whole cluster.
            let caller: String
            switch await context.requireOperator(cluster: config.cluster, action: "recover-quorum") {
            case .success(let name): caller = name
            case .failure(let refusal): return json(.forbidden, ["error": refusal.message])
            }
            guard let reason = request.uri.queryParameters.get("reason"), !reason.isEmpty else {
                return json(.badRequest, ["error": "recover-quorum needs ?reason=TEXT; it is recorded in the cluster history"])
            }
            guard let me = agent.latest()?.view.answeredBy else { return json(.serviceUnavailable, ["error": "the agent is starting"]) }
            context.logger.notice("quorum recovery requested", metadata: ["by": "\(caller)", "reason": "\(reason)"])
            return moveAnswer(await agent.movePrimary(PrimaryMoveRequest(kind: .recoverQuorum, target: me, reason: String(reason),
                                                                         force: true, requestedBy: caller)), caller: caller)
        }
        return router
    }

    /// With `api.require_client_certificate`, a read without a client certificate from the
    /// cluster CA gets 403: topology, hosts, positions and the history are not for anyone who
    /// reaches the port. The load-balancer checks stay open.
    static func certificateMissing(_ context: OperatorRequestContext, config: ClusterConfig) async -> Response? {
        guard config.requireClientCertificate else { return nil }
        switch await context.client(cluster: config.cluster) {
        case .operator?: return nil
        // A node of this cluster (a follower forwarding a read); not any name the CA signed.
        case .node(let name)? where config.node(named: name) != nil: return nil
        default: break
        }
        return json(.forbidden, ["error": "this agent requires a client certificate from the cluster CA naming an operator or one of its nodes (api.require_client_certificate), and \(await context.whatTheCertificateIs(cluster: config.cluster)); present an operator's (pgquorum certs issue --operator NAME)"])
    }

    /// The load-balancer checks (Patroni's): on the API, and alone on `health_port`.
    static func addHealthChecks(to router: Router<OperatorRequestContext>, agent: AgentHandle) {
        healthCheck(router, "/health") { _ -> Response in
            // Patroni: 200 when PostgreSQL is up and running. A witness has none: its agent counts.
            guard let snapshot = agent.latest() else { return json(.serviceUnavailable, ["state": "starting"]) }
            guard let postgres = snapshot.localPostgres else {
                return json(.ok, ["state": "running", "role": snapshot.role, "node": snapshot.view.answeredBy])
            }
            return json(postgres.healthy ? .ok : .serviceUnavailable, healthFields(snapshot, postgres))
        }
        // Patroni's health checks for load balancers: 200 yes, 503 no.
        for path in ["/primary", "/master", "/read-write"] {
            healthCheck(router, path) { _ -> Response in
                guard let snapshot = agent.latest() else { return json(.serviceUnavailable, ["error": "the agent is starting"]) }
                guard let postgres = snapshot.localPostgres else {
                    return json(.serviceUnavailable, ["error": "no PostgreSQL on this node (a witness)"])
                }
                // Writable primary holding the lease right now (the lease is read against the clock).
                let primary = snapshot.primaryOfCurrentTerm && snapshot.hasLease && postgres.role == "primary" && postgres.healthy
                return json(primary ? .ok : .serviceUnavailable, healthFields(snapshot, postgres))
            }
        }
        for path in ["/replica", "/read-only"] {
            healthCheck(router, path) { request -> Response in
                guard let snapshot = agent.latest() else { return json(.serviceUnavailable, ["error": "the agent is starting"]) }
                guard let postgres = snapshot.localPostgres else {
                    return json(.serviceUnavailable, ["error": "no PostgreSQL on this node (a witness)"])
                }
                var limit: UInt64?
                if let text = request.uri.queryParameters.get("lag") {
                    guard let bytes = parseSize(String(text)) else {
                        return json(.badRequest, ["error": "lag must be a size such as 1048576, 16kB or 1MB, not '\(text)'"])
                    }
                    limit = bytes
                }
                let replica = postgres.role == "replica" && postgres.healthy && postgres.streamedRecently
                    && limit.map { postgres.lagBytes <= $0 } != false
                let primary = snapshot.primaryOfCurrentTerm && snapshot.hasLease && postgres.role == "primary" && postgres.healthy
                // Patroni: /read-only is /replica that also accepts the primary.
                let ok = path == "/replica" ? replica : (replica || primary)
                return json(ok ? .ok : .serviceUnavailable, healthFields(snapshot, postgres))
            }
        }
        healthCheck(router, "/leader") { _ -> Response in
            guard let snapshot = agent.latest() else { return json(.serviceUnavailable, ["state": "starting"]) }
            let leads = snapshot.role == "leader" && snapshot.hasLease
            return json(leads ? .ok : .serviceUnavailable, [
                "role": snapshot.role, "leader": snapshot.view.leader ?? "", "node": snapshot.view.answeredBy,
            ])
        }
    }

    /// The plain-HTTP router of `health_port`: the health checks and nothing else.
    static func healthRouter(agent: AgentHandle) -> Router<OperatorRequestContext> {
        let router = Router(context: OperatorRequestContext.self)
        addHealthChecks(to: router, agent: agent)
        return router
    }

    /// The leader view. Stale: this node's state at once. Otherwise the leader answers after a
    /// ReadIndex round; a follower forwards the request to the leader it knows.
    private static func clusterView(agent: AgentHandle, config: ClusterConfig, client: APIClient?,
                                    stale: Bool, forwarded: Bool) async -> Response {
        guard let snapshot = agent.latest() else { return json(.serviceUnavailable, ["error": "the agent is starting"]) }
        if stale { return encode(.ok, snapshot.view) }
        if snapshot.role == "leader" {
            let confirmation = await agent.confirmLeadership()
            guard let confirmation else {
                var response = json(.serviceUnavailable, ["error": "too many linearizable reads are waiting here; retry in a second, or use ?stale=true"])
                response.headers[.retryAfter] = "1"
                return response
            }
            guard confirmation, var confirmed = agent.latest()?.view else {
                return json(.serviceUnavailable, ["error": "this node could not confirm its leadership with a quorum; retry, or use ?stale=true"])
            }
            confirmed.linearizable = true
            return encode(.ok, confirmed)
        }
        if forwarded {
            return json(.serviceUnavailable, ["error": "\(snapshot.view.answeredBy) is not the leader any more (the read was forwarded to it as the leader); retry"])
        }
        guard let leaderName = snapshot.view.leader, let leader = config.node(named: leaderName), let client else {
            return json(.serviceUnavailable, ["error": "no leader known to \(snapshot.view.answeredBy); use ?stale=true for this node's own view"])
        }
        // Below `pgquorum status`'s own 1.5 s budget, so a healthy follower still answers it.
        let timeout = Duration.milliseconds(1_000)
        do {
            let answer = try await client.get(host: leader.host, port: leader.apiPort, path: "/cluster?\(forwardedParameter)=1",
                                              timeout: timeout)
            var response = Response(status: HTTPResponse.Status(code: answer.status), headers: [.contentType: "application/json"],
                                    body: .init(byteBuffer: ByteBuffer(bytes: answer.body)))
            // The leader's 503s (too many reads waiting, leadership not confirmed) pass on
            // retryable; the client does not see the leader's own headers.
            if answer.status == 503 { response.headers[.retryAfter] = "1" }
            return response
        } catch {
            return json(.serviceUnavailable, ["error": "the leader \(leaderName) did not answer: \(error); use ?stale=true for this node's own view"])
        }
    }

    private static func moveAnswer(_ result: PrimaryMoveResult, caller: String) -> Response {
        switch result {
        case .handedOver(let leader, let epoch):
            return json(.ok, ["leader": leader, "from_epoch": "\(epoch)", "requested_by": caller])
        case .promoted(let epoch):
            return json(.ok, ["promoted_in_epoch": "\(epoch)", "requested_by": caller])
        case .notLeader(let leader):
            return json(.conflict, ["error": "this node is not the leader; send the request to the leader", "leader": leader ?? ""])
        case .refused(let why):
            return json(.conflict, ["error": why])
        case .timedOut(let why):
            return json(.serviceUnavailable, ["error": why])
        }
    }

    private static func healthFields(_ snapshot: AgentSnapshot, _ postgres: LocalPostgresView) -> [String: String] {
        [
            "node": snapshot.view.answeredBy, "raft_role": snapshot.role, "role": postgres.role,
            "state": postgres.healthy ? (postgres.streaming ? "streaming" : "running") : "stopped",
            "timeline": "\(postgres.timeline)", "epoch": "\(snapshot.view.epoch)", "primary": snapshot.view.primary ?? "",
            "lag_bytes": "\(postgres.lagBytes)",
        ]
    }

    /// Patroni's size syntax for `?lag=`: bytes, or a number with kB, MB, GB (powers of 1024).
    static func parseSize(_ text: String) -> UInt64? {
        let units: [(String, UInt64)] = [("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10), ("KB", 1 << 10), ("B", 1)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            guard let number = UInt64(text.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)) else { return nil }
            return number.multipliedReportingOverflow(by: factor).overflow ? nil : number * factor
        }
        return UInt64(text)
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// Registers a load-balancer check for GET, HEAD and OPTIONS alike, as Patroni answers them:
    /// HAProxy configs written for Patroni often say `option httpchk OPTIONS /primary`, and a 404
    /// there marks every server down. HEAD gets the status and headers without the body.
    private static func healthCheck(_ router: Router<OperatorRequestContext>, _ path: String,
                                    _ answer: @escaping @Sendable (Request) async -> Response) {
        router.get(RouterPath(path)) { request, _ in await answer(request) }
        router.on(RouterPath(path), method: .options) { request, _ in await answer(request) }
        router.head(RouterPath(path)) { request, _ in
            var full = await answer(request)
            full.body = .init()
            full.headers[.contentLength] = "0"
            return full
        }
    }

    private static func encode(_ status: HTTPResponse.Status, _ value: some Encodable) -> Response {
        guard let data = try? encoder.encode(value) else { return json(.internalServerError, ["error": "cannot encode the answer"]) }
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: Array(data) + [0x0a])))
    }

    private static func json(_ status: HTTPResponse.Status, _ fields: [String: String]) -> Response {
        encode(status, fields)
    }
}
