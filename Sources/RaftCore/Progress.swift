/// The leader's view of one follower's log, and the flow control of appends to it.
public struct Progress: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// Unsure where the follower's log ends: one append at a time until it answers.
        case probe
        /// Steady streaming: appends go out optimistically, up to the in-flight limit.
        case replicate
        /// A snapshot is on its way; nothing else is sent until it lands or times out.
        case snapshot(index: LogIndex)
    }

    public internal(set) var match: LogIndex = 0
    public internal(set) var next: LogIndex
    public internal(set) var state: State = .probe
    /// The latest heartbeat round this follower acknowledged (drives the lease and ReadIndex).
    public internal(set) var acknowledgedRound: UInt64 = 0
    /// Heard from since the last CheckQuorum pass.
    var recentlyActive = false
    /// The leader's tick of the last response from this peer (nil: none yet).
    var lastResponseTick: UInt64?
    /// In probe state: an append is out and unanswered.
    var probeSent = false
    /// In replicate state: the last index and round of every unacknowledged append.
    var inflight: [(lastIndex: LogIndex, round: UInt64)] = []
    /// In snapshot state: ticks since the snapshot was sent.
    var snapshotElapsed = 0
    /// How often this peer was found to have lost entries it had acknowledged (a wiped node).
    public internal(set) var lostEntries = 0

    init(next: LogIndex) { self.next = next }

    public static func == (lhs: Progress, rhs: Progress) -> Bool {
        lhs.match == rhs.match && lhs.next == rhs.next && lhs.state == rhs.state
            && lhs.acknowledgedRound == rhs.acknowledgedRound
    }

    func isPaused(maxInflight: Int) -> Bool {
        switch state {
        case .probe: probeSent
        case .replicate: inflight.count >= maxInflight
        case .snapshot: true
        }
    }

    mutating func becomeProbe() {
        if case .snapshot(let index) = state {
            next = max(match + 1, index + 1)
        } else {
            next = match + 1
        }
        state = .probe
        probeSent = false
        inflight.removeAll()
    }

    mutating func becomeReplicate() {
        state = .replicate
        next = match + 1
        probeSent = false
        inflight.removeAll()
    }

    mutating func becomeSnapshot(index: LogIndex) {
        state = .snapshot(index: index)
        probeSent = false
        inflight.removeAll()
        snapshotElapsed = 0
    }

    /// The peer proved that its log lacks entries it acknowledged (see `RaftNode`'s handling of
    /// rejections): nothing it acknowledged counts any more. Counted in `lostEntries`.
    mutating func forgetMatch() {
        guard match > 0 else { return }
        match = 0
        lostEntries += 1
    }

    /// Records an acknowledged match; returns whether it moved forward.
    mutating func acknowledge(match newMatch: LogIndex) -> Bool {
        guard newMatch > match else { return false }
        match = newMatch
        next = max(next, newMatch + 1)
        probeSent = false
        inflight.removeAll { $0.lastIndex <= newMatch }
        return true
    }

    /// Records an append just sent.
    mutating func sent(lastIndex: LogIndex, round: UInt64, entryCount: Int) {
        switch state {
        case .replicate:
            guard entryCount > 0 else { return }
            next = lastIndex + 1
            inflight.append((lastIndex, round))
        case .probe:
            probeSent = true
        case .snapshot:
            break
        }
    }
}
