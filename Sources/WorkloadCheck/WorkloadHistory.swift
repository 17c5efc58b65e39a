/// Everything one scenario run saw: the client's acknowledged writes, the cluster's promotions,
/// the faults the lab injected, and what every node holds after the heal.
///
/// Times are milliseconds since 1970 on the host's wall clock. A lab's nodes are network
/// namespaces of one host, so the client, every PostgreSQL server and every agent read the same
/// clock, and the times can be compared across them.
public struct WorkloadHistory: Sendable, Equatable, Codable {
    /// One write the client saw acknowledged (committed) by a server.
    public struct Write: Sendable, Equatable, Codable {
        /// The row's key, unique over the whole run.
        public var id: Int64
        /// The node whose PostgreSQL acknowledged it.
        public var node: String
        /// When the client sent the INSERT.
        public var sentAt: Double
        /// The server's `clock_timestamp()` while it ran the INSERT: a lower bound of the commit.
        public var serverAt: Double
        /// When the acknowledgement reached the client: an upper bound of the commit.
        public var ackedAt: Double

        public init(id: Int64, node: String, sentAt: Double, serverAt: Double, ackedAt: Double) {
            self.id = id
            self.node = node
            self.sentAt = sentAt
            self.serverAt = serverAt
            self.ackedAt = ackedAt
        }
    }

    /// A primary the cluster chose (an entry of its history: `GET /history`).
    public struct Promotion: Sendable, Equatable, Codable {
        public var node: String
        public var epoch: UInt64
        /// When the leader proposed it: after the old primary's lease ran out, before the new
        /// primary's PostgreSQL was promoted.
        public var at: Double
        public var reason: String

        public init(node: String, epoch: UInt64, at: Double, reason: String) {
            self.node = node
            self.epoch = epoch
            self.at = at
            self.reason = reason
        }
    }

    /// One fault of the scenario, from its start (`at`) to the moment the cluster was whole again.
    public struct Trial: Sendable, Equatable, Codable {
        public var number: Int
        /// What was done, as the lab's event log says it (`kill primary`, `isolate primary`, …).
        public var fault: String
        public var at: Double
        /// The primary when the fault began (nil: none was known).
        public var primaryBefore: String?
        /// When the trial ended: faults healed, every node back and replicating.
        public var endedAt: Double
        /// PostgreSQL servers started by the agents during the trial (fences, crashes, rewinds);
        /// nil when not counted.
        public var postgresStarts: Int?

        public init(number: Int, fault: String, at: Double, primaryBefore: String?, endedAt: Double, postgresStarts: Int? = nil) {
            self.number = number
            self.fault = fault
            self.at = at
            self.primaryBefore = primaryBefore
            self.endedAt = endedAt
            self.postgresStarts = postgresStarts
        }
    }

    public var writes: [Write]
    /// INSERTs that failed or got no answer (not acknowledged: allowed to be absent or present).
    public var failedAttempts: Int
    public var promotions: [Promotion]
    public var trials: [Trial]
    /// The node that was primary when the checker read the final state.
    public var finalPrimary: String?
    /// Every row key each node holds after the heal (nodes that could not be read are absent).
    public var finalRows: [String: Set<Int64>]
    /// The client's write interval, in milliseconds.
    public var intervalMilliseconds: Double

    public init(writes: [Write], failedAttempts: Int, promotions: [Promotion], trials: [Trial], finalPrimary: String?,
                finalRows: [String: Set<Int64>], intervalMilliseconds: Double) {
        self.writes = writes
        self.failedAttempts = failedAttempts
        self.promotions = promotions
        self.trials = trials
        self.finalPrimary = finalPrimary
        self.finalRows = finalRows
        self.intervalMilliseconds = intervalMilliseconds
    }
}
