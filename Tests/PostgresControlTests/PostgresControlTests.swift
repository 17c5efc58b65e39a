import Foundation
@testable import PostgresControl
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct LSNTests {
    @Test func parsesPrintsAndMeasures() throws {
        let lsn = try #require(LSN("16/B374D848"))
        #expect(lsn.value == 0x16_B374_D848)
        #expect(lsn.description == "16/B374D848")
        #expect(LSN("0/0") == LSN(0))
        #expect(LSN("16B374D848") == nil)
        #expect(LSN("x/1") == nil)
        #expect(LSN("1/100000000") == nil)
        #expect(lsn.bytes(after: LSN(0x16_B374_D000)) == 0x848)
        #expect(LSN(5).bytes(after: LSN(9)) == 0)
    }
}

/// A real PostgreSQL 15 server in a temp directory, as the `postgres` OS user when the tests run
/// as root (PostgreSQL refuses root).
@Suite(.serialized) struct PostgresServerTests {
    final class TempServer {
        let root: String
        let server: PostgresServer

        init() throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("pgq-pg-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            let user = geteuid() == 0 ? OSUser.named("postgres") : nil
            if geteuid() == 0, user == nil { Issue.record("running as root needs a `postgres` OS user (apt-get install postgresql-15 creates it)") }
            server = try PostgresServer(dataDirectory: root + "/data", port: Int.random(in: 20_000...29_999),
                                        socketDirectory: root + "/socket", user: user)
        }

        deinit {
            if server.isRunning { try? server.stop(.immediate) }
            try? FileManager.default.removeItem(atPath: root)
        }
    }

    @Test func initdbStartQueryStopAndRestart() throws {
        let temp = try TempServer()
        let server = temp.server
        try server.initdb()
        try server.start()
        #expect(server.isRunning)

        let connection = try server.connect()
        #expect(try connection.value("SELECT 1 + 1") == "2")
        #expect(try connection.value("SHOW data_checksums") == "on")
        let before = try server.facts(connection)
        #expect(before.systemIdentifier != 0)
        #expect(!before.inRecovery)
        #expect(before.timeline == 1)
        #expect(before.replayedLSN == nil)

        try connection.query("CREATE TABLE writes (id bigint PRIMARY KEY, note text)")
        try connection.query("INSERT INTO writes SELECT g, 'row ' || g FROM generate_series(1, 1000) g")
        #expect(try connection.query("SELECT count(*), max(note) FROM writes") == [["1000", "row 999"]])
        #expect(try connection.query("SELECT NULL::text") == [[nil]])
        let after = try server.facts(connection)
        #expect(try #require(after.receivedLSN) > #require(before.receivedLSN), "the WAL position did not move after writes")
        connection.close()

        // An immediate stop (no checkpoint) loses nothing committed: crash recovery replays it.
        try server.stop(.immediate)
        #expect(!server.isRunning)
        // pg_control says so: no clean shutdown checkpoint to hand a switchover over at.
        #expect(server.cleanShutdownCheckpoint() == nil)
        try server.start()
        let again = try server.connect()
        #expect(try again.value("SELECT count(*) FROM writes") == "1000")
        #expect(try server.facts(again).systemIdentifier == before.systemIdentifier)
        try server.stop(.fast)
        #expect(try #require(server.cleanShutdownCheckpoint()) > 0)
    }

