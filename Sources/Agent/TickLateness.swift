/// How late the Raft task processes its ticks: the worst delay in the last 10 to 20 seconds,
/// and the ticks that came more than one interval late (caught up in a batch). A lease renewed
/// late is a lease lost; this is the number to watch when the agent is busy (issue 17).
struct TickLateness {
    private var windowStart: ContinuousClock.Instant?
    private var current: Duration = .zero
    private var previous: Duration = .zero
    private(set) var lateTicks: UInt64 = 0
    private let window = Duration.seconds(10)

    /// The oldest of `ticks` due ticks was due `lateness` ago.
    mutating func record(_ lateness: Duration, ticks: Int64, at now: ContinuousClock.Instant) {
        roll(at: now)
        current = max(current, lateness)
        if ticks > 1 { lateTicks += UInt64(ticks - 1) }
    }

    /// The worst lateness of the current and the previous window.
    mutating func worst(at now: ContinuousClock.Instant) -> Duration {
        roll(at: now)
        return max(current, previous)
    }

    private mutating func roll(at now: ContinuousClock.Instant) {
        guard let start = windowStart else { windowStart = now; return }
        guard now - start >= window else { return }
        previous = now - start >= window * 2 ? .zero : current
        current = .zero
        windowStart = now
    }
}
