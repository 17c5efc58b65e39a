import Testing
@testable import pgquorum

/// `make demo` must show what it promises: an election, a commit, a leader crash, a re-election
/// by the survivors, a commit under the new leader, and the crashed node rejoining as a follower.
@Suite struct NarratedDemoTests {
    @Test func demoNarratesElectionCrashReelectionAndRejoin() throws {
        var lines: [String] = []
        var demo = try NarratedDemo(seed: 7)
        demo.run { lines.append($0) }
        let text = lines.joined(separator: "\n")
        let crash = try #require(lines.firstIndex { $0.contains("CRASH:") })
        let restart = try #require(lines.firstIndex { $0.contains("RESTART:") })
        #expect(lines[..<crash].contains { $0.contains("LEADS term 1") })
        #expect(lines[..<crash].contains { $0.contains("is committed") })
        #expect(lines[crash..<restart].contains { $0.contains("LEADS term 2") })
        #expect(lines[crash..<restart].contains { $0.contains("is committed") })
        #expect(lines[restart...].contains { $0.contains("rejoined as a follower") })
        #expect(!text.contains("should not happen") && !text.contains("did not elect"))
    }

    @Test func everySeedTellsTheWholeStory() throws {
        for seed: UInt64 in 1...20 {
            var lines: [String] = []
            var demo = try NarratedDemo(seed: seed)
            demo.run { lines.append($0) }
            #expect(lines.contains { $0.contains("rejoined as a follower") }, "seed \(seed)")
        }
    }
}
