import Foundation
import RaftCore
@testable import RaftStorage

/// A fresh directory under the system temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "pgquorum-storage-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    func segmentPaths() -> [String] {
        let wal = path + "/wal"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: wal)) ?? []
        return names.filter { $0.hasSuffix(".seg") }.sorted().map { wal + "/" + $0 }
    }

    func snapshotNames() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path + "/snapshots")) ?? []).sorted()
    }

    func copy(to other: TemporaryDirectory) {
        other.remove()
        try? FileManager.default.copyItem(atPath: path, toPath: other.path)
    }
}

func readBytes(_ path: String) -> [UInt8] { [UInt8]((try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data()) }
func writeBytes(_ bytes: [UInt8], to path: String) { try? Data(bytes).write(to: URL(fileURLWithPath: path)) }

let threeVoters = Configuration(voters: [1, 2, 3])

func entries(_ range: ClosedRange<LogIndex>, term: Term) -> [Entry] {
    range.map { Entry(term: term, index: $0, payload: .application(Array("entry-\($0)".utf8))) }
}

func ready(entries: [Entry] = [], hardState: HardState? = nil, snapshot: Snapshot? = nil, mustSync: Bool? = nil) -> Ready {
    Ready(hardState: hardState, snapshot: snapshot, entries: entries, mustSync: mustSync)
}
