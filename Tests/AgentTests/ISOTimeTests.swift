@testable import Agent
import Foundation
import Testing

@Suite struct ISOTimeTests {
    /// The arithmetic formatter agrees with Foundation's ISO 8601 formatter, across leap years,
    /// century rules and millisecond edges.
    @Test func agreesWithFoundationsFormatter() {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var samples: [UInt64] = [0, 999, 1_000, 86_399_999, 86_400_000, 951_782_400_000, 951_868_799_999, 4_107_542_400_000,
                                 1_700_000_000_430, 1_796_428_050_430, 253_402_300_799_999]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 { samples.append(UInt64.random(in: 0...253_402_300_799_999, using: &generator)) }
        for milliseconds in samples {
            let expected = formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1_000))
            #expect(isoTime(milliseconds) == expected, "\(milliseconds)")
        }
        #expect(isoTime(1_796_435_250_430) == "2026-12-05T01:47:30.430Z")
    }
}
