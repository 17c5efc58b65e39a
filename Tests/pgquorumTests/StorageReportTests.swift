import Foundation
import Testing
import RaftCore
import RaftStorage
@testable import pgquorum

@Suite struct StorageReportTests {
    @Test func verifyReportsWhatRecoveryWouldFind() throws {
        let path = NSTemporaryDirectory() + "pgquorum-verify-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: path) }
        let storage = try RaftStorage.open(directory: path)
        try storage.initialize(.bootstrap(Configuration(voters: [1, 2, 3])))
        try storage.persist(Ready(hardState: HardState(term: 2, vote: 1, commit: 1),
                                  entries: [Entry(term: 2, index: 1, payload: .noop)]))
        let inspected = try RaftStorage.inspect(directory: path)
        let state = try #require(inspected.recovered)
        let text = StorageReport(state: state, segments: inspected.segmentSummary.count, tornTail: inspected.tornTail,
                                 directory: path).text
        #expect(text.contains("Raft storage in \(path): OK"))
        #expect(text.contains("entries 1…1 (terms 2…2)"))
        #expect(text.contains("hard state: term 2, vote n1, commit 1"))
        #expect(text.contains("torn tail:  none"))
        #expect(throws: Never.self) { try VerifyStorage.parse(["--data-dir", path]).run() }
        #expect(throws: CommandFailure.self) { try VerifyStorage.parse(["--data-dir", path + "-missing"]).run() }
    }
}
