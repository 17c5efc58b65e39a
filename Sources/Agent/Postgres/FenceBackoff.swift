/// How long this node waits before starting its PostgreSQL again as the named primary after it
/// was fenced. A leader whose lease keeps lapsing (a starved agent, a flapping link) once fenced
/// and restarted its PostgreSQL about a hundred times in one term, each time with crash
/// recovery (issue 17): the first fence of a term restarts at once, each further one waits twice
/// as long (1 s, 2 s, 4 s … at most 30 s). Long enough and the primary counts as unable to
/// restart (`restart_timeout_s`), and its agent hands leadership to a replica. Pure: the caller
/// passes the time.
struct FenceBackoff: Equatable {
    static let first: Duration = .seconds(1)
    static let longest: Duration = .seconds(30)

    private(set) var term: UInt64 = 0
    /// Fences in `term`.
    private(set) var fences = 0
    /// No start before this.
    private(set) var notBefore: ContinuousClock.Instant?

    /// PostgreSQL here was stopped as a primary that may not write (or died as one) in `term`.
    mutating func fenced(term: UInt64, at now: ContinuousClock.Instant) {
        if term != self.term {
            self.term = term
            fences = 0
        }
        fences += 1
        notBefore = fences == 1 ? nil : now + delay(after: fences)
    }

    /// The time left before PostgreSQL may start again as the primary in `term` (nil: now).
    func remaining(term: UInt64, at now: ContinuousClock.Instant) -> Duration? {
        guard term == self.term, let notBefore, now < notBefore else { return nil }
        return notBefore - now
    }

    /// 1 s after the second fence, doubling, capped.
    func delay(after fences: Int) -> Duration {
        guard fences >= 2 else { return .zero }
        let doublings = min(fences - 2, 10)
        return min(FenceBackoff.first * (1 << doublings), FenceBackoff.longest)
    }
}
