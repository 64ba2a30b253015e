import Doors
import Glibc
@testable import GuestDoors
import Testing

/// Doors version 2: every path the host sends is walked without following a symlink, since the
/// host resolved (and judged) it before sending it. A symlink planted in the guest, in the
/// middle of a path or at its end, makes the call fail with ELOOP instead of leading it
/// elsewhere (issue 12: `momin cp NAME:/tmp/link/../version` read /proc/version).
extension ServerTests {
    @Suite struct WithoutSymlinks {
        /// scratch/dir/secret (a file), scratch/dir/sub (a directory), scratch/link → dir,
        /// scratch/file-link → dir/secret.
        static func tree() throws -> ScratchDirectory {
            let scratch = try ScratchDirectory()
            #expect(mkdir(scratch.path + "/dir", 0o755) == 0)
            #expect(mkdir(scratch.path + "/dir/sub", 0o755) == 0)
            let fd = open(scratch.path + "/dir/secret", O_WRONLY | O_CREAT, 0o644)
            #expect(fd >= 0)
            _ = Array("s3cret\n".utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
            #expect(symlink(scratch.path + "/dir", scratch.path + "/link") == 0)
            #expect(symlink(scratch.path + "/dir/secret", scratch.path + "/file-link") == 0)
            return scratch
        }

        @Test func readsAndWritesRefuseASymlinkAnywhereInThePath() throws {
            let client = try DoorsClient()
            let scratch = try Self.tree()
            defer { scratch.remove() }
            #expect(try client.readWholeFile(scratch.path + "/dir/secret") == Array("s3cret\n".utf8))
            for path in [scratch.path + "/link/secret", scratch.path + "/file-link"] {
                let read = try client.call(.readFile(ReadFileRequest(path: path)))
                #expect(read.errorReply?.errno == ELOOP, "read \(path): \(read)")
                let written = try client.call(.writeFile(WriteFileRequest(path: path)))
                #expect(written.errorReply?.errno == ELOOP, "write \(path): \(written)")
            }
            // Nothing reached the file behind the links.
            #expect(try client.readWholeFile(scratch.path + "/dir/secret") == Array("s3cret\n".utf8))
        }

        @Test func listMkdirAndRemoveRefuseASymlinkOnTheWay() throws {
            let client = try DoorsClient()
            let scratch = try Self.tree()
            defer { scratch.remove() }
            #expect(try client.list(scratch.path + "/dir").error == nil)
            // A symlink at the end is not a directory to O_DIRECTORY | O_NOFOLLOW: ENOTDIR.
            #expect(try client.list(scratch.path + "/link").error?.errno == ENOTDIR)
            #expect(try client.list(scratch.path + "/link/sub").error?.errno == ELOOP)
            let mkdir = try client.call(.mkdir(MkdirRequest(path: scratch.path + "/link/new")))
            #expect(mkdir.errorReply?.errno == ELOOP)
            let mkdirs = try client.call(.mkdir(MkdirRequest(path: scratch.path + "/link/a/b", parents: true)))
            #expect(mkdirs.errorReply != nil)
            #expect(access(scratch.path + "/dir/new", F_OK) != 0 && access(scratch.path + "/dir/a", F_OK) != 0)
            let remove = try client.call(.remove(RemoveRequest(path: scratch.path + "/link/secret")))
            #expect(remove.errorReply?.errno == ELOOP)
            #expect(access(scratch.path + "/dir/secret", F_OK) == 0)
            // A symlink at the end of a path is removed itself, as rm does; its target stays.
            #expect(try client.call(.remove(RemoveRequest(path: scratch.path + "/file-link"))).errorReply == nil)
            #expect(access(scratch.path + "/file-link", F_OK) != 0 && access(scratch.path + "/dir/secret", F_OK) == 0)
            // And mkdir -p of real directories still makes each one.
            #expect(try client.call(.mkdir(MkdirRequest(path: scratch.path + "/dir/x/y", parents: true))).errorReply == nil)
            #expect(access(scratch.path + "/dir/x/y", F_OK) == 0)
        }

        /// The shell under its own name, wherever /bin leads on this host (on Debian, /bin is a
        /// symlink to usr/bin).
        static var shell: String {
            guard let resolved = realpath("/bin/sh", nil) else { return "/bin/sh" }
            defer { free(resolved) }
            return String(cString: resolved)
        }

        @Test func theJudgedProgramRunsFromItsFileWithArgv0AsWritten() throws {
            let client = try DoorsClient()
            let outcome = try client.exec(ExecRequest(argv: ["as-written", "-c", "echo \"$0\""], program: Self.shell))
            #expect(outcome.error == nil)
            #expect(outcome.stdoutText == "as-written\n")
            // The same program named through a symlink is refused, not followed.
            let scratch = try Self.tree()
            defer { scratch.remove() }
            #expect(symlink(Self.shell, scratch.path + "/dir/sh") == 0)
            let linked = try client.exec(ExecRequest(argv: ["sh", "-c", "true"], program: scratch.path + "/dir/sh"))
            #expect(linked.error?.errno == ELOOP)
            #expect(linked.pid == nil)
        }

        @Test func aScriptRunsThroughItsInterpreter() throws {
            let client = try DoorsClient()
            let scratch = try Self.tree()
            defer { scratch.remove() }
            let script = scratch.path + "/dir/hello"
            let fd = open(script, O_WRONLY | O_CREAT, 0o755)
            #expect(fd >= 0)
            _ = Array("#!/bin/sh\necho \"script says $1\"\n".utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
            let outcome = try client.exec(ExecRequest(argv: ["hello", "hi"], program: script))
            #expect(outcome.error == nil)
            #expect(outcome.stdoutText == "script says hi\n")
            #expect(outcome.exit == ExitReport(status: .exited(code: 0)))
        }

        @Test func theWorkingDirectoryIsEnteredWithoutASymlink() throws {
            let client = try DoorsClient()
            let scratch = try Self.tree()
            defer { scratch.remove() }
            let inside = try client.exec(ExecRequest(argv: ["sh", "-c", "pwd"], cwd: scratch.path + "/dir/sub"))
            #expect(inside.stdoutText == scratch.path + "/dir/sub\n")
            let linked = try client.exec(ExecRequest(argv: ["sh", "-c", "pwd"], cwd: scratch.path + "/link/sub"))
            #expect(linked.error?.errno == ELOOP)
        }
    }
}
