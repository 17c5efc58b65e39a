/// What the Raft task tells this node's fence keeper after each batch of Raft work. Pure, so
/// the rule that decides between freezing PostgreSQL (a blip may be ridden through) and stopping
/// it (another node may be promoted) is tested one case per line.
///
/// A lease that lapses while this node still leads the term that made it primary, and was not
/// forfeited by a leadership transfer, may come back: the keeper freezes the server, and the
/// next renewal of that same lease (same term and epoch) continues it. Anything else stops it:
/// after a TimeoutNow the target may win an election at once, in a term this node does not
/// lead another node may be promoted, and a lease of a later term or epoch may follow another
/// node's promotion.
public enum FenceOrder: Sendable, Equatable {
    case none
    /// Writes allowed until the lease's new end; `continuing` when that continues a server the
    /// keeper froze at a lapse of the same lease.
    case renew(continuing: Bool)
    /// The lease lapsed and may come back: freeze now.
    case freeze
    /// No way back: stop now; `frozen` when the server was frozen waiting for a lease that can no
    /// longer return.
    case stop(frozen: Bool)

    /// - Parameters:
    ///   - mayWrite: this node is the primary of its current term as leader (or bootstraps).
    ///   - leaseHeld: the leader lease holds right now.
    ///   - leaseForfeited: a TimeoutNow went out in this term.
    ///   - leaseMoved: the lease's end differs from the one the keeper last got.
    ///   - keeperHolds: the keeper holds a deadline (or did at the last call).
    ///   - frozen: a lapsed grant waits to be continued (the server may be frozen).
    ///   - frozenInAnotherGrant: that lapsed grant's term or epoch is not the current one.
    public static func decide(mayWrite: Bool, leaseHeld: Bool, leaseForfeited: Bool, leaseMoved: Bool,
                              keeperHolds: Bool, frozen: Bool, frozenInAnotherGrant: Bool) -> FenceOrder {
        let mayComeBack = mayWrite && !leaseForfeited
        // Stopped now; the next batch renews the new lease for the restarted server.
        if frozen && frozenInAnotherGrant { return .stop(frozen: true) }
        if mayWrite && leaseHeld { return leaseMoved ? .renew(continuing: frozen) : .none }
        if keeperHolds { return mayComeBack ? .freeze : .stop(frozen: false) }
        if frozen && !mayComeBack { return .stop(frozen: true) }
        return .none
    }
}
