import Foundation
import PostgresControl
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct OSUserTests {
    /// A user that is neither the owner of the test's directories nor in their group.
    let stranger = OSUser(name: "nobody", uid: 65_534, gid: 65_534)

    @Test func aPrivateDirectoryOnTheWayBlocksOthers() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("pgq-reach-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: root + "/clone/demo", withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let target = root + "/clone/demo/data/primary/postgres"   // not created yet: not judged
        #expect(stranger.firstBlockedDirectory(on: target) == nil)

        chmod(root + "/clone", 0o700)
        let blocked = try #require(stranger.firstBlockedDirectory(on: target))
        #expect(blocked.path == root + "/clone")
        #expect(blocked.mode == 0o700)

        // The owner itself passes; so does anyone once the directory is searchable.
        let owner = OSUser(name: "owner", uid: getuid(), gid: getgid())
        #expect(owner.firstBlockedDirectory(on: target) == nil)
        chmod(root + "/clone", 0o711)
        #expect(stranger.firstBlockedDirectory(on: target) == nil)
    }
}
