import Foundation
import Logging
import Testing
@testable import Agent

@Suite struct ClusterGenerationTests {
    @Test func absentIsZeroAndAStoredNumberComesBack() throws {
        let directory = NSTemporaryDirectory() + "pgq-generation-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = ClusterGeneration(dataDirectory: directory)
        #expect(try file.load() == 0)
        try file.store(3)
        #expect(try file.load() == 3)
        try file.store(4)
        #expect(try file.load() == 4)
        #expect(!FileManager.default.fileExists(atPath: file.path + ".tmp"))
    }

    /// A crash after `raft` was moved aside for generation 4 but before 4 was stored: the next
    /// start takes 4 from the directory's name (and keeps the stored number otherwise).
    @Test func anInterruptedRejoinIsFinishedAtStart() throws {
        let directory = NSTemporaryDirectory() + "pgq-generation-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = ClusterGeneration(dataDirectory: directory)
        let logger = Logger(label: "test")
        try file.store(3)
        try FileManager.default.createDirectory(atPath: directory + "/raft", withIntermediateDirectories: true)
        let moved = ClusterGeneration.movedRaftDirectory(directory + "/raft", generation: 4)
        try FileManager.default.createDirectory(atPath: moved, withIntermediateDirectories: true)
        #expect(try file.recover(logger: logger) == 3, "raft still exists: nothing was interrupted")
        try FileManager.default.removeItem(atPath: directory + "/raft")
        #expect(try file.recover(logger: logger) == 4)
        #expect(try file.load() == 4)
    }

    @Test func aDamagedFileIsAOneLineErrorThatNamesIt() throws {
        let directory = NSTemporaryDirectory() + "pgq-generation-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = ClusterGeneration(dataDirectory: directory)
        try Data("3x\n".utf8).write(to: URL(fileURLWithPath: file.path))
        do {
            _ = try file.load()
            Issue.record("a damaged generation file was accepted")
        } catch {
            #expect(error.description.contains(file.path) && error.description.contains("damaged") && !error.description.contains("\n"))
        }
    }
}
