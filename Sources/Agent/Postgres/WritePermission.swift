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
final class WritePermission: Sendable {
    private struct State {
        var until: ContinuousClock.Instant?
        var line: FenceLine?
    }

    private let state = Mutex(State())

    /// Writes allowed until `deadline`; the keeper holds it.
    func allow(until deadline: ContinuousClock.Instant) {
        state.withLock { state in
            state.until = deadline
            state.line?.allowWrites(for: deadline - .now)
        }
    }

    /// No writes from now on: the keeper stops a postmaster that could write at once.
    func revoke() {
        state.withLock { state in
            state.until = nil
            state.line?.revoke()
        }
    }

    /// The keeper line of a newly started postmaster (nil: none runs). Its keeper is armed only
    /// if writes are allowed at this moment.
    func attach(_ line: FenceLine?) {
        state.withLock { state in
            state.line = line
            if let line, let until = state.until, ContinuousClock.now < until { line.allowWrites(for: until - .now) }
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
}
