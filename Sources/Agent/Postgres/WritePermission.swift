import PostgresControl
import Synchronization

/// The one write permission of this node's PostgreSQL: writable until a deadline (the lease's
/// end), or not at all; held under one lock together with the running postmaster's fence-keeper
/// line, so that the keeper always enforces the latest word.
///
/// The Raft task sets it — before any message that could let another node lead goes out
/// (`RaftDriver.enforceFence`). The PostgreSQL thread never arms the keeper from its own copy of
/// the intent, which may be stale by the time it acts: a newly started postmaster's keeper is
/// armed from here (`attach`), and `pg_promote` runs only while `deadline()` says writes are
/// allowed. Otherwise a revoke between the thread's read of the intent and its promotion (a
/// TimeoutNow for a hand-over), or one sent while PostgreSQL was restarting and had no keeper,
/// was overwritten: the old primary writable until its old lease's end while the new one is
/// promoted (issue 16, race 1).
///
/// When a lease lapses the keeper freezes the server rather than stopping it; a new deadline
/// continues it. That is safe only while no other node can have been primary since: so a
/// frozen server is continued only by a lease of the same term and epoch as the one that
/// lapsed, and anything else (`stop`, a lease of another term or epoch) has it killed.
final class WritePermission: Sendable {
    /// The term and epoch a deadline was granted in.
    struct Grant: Sendable, Equatable {
        var term: UInt64
        var epoch: UInt64
    }

    private struct State {
        var until: ContinuousClock.Instant?
        var line: FenceLine?
        /// The grant the running postmaster's keeper last held, kept after it lapses (the
        /// keeper then freezes the server); nil once the server may not be continued.
        var granted: Grant?
    }

    private let state = Mutex(State())

    /// Writes allowed until `deadline`, granted in `grant`'s term and epoch; the keeper holds it
    /// (and continues a server it froze when an earlier deadline of the same grant passed).
    func allow(until deadline: ContinuousClock.Instant, grant: Grant) {
        state.withLock { state in
            if let previous = state.granted, previous != grant, state.until.map({ ContinuousClock.now >= $0 }) ?? true {
                // The previous grant lapsed (the server may be frozen): never continue it under
                // another term or epoch, another node may have been primary in between. The Raft
                // task stops it first (`FenceOrder`); this keeps the rule for any other caller.
                state.line?.stopNow()
            }
            state.until = deadline
            state.granted = grant
            state.line?.allowWrites(for: deadline - .now)
        }
    }

    /// The lease lapsed, and may come back in the same term: no writes from now on, the keeper
    /// freezes the server at once; `allow` with the same grant continues it.
    func lapse() {
        state.withLock { state in
            state.until = nil
            state.line?.revoke()
        }
    }

    /// No writes from now on, and no way back: another node may be promoted (the lease was
    /// handed over, or this node no longer leads its term). The keeper stops the server now.
    func stop() {
        state.withLock { state in
            state.until = nil
            state.granted = nil
            state.line?.stopNow()
        }
    }

    /// The keeper line of a newly started postmaster (nil: none runs). Its keeper is armed only
    /// if writes are allowed at this moment.
    func attach(_ line: FenceLine?) {
        state.withLock { state in
            state.line = line
            if let line, let until = state.until, ContinuousClock.now < until {
                line.allowWrites(for: until - .now)
            } else {
                state.granted = nil
            }
        }
    }

    /// The deadline the keeper holds right now; nil when writes are not allowed (revoked, past,
    /// or no keeper to hold it).
    func deadline() -> ContinuousClock.Instant? {
        state.withLock { state in
            guard let until = state.until, ContinuousClock.now < until, state.line != nil else { return nil }
            return until
        }
    }

    /// Whether the running server's keeper holds a grant (current or lapsed): it freezes the
    /// server once the deadline passes, and the Raft task continues or stops it. The PostgreSQL
    /// thread leaves such a server to the keeper instead of stopping it on a stale intent.
    var keeperEnforces: Bool {
        state.withLock { $0.line != nil && $0.granted != nil }
    }

    /// The grant that lapsed without being stopped, or nil: the server may be frozen, waiting for
    /// the lease of that grant to come back.
    var lapsedGrant: Grant? {
        state.withLock { state in
            state.until.map { ContinuousClock.now >= $0 } ?? true ? state.granted : nil
        }
    }
}
