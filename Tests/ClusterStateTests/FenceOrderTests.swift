import ClusterState
import Testing

/// Freeze or stop (issue 19, item 4): one case per line.
@Suite struct FenceOrderTests {
    private func decide(mayWrite: Bool = true, leaseHeld: Bool = true, forfeited: Bool = false, moved: Bool = true,
                        holds: Bool = true, frozen: Bool = false, elsewhere: Bool = false) -> FenceOrder {
        FenceOrder.decide(mayWrite: mayWrite, leaseHeld: leaseHeld, leaseForfeited: forfeited, leaseMoved: moved,
                          keeperHolds: holds, frozen: frozen, frozenInAnotherGrant: elsewhere)
    }

    @Test func eachCase() {
        #expect(decide() == .renew(continuing: false), "a heartbeat moved the lease's end")
        #expect(decide(moved: false) == .none, "nothing new to tell")
        #expect(decide(frozen: true) == .renew(continuing: true), "the lease came back: continue the frozen server")
        #expect(decide(frozen: true, elsewhere: true) == .stop(frozen: true), "a lease of a later term or epoch: never continue, stop")
        #expect(decide(holds: false, frozen: true, elsewhere: true) == .stop(frozen: true), "the same, after a batch without a renewal")
        #expect(decide(leaseHeld: false) == .freeze, "a blip: the lease lapsed, this node still leads its term")
        #expect(decide(leaseHeld: false, forfeited: true) == .stop(frozen: false), "a TimeoutNow went out: the target may win at once")
        #expect(decide(mayWrite: false) == .stop(frozen: false), "a new term, or another node named primary")
        #expect(decide(mayWrite: false, holds: false) == .none, "a replica: nothing to tell")
        #expect(decide(leaseHeld: false, holds: false, frozen: true) == .none, "frozen, and the lease may still come back")
        #expect(decide(mayWrite: false, holds: false, frozen: true) == .stop(frozen: true), "frozen, and leadership is lost")
        #expect(decide(leaseHeld: false, forfeited: true, holds: false, frozen: true) == .stop(frozen: true), "frozen, then a hand-over")
    }
}
