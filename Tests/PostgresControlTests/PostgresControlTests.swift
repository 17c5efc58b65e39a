import Foundation
import PostgresControl
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

    @Test func rootWithoutAnUnprivilegedUserIsRefused() throws {
        guard geteuid() == 0 else {
            // Not root: the guard does not apply; assert the opposite holds instead.
            #expect(throws: Never.self) { _ = try PostgresServer(dataDirectory: "/tmp/x", port: 5, socketDirectory: "/tmp/y") }
            return
        }
        #expect(throws: PostgresError.self) { _ = try PostgresServer(dataDirectory: "/tmp/x", port: 5, socketDirectory: "/tmp/y") }
    }
}
