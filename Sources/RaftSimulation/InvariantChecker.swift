import RaftCore

/// The safety properties of Raft (and of the leader lease), checked against everything the
/// simulated nodes do. Each check returns a one-line description of the first violation.
struct InvariantChecker {
    private struct EntryKey: Hashable { var index: LogIndex; var term: Term }

    private var leaderOfTerm: [Term: NodeID] = [:]
    /// Every (index, term) any log ever held, with its payload and the term before it.
    private var entriesSeen: [EntryKey: (payload: EntryPayload, previousTerm: Term?)] = [:]
    /// The history applied by state machines, and the digest after each index.
    private var committed: [LogIndex: Entry] = [:]
    private var digests: [LogIndex: UInt64]
    private(set) var highestCommitted: LogIndex = 0
    /// The highest commit index any node has reported.
    private var highestKnownCommit: LogIndex = 0
    private var leaderLogs: [NodeID: (term: Term, lastIndex: LogIndex, lastTerm: Term)] = [:]
    private var checkedCommit: [NodeID: (term: Term, index: LogIndex)] = [:]
    private var readFloors: [UInt64: LogIndex] = [:]

    /// `initialFingerprint`: the application's state before any entry (index 0).
    init(initialFingerprint: UInt64 = 0) { digests = [0: initialFingerprint] }

    func committedPayload(at index: LogIndex) -> EntryPayload? { committed[index]?.payload }

    /// Election safety and leader completeness.
    mutating func leaderElected(_ id: NodeID, _ node: RaftNode) -> String? {
        if let other = leaderOfTerm[node.term], other != id {
            return "election safety: \(other) and \(id) both lead term \(node.term)"
        }
        leaderOfTerm[node.term] = id
        // The commit index a new leader inherits was counted by earlier leaders, under their
        // membership; from here on, every commit it makes is checked against its own.
        checkedCommit[id] = (node.term, node.commitIndex)
        guard highestCommitted > node.snapshotMetadata.index else { return nil }
        for index in (node.snapshotMetadata.index + 1)...highestCommitted {
            guard let entry = committed[index] else { continue }
            if node.term(at: index) != entry.term {
                return "leader completeness: \(id) leads term \(node.term) without committed entry \(index)@\(entry.term)"
            }
        }
        return nil
    }

    /// Log matching: an (index, term) pair names one entry, with one predecessor term, everywhere.
    mutating func entriesArriving(_ entries: [Entry], at node: RaftNode) -> String? {
        var previousTerm = entries.first.flatMap { node.term(at: $0.index - 1) }
        for entry in entries {
            let key = EntryKey(index: entry.index, term: entry.term)
            if let seen = entriesSeen[key] {
                if seen.payload != entry.payload {
                    return "log matching: \(node.id) holds a different entry at \(entry.index)@\(entry.term)"
                }
                if let a = seen.previousTerm, let b = previousTerm, a != b {
                    return "log matching: \(node.id)'s entry \(entry.index)@\(entry.term) follows term \(b), elsewhere term \(a)"
                }
            } else {
                entriesSeen[key] = (entry.payload, previousTerm)
            }
            previousTerm = entry.term
        }
        return nil
    }

    /// State machine safety: no two nodes apply different entries at one index.
    mutating func applied(_ entry: Entry, digest: UInt64, node: NodeID) -> String? {
        if let known = committed[entry.index] {
            if known != entry {
                return "state machine safety: \(node) applied \(entry.index)@\(entry.term) where \(known.index)@\(known.term) was applied"
            }
            if let expected = digests[entry.index], expected != digest {
                return "state machine safety: \(node)'s state after \(entry.index) differs from another node's"
            }
            return nil
        }
        committed[entry.index] = entry
        digests[entry.index] = digest
        highestCommitted = max(highestCommitted, entry.index)
        return nil
    }

    func verifySnapshot(index: LogIndex, digest: UInt64, node: NodeID) -> String? {
        guard let expected = digests[index] else { return nil }
        return expected == digest ? nil : "state machine safety: \(node) restored a snapshot at \(index) that differs from the applied history"
    }

    /// Leader append-only, and every commit durable on a quorum of the leader's voters.
    mutating func afterProcessing(_ id: NodeID, _ node: RaftNode, disks: [NodeID: SimulatedDisk]) -> String? {
        highestKnownCommit = max(highestKnownCommit, node.commitIndex)
        guard node.role == .leader else {
            leaderLogs[id] = nil
            return nil
        }
        if let previous = leaderLogs[id], previous.term == node.term {
            let kept = node.term(at: previous.lastIndex) == previous.lastTerm
                || previous.lastIndex <= node.snapshotMetadata.index
            if node.lastIndex < previous.lastIndex || !kept {
                return "leader append-only: \(id) (term \(node.term)) lost or rewrote entry \(previous.lastIndex)"
            }
        }
        leaderLogs[id] = (node.term, node.lastIndex, node.lastTerm)

        let commit = node.commitIndex
        if let checked = checkedCommit[id], checked.term == node.term, checked.index >= commit { return nil }
        checkedCommit[id] = (node.term, commit)
        guard let commitTerm = node.term(at: commit) else { return nil }
        let voters = node.configuration.voters.sorted()
        let holders = voters.filter { disks[$0]?.holds(index: commit, term: commitTerm) == true }
        if holders.count < node.configuration.quorum {
            return "durability: \(id) committed \(commit)@\(commitTerm) but only \(holders.map(\.description)) of voters \(voters.map(\.description)) have it on disk"
        }
        return nil
    }

    /// No busy loop: a leader never answers a rejection at once with an append at the index it
    /// rejected (`ready` is what it has to send right after stepping `message`). Such a pair,
    /// exchanged again and again, kept a leader at a full core while a wiped node never caught up.
    func answered(_ message: Message, with ready: Ready) -> String? {
        guard case .appendResponse(.rejected(let rejected, _), _) = message.kind else { return nil }
        for reply in ready.messages + ready.messagesAfterPersist where reply.to == message.from {
            if case .append(let prevIndex, _, _, _, _) = reply.kind, prevIndex == rejected {
                return "busy loop: \(message.to) answered \(message.from)'s rejection of \(rejected) with the same append"
            }
        }
        return nil
    }

    /// At most one node may believe it holds the leader lease at any moment.
    func leases(_ nodes: [NodeID: RaftNode]) -> String? {
        let holders = nodes.keys.sorted().filter { nodes[$0]?.hasLeaderLease == true }
        guard holders.count > 1 else { return nil }
        let detail = holders.map { "\($0) (term \(nodes[$0]?.term ?? 0))" }.joined(separator: ", ")
        return "lease safety: \(detail) hold a leader lease at the same time"
    }

    mutating func readRequested(_ requestID: UInt64) { readFloors[requestID] = highestKnownCommit }

    /// Linearizable reads: the read index covers everything committed before the request.
    mutating func readConfirmed(_ read: ReadState, node: NodeID) -> String? {
        guard let floor = readFloors.removeValue(forKey: read.requestID) else { return nil }
        guard read.index >= floor else {
            return "linearizability: \(node) confirmed read \(read.requestID) at index \(read.index), but \(floor) was committed before the request"
        }
        return nil
    }
}
