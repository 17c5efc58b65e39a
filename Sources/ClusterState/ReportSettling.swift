/// Which health reports a new leader decides from, and whether it may decide yet. Pure, so the
/// rule that keeps a margin behind the old primary's stop is tested one case per line.
///
/// Every agent sends its report to every voter, so a leader usually holds them all the moment
/// it is elected. It counts only its own and those of the members it hears from: a dead
/// primary's last report stays fresh for an election timeout and must not make it a candidate.
/// It may decide at once after an election when every reachable PostgreSQL member has
/// reported; otherwise it waits `settleTicks` heartbeats after becoming leader. It always waits
/// them out after a hand-over (a failing primary's report can say "stopped" while its postmaster
/// still runs) and while another reachable member reports itself primary (it lost its lease; its
/// keeper is stopping it): those heartbeats are a margin between that stop and a promotion here.
public struct ReportSettling: Sendable, Equatable {
    /// The reports to decide from.
    public var reports: [String: MemberReport]
    /// Whether the leader may decide now (`PrimaryDuty.decide`'s `reportsSettled`).
    public var settled: Bool

    public static let settleTicks: Int64 = 3

    public init(me: String, members: [PrimaryDuty.Member], fresh: [String: MemberReport], reachable: Set<String>,
                handedOver: Bool, ticksSinceElection: Int64) {
        let heard = fresh.filter { $0.key == me || reachable.contains($0.key) }
        let everyReachableReported = members.allSatisfy { $0.isWitness || !reachable.contains($0.name) || heard[$0.name] != nil }
        let anotherClaimsPrimary = heard.contains { $0.key != me && $0.value.role == .primary }
        reports = heard
        settled = ticksSinceElection >= Self.settleTicks || (everyReachableReported && !handedOver && !anotherClaimsPrimary)
    }
}
