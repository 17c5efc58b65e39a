/// The cluster membership: who votes, and who only receives the log.
public struct Configuration: Sendable, Equatable, CustomStringConvertible {
    public private(set) var voters: Set<NodeID>
    public private(set) var learners: Set<NodeID>

    public init(voters: Set<NodeID>, learners: Set<NodeID> = []) {
        self.voters = voters
        self.learners = learners.subtracting(voters)
    }

    public static let empty = Configuration(voters: [])

    public var members: Set<NodeID> { voters.union(learners) }
    public var quorum: Int { voters.count / 2 + 1 }

    public func contains(_ id: NodeID) -> Bool { voters.contains(id) || learners.contains(id) }

    /// The membership after `change`. Each change moves at most one voter, so the majorities
    /// of the old and the new configuration always overlap.
    public func applying(_ change: MembershipChange) -> Configuration {
        var next = self
        switch change {
        case .addVoter(let id):
            next.learners.remove(id)
            next.voters.insert(id)
        case .addLearner(let id):
            next.voters.remove(id)
            next.learners.insert(id)
        case .remove(let id):
            next.voters.remove(id)
            next.learners.remove(id)
        }
        return next
    }

    /// Whether the voters in `acknowledged` form a majority of this configuration.
    public func hasQuorum(_ acknowledged: Set<NodeID>) -> Bool {
        !voters.isEmpty && voters.intersection(acknowledged).count >= quorum
    }

    /// The largest value that a majority of voters has reached, given each voter's value.
    /// Voters missing from `values` count as zero.
    public func quorumValue(_ values: [NodeID: UInt64]) -> UInt64 {
        guard !voters.isEmpty else { return 0 }
        var sorted = voters.map { values[$0] ?? 0 }
        sorted.sort(by: >)
        return sorted[quorum - 1]
    }

    public var description: String {
        let v = voters.sorted().map(\.description).joined(separator: ",")
        let l = learners.sorted().map(\.description).joined(separator: ",")
        return l.isEmpty ? "voters{\(v)}" : "voters{\(v)} learners{\(l)}"
    }
}