    /// A primary frozen by its keeper (the lease lapsed): a query with a timeout gives up
    /// instead of holding the agent's PostgreSQL thread; if the keeper is killed meanwhile, the
    /// agent's immediate stop kills the frozen tree itself, and the data survives.
    @Test func aFrozenServerNeitherHoldsAQueryNorOutlivesItsKeeper() throws {
        let temp = try TempServer()
        let server = temp.server
        try server.initdb()
        let log = temp.root + "/postgres.log"
        try server.prepareSocketDirectory()
        let postmaster = try Postmaster.start(server: server, options: ["port": "\(server.port)", "unix_socket_directories": temp.root + "/socket"],
                                              logFile: log, freezeLimit: .seconds(60))
        var connection: PostgresConnection?
        for _ in 0..<300 where connection == nil {
            connection = try? server.connect()
            if connection == nil { usleep(20_000) }
        }
        let open = try #require(connection)
        try open.query("CREATE TABLE kept (id int)")
        try open.query("INSERT INTO kept VALUES (1)")
        postmaster.fence.allowWrites(for: .seconds(60))
        postmaster.fence.revoke()
        for _ in 0..<200 where !postmaster.isFrozen { usleep(5_000) }
        #expect(postmaster.isFrozen)
        let started = ContinuousClock.now
        #expect(throws: PostgresError.self) { try open.query("SELECT 1", timeout: .milliseconds(300)) }
        #expect(ContinuousClock.now - started < .seconds(2), "the query gave up on time")

        kill(postmaster.keeperPID, SIGKILL)
        for _ in 0..<200 where postmaster.keeperIsAlive { usleep(5_000) }
        #expect(postmaster.stopImmediately(seconds: 5), "a frozen server without its keeper was left frozen")
        // No process of the old server is left (stopped processes would hold its port and memory).
        try server.start()
        #expect(try server.connect().value("SELECT count(*) FROM kept") == "1")
    }

    @Test func errorsAreOneClearLine() throws {
        let temp = try TempServer()
        let server = temp.server
        // Nothing listens yet.
        do {
            _ = try server.connect()
            Issue.record("connected to a server that does not run")
        } catch {
            #expect(error.description.hasPrefix("cannot connect to PostgreSQL:"))
            #expect(!error.description.contains("\n"))
        }
        try server.initdb()
        // initdb refuses a directory that already holds data.
        #expect(throws: PostgresError.self) { try server.initdb() }
        try server.start()
        let connection = try server.connect()
        do {
            try connection.query("SELECT * FROM no_such_table")
            Issue.record("a query of a missing table succeeded")
        } catch {
            #expect(error.sqlState == "42P01")
            #expect(error.description.contains("no_such_table"))
            #expect(!error.description.contains("\n"))
        }
        // The connection stays usable after a failed statement.
        #expect(try connection.value("SELECT 'still here'") == "still here")
        try server.stop()
    }

    /// A crashed primary's acknowledged commits lie past its last checkpoint: the end of the
    /// WAL on disk is where they end, on the timeline they were written on.
    @Test func theEndOfTheWALOnDiskIsReadWhileStopped() throws {
        let temp = try TempServer()
        let server = temp.server
        #expect(server.walEndOnDisk() == nil, "no data directory yet")
        try server.initdb()
        try server.start()
        var connection = try server.connect()
        try connection.query("CREATE TABLE writes (id bigint)")
        try connection.query("INSERT INTO writes SELECT generate_series(1, 5000)")
        let flushed = try #require(LSN(try connection.value("SELECT pg_current_wal_flush_lsn()") ?? ""))
        connection.close()
        try server.stop(.immediate)
        let end = try #require(server.walEndOnDisk())
        #expect(end.timeline == 1)
        // Equal unless a background record (a running-transactions snapshot) came after the
        // read; never short of what was flushed.
        #expect(end.position >= flushed.value && end.position - flushed.value < 8_192, "WAL end \(end), flushed \(flushed)")

        // A promotion with no checkpoint since: the WAL continues on timeline 2, past the
        // checkpoint's timeline.
        try server.writeFile("standby.signal", "")
        try server.start()
        connection = try server.connect()
        #expect(try connection.value("SELECT pg_promote(true, 60)") == "t")
        try connection.query("INSERT INTO writes SELECT generate_series(1, 5000)")
        let promoted = try #require(LSN(try connection.value("SELECT pg_current_wal_flush_lsn()") ?? ""))
        connection.close()
        try server.stop(.immediate)
        let after = try #require(server.walEndOnDisk())
        #expect(after.timeline == 2)
        #expect(after.position >= promoted.value && after.position - promoted.value < 8_192, "WAL end \(after), flushed \(promoted)")

        // A WAL that ends at a segment boundary (a switch, the next file not created yet): the
        // end is that boundary, read without waiting for the missing file.
        try server.start()
        connection = try server.connect()
        let switched = try #require(LSN(try connection.value("SELECT pg_switch_wal()") ?? ""))
        connection.close()
        try server.stop(.immediate)
        let boundary = (switched.value / (16 << 20) + 1) * (16 << 20)
        let atBoundary = try #require(server.walEndOnDisk())
        #expect(atBoundary.position >= boundary && atBoundary.position - boundary < 8_192, "WAL end \(atBoundary), segment boundary \(LSN(boundary))")
    }

