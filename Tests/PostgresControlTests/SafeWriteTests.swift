import Foundation
import PostgresControl
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The agent runs as root and writes into PostgreSQL's data directory, which PostgreSQL's user
/// owns: that user may plant links there (a superuser's `COPY … TO PROGRAM` runs as it).
@Suite struct SafeWriteTests {
    /// Under root the data directory belongs to an unprivileged user, as in production; otherwise
    /// to the test's own user (the writes must still not follow links).
    let owner: OSUser? = geteuid() == 0 ? OSUser(name: "nobody", uid: 65_534, gid: 65_534) : nil

    func scratch() throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("pgq-safe-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: root + "/data", withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        if let owner { chown(root + "/data", owner.uid, owner.gid) }
        return root
    }

    @Test func aPlantedLinkDoesNotRedirectTheAgentsWrites() throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        // Stands for /etc/sudoers: root's, private.
        let target = root + "/target"
        try "root only\n".write(toFile: target, atomically: false, encoding: .utf8)
        chmod(target, 0o600)
        let data = root + "/data"
        // The old agent wrote NAME.tmp and chowned it by path; the final names are links too.
        symlink(target, data + "/pg_hba.conf.tmp")
        symlink(target, data + "/pg_hba.conf")
        symlink(target, data + "/standby.signal")

        let server = try PostgresServer(dataDirectory: data, port: 5432, socketDirectory: root + "/run", user: owner)
        try server.writeFile("pg_hba.conf", "local all all peer\n")
        try server.writeFile("standby.signal", "")

        var info = stat()
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "root only\n")
        #expect(stat(target, &info) == 0 && info.st_uid == geteuid() && info.st_mode & 0o777 == 0o600)
        for (name, contents) in [("pg_hba.conf", "local all all peer\n"), ("standby.signal", "")] {
            #expect(lstat(data + "/" + name, &info) == 0 && info.st_mode & S_IFMT == S_IFREG, "\(name) is still a link")
            #expect(info.st_uid == (owner?.uid ?? geteuid()) && info.st_mode & 0o777 == 0o600, "\(name): owner \(info.st_uid)")
            #expect(try String(contentsOfFile: data + "/" + name, encoding: .utf8) == contents)
        }
        // No temporary file is left behind; the planted one is merely ignored.
        let left = try FileManager.default.contentsOfDirectory(atPath: data).filter { $0.hasPrefix(".") }
        #expect(left.isEmpty, "\(left)")
    }

    /// Reading back through a planted link would copy a root-only file into one that PostgreSQL's
    /// user can read; a FIFO would block the agent, a device never end.
    @Test func readsFollowNoLinkAndOnlyRegularFiles() throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let target = root + "/target"
        try "secret\n".write(toFile: target, atomically: false, encoding: .utf8)
        chmod(target, 0o600)
        let data = root + "/data"
        symlink(target, data + "/postgresql.conf")
        mkfifo(data + "/00000002.history", 0o600)
        let server = try PostgresServer(dataDirectory: data, port: 5432, socketDirectory: root + "/run", user: owner)
        #expect(throws: PostgresError.self) { try server.includeAgentSettings(file: "pgquorum.conf") }
        #expect(UserOwnedFile.read(data + "/postgresql.conf") == nil)
        #expect(UserOwnedFile.read(data + "/00000002.history") == nil)
        #expect(UserOwnedFile.read("/dev/zero") == nil)
        #expect(UserOwnedFile.read(target) == "secret\n")
        var info = stat()
        #expect(lstat(data + "/postgresql.conf", &info) == 0 && info.st_mode & S_IFMT == S_IFLNK, "the link was replaced by a copy")
    }

    /// The old writes created NAME.tmp, then chowned it by path: a link swapped in between gave
    /// away the link's target. Swapped in a loop while the agent writes, nothing leaks.
    @Test func linksSwappedInWhileWritingChangeNothing() throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let target = root + "/target"
        try "root only\n".write(toFile: target, atomically: false, encoding: .utf8)
        chmod(target, 0o600)
        let data = root + "/data"
        let server = try PostgresServer(dataDirectory: data, port: 5432, socketDirectory: root + "/run", user: owner)
        let stop = Atomic<Bool>(false)
        let swapper = Thread {
            var round = 0
            while !stop.load(ordering: .relaxed), round < 200_000 {
                for name in ["pg_hba.conf.tmp", "pg_hba.conf"] {
                    unlink(data + "/" + name)
                    symlink(target, data + "/" + name)
                }
                round += 1
            }
        }
        swapper.start()
        for round in 0..<500 { try? server.writeFile("pg_hba.conf", "# round \(round)\n") }
        stop.store(true, ordering: .relaxed)
        while !swapper.isFinished { usleep(1_000) }
        var info = stat()
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "root only\n")
        #expect(stat(target, &info) == 0 && info.st_uid == geteuid() && info.st_mode & 0o777 == 0o600)
    }

    @Test func hardLinksAndInvalidTextAreNotRead() throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let target = root + "/target"
        try "secret\n".write(toFile: target, atomically: false, encoding: .utf8)
        link(target, root + "/data/postgresql.conf")
        #expect(UserOwnedFile.read(root + "/data/postgresql.conf") == nil)
        FileManager.default.createFile(atPath: root + "/data/bad.conf", contents: Data([0x66, 0xFF, 0xFE]))
        #expect(UserOwnedFile.read(root + "/data/bad.conf") == nil)
        #expect(UserOwnedFile.bytes(root + "/data/bad.conf") == [0x66, 0xFF, 0xFE])
    }

    /// As root, the agent keeps its state only where nobody else can swap a directory.
    @Test func directoriesOthersControlAreFound() throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let inside = root + "/state"
        try FileManager.default.createDirectory(atPath: inside, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        chmod(root, 0o755)
        guard geteuid() == 0 else {
            // Not root: the test's own directories belong to its user, which the rule names.
            #expect(UserOwnedFile.firstDirectoryOthersControl(on: inside)?.contains("not root") == true)
            return
        }
        #expect(UserOwnedFile.firstDirectoryOthersControl(on: inside) == nil, "a root-owned path under /tmp (sticky) is safe")
        chown(root, 65_534, 65_534)
        #expect(UserOwnedFile.firstDirectoryOthersControl(on: inside) == "\(root) belongs to uid 65534, not root")
        chown(root, 0, 0)
        chmod(root, 0o777)
        #expect(UserOwnedFile.firstDirectoryOthersControl(on: inside)?.contains("writable by group or others") == true)
    }

    @Test func aLinkInPlaceOfTheDataDirectoryIsRefused() throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let elsewhere = root + "/elsewhere"
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        symlink(elsewhere, root + "/linked")
        let server = try PostgresServer(dataDirectory: root + "/linked", port: 5432, socketDirectory: root + "/run", user: owner)
        #expect(throws: PostgresError.self) { try server.writeFile("pg_hba.conf", "local all all peer\n") }
        #expect(throws: PostgresError.self) { try server.initdb() }
        var info = stat()
        #expect(stat(elsewhere, &info) == 0 && info.st_uid == geteuid() && info.st_mode & 0o777 == 0o755, "the link's target was changed")
        #expect(try FileManager.default.contentsOfDirectory(atPath: elsewhere).isEmpty)
    }
}
