import RaftCore

/// Messages in flight between simulated nodes, with loss, duplication, delay (and so
/// reordering) and directional cuts. A cut applies when the message would be delivered.
struct SimulatedNetwork {
    private struct InFlight {
        var message: Message
        var deliverAt: UInt64
        var order: UInt64
    }

    struct Behaviour {
        var dropRate: Double
        var duplicateRate: Double
        var maxDelayTicks: Int
        static let calm = Behaviour(dropRate: 0, duplicateRate: 0, maxDelayTicks: 1)
    }

    private var inFlight: [InFlight] = []
    private var blocked: Set<Link> = []

    struct Link: Hashable { var from: NodeID; var to: NodeID }

    var hasFaults: Bool { !blocked.isEmpty }

    mutating func send(_ message: Message, at time: UInt64, profile: Behaviour, random: inout SimulationRandom) {
        if random.chance(profile.dropRate) { return }
        let copies = random.chance(profile.duplicateRate) ? 2 : 1
        for _ in 0..<copies {
            let delay = UInt64(random.int(below: profile.maxDelayTicks + 1))
            inFlight.append(InFlight(message: message, deliverAt: time + delay, order: random.next()))
        }
    }

    /// The messages due by `time` whose link is open, in a random order among equal due times.
    mutating func deliverDue(at time: UInt64, random: inout SimulationRandom) -> [Message] {
        var due: [InFlight] = []
        var waiting: [InFlight] = []
        for item in inFlight {
            if item.deliverAt <= time { due.append(item) } else { waiting.append(item) }
        }
        inFlight = waiting
        due.sort { ($0.deliverAt, $0.order) < ($1.deliverAt, $1.order) }
        return due.compactMap { blocked.contains(Link(from: $0.message.from, to: $0.message.to)) ? nil : $0.message }
    }

    mutating func partition(_ left: [NodeID], _ right: [NodeID]) {
        for a in left {
            for b in right {
                blocked.insert(Link(from: a, to: b))
                blocked.insert(Link(from: b, to: a))
            }
        }
    }

    mutating func cut(from: NodeID, to: NodeID) { blocked.insert(Link(from: from, to: to)) }
    mutating func heal() { blocked.removeAll() }
    mutating func dropAll() { inFlight.removeAll() }
    /// Whether anything `node` sent is still on its way.
    func carries(from node: NodeID) -> Bool { inFlight.contains { $0.message.from == node } }
}

extension FaultProfile {
    var behaviour: SimulatedNetwork.Behaviour {
        .init(dropRate: dropRate, duplicateRate: duplicateRate, maxDelayTicks: maxDelayTicks)
    }
}