    @Test func rootWithoutAnUnprivilegedUserIsRefused() throws {
        guard geteuid() == 0 else {
            // Not root: the guard does not apply; assert the opposite holds instead.
            #expect(throws: Never.self) { _ = try PostgresServer(dataDirectory: "/tmp/x", port: 5, socketDirectory: "/tmp/y") }
            return
        }
        #expect(throws: PostgresError.self) { _ = try PostgresServer(dataDirectory: "/tmp/x", port: 5, socketDirectory: "/tmp/y") }
    }
}

/// pg_waldump's last line, for each way a WAL can end.
@Suite struct WALDumpEndTests {
    let segment: UInt64 = 16 << 20

    @Test func zeroesAfterTheLastRecord() {
        let output = "pg_waldump: error: error in WAL record at 0/1526230: invalid record length at 0/1526258: wanted 24, got 0"
        #expect(WALDumpEnd.parse(output, start: 0x150_0718, end: 0x200_0000, segmentBytes: segment) == 0x152_6258)
    }

    @Test func aRecycledPageEndsItWherePageBegins() {
        let old = "pg_waldump: error: error in WAL record at 0/4FFFF80: unexpected pageaddr 0/2000000 in log segment 000000010000000000000005, offset 0"
        #expect(WALDumpEnd.parse(old, start: 0x400_0000, end: 0x600_0000, segmentBytes: segment) == 0x500_0000)
        let newer = "pg_waldump: error: error in WAL record at 0/1527FD0: invalid magic number 0000 in WAL segment 000000010000000000000001, LSN 0/1528000, offset 5406720"
        #expect(WALDumpEnd.parse(newer, start: 0x100_0000, end: 0x200_0000, segmentBytes: segment) == 0x152_8000)
    }

    @Test func aMissingNextSegmentEndsItAtTheSegmentBoundary() {
        let output = "pg_waldump: error: could not find file \"000000010000000000000006\": No such file or directory"
        #expect(WALDumpEnd.parse(output, start: 0x500_0028, end: 0x700_0000, segmentBytes: segment) == 0x600_0000)
        // The start's own segment is missing: nothing was read on this timeline.
        let none = "pg_waldump: error: could not find file \"000000020000000000000001\": No such file or directory"
        #expect(WALDumpEnd.parse(none, start: 0x150_0718, end: 0x200_0000, segmentBytes: segment) == nil)
    }

    @Test func otherRecordErrorsNameTheNextRecord() {
        let output = "pg_waldump: error: error in WAL record at 0/3000060: record with incorrect prev-link 0/2FFFFA0 at 0/3000098"
        #expect(WALDumpEnd.parse(output, start: 0x300_0028, end: 0x400_0000, segmentBytes: segment) == 0x300_0098)
        #expect(WALDumpEnd.parse("pg_waldump: error: could not find a valid record after 0/3000028", start: 0x300_0028, end: 0x400_0000, segmentBytes: segment) == nil)
        // No position named: unknown (the last record's start would understate the end).
        #expect(WALDumpEnd.parse("pg_waldump: error: error in WAL record at 0/3000060: out of memory while reading WAL", start: 0x300_0028, end: 0x400_0000, segmentBytes: segment) == nil)
        // Valid WAL up to the --end it was given (the end of the last segment there is): silence.
        #expect(WALDumpEnd.parse("", start: 0x300_0028, end: 0x400_0000, segmentBytes: segment) == 0x400_0000)
    }

    @Test func segmentNamesAndHistoryFiles() {
        #expect(WALDumpEnd.segmentStart("0000000300000001000000FF", segmentBytes: segment) == (1 << 32) + 0xFF * segment)
        #expect(WALDumpEnd.segmentStart("not a segment", segmentBytes: segment) == nil)
        #expect(WALDumpEnd.segment("0000000300000001000000FF", segmentBytes: segment)?.timeline == 3)
        #expect(WALHistory.switchPoint(history: "1\t0/3000060\tno recovery target specified\n\n2\t0/5000A0\tno recovery target specified\n") == 0x50_00A0)
        #expect(WALHistory.switchPoint(history: "") == nil)
    }
}
