import Doors
import Glibc
@testable import GuestDoors
import Testing

extension ServerTests {
    @Suite struct Files {
        @Test func write64MiBAndReadItBack() throws {
            let client = try DoorsClient()
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }
            let path = scratch.path + "/big"
            let size = 64 << 20
            let chunk = client.session?.maxPayload ?? DoorsProtocol.minimumMaxPayload

            // Stream the file without waiting: FileData right behind the request.
            var generator = ByteGenerator(seed: 0x5EED)
            var written = Checksum()
            let id = client.newID()
            try client.send(Frame(requestID: id, .writeFile(WriteFileRequest(path: path, permissions: 0o600))))
            var sent = 0
            while sent < size {
                let bytes = generator.next(min(chunk, size - sent))
                written.add(bytes)
                try client.send(Frame(requestID: id, .fileData(bytes)))
                sent += bytes.count
            }
            try client.send(Frame(requestID: id, .fileEnd))
            let answer = try client.receive(timeoutMilliseconds: 120_000)
            #expect(answer == Frame(requestID: id, .ok(count: UInt64(size))))

            let stat = try client.call(.stat(StatRequest(path: path)))
            guard case .statResult(let info) = stat else {
                Issue.record("expected StatResult, got \(stat)")
                return
            }
            #expect(info.size == UInt64(size))
            #expect(info.type == .regular)
            #expect(info.permissions == 0o600)

            var read = Checksum()
            var largest = 0
            let result = try client.readFile(path) { bytes in
                read.add(bytes)
                largest = max(largest, bytes.count)
            }
            #expect(result.error == nil)
            #expect(read.count == size)
            #expect(read.final == written.final)
            #expect(largest <= chunk)
            #expect(result.frames >= size / chunk)
        }

        @Test func readRangesAndPastTheEnd() throws {
            let client = try DoorsClient()
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }
            let path = scratch.path + "/digits"
            let content = Array("0123456789".utf8)
            #expect(try client.writeFile(path, [content]) == .ok(count: 10))
            #expect(try client.readWholeFile(path, offset: 3, length: 4) == Array("3456".utf8))
            #expect(try client.readWholeFile(path, offset: 8) == Array("89".utf8))
            #expect(try client.readWholeFile(path, offset: 100) == [])
            #expect(try client.readWholeFile(path, length: 0) == [])
            #expect(try client.readWholeFile(path) == content)
        }

        @Test func writeOptions() throws {
            let client = try DoorsClient()
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }
            let path = scratch.path + "/log"
            #expect(try client.writeFile(path, [Array("one\n".utf8)]) == .ok(count: 4))
            #expect(try client.writeFile(path, [Array("two\n".utf8)], options: [.append]) == .ok(count: 4))
            #expect(try client.readWholeFile(path) == Array("one\ntwo\n".utf8))

            let exclusive = try client.writeFile(path, [Array("x".utf8)], options: [.create, .exclusive])
            #expect(exclusive.errorReply?.code == .exists)
            #expect(exclusive.errorReply?.errno == EEXIST)
            // The FileData and FileEnd behind the failed request were dropped; the file is intact.
            #expect(try client.readWholeFile(path) == Array("one\ntwo\n".utf8))

            let noCreate = try client.writeFile(scratch.path + "/absent", [[1]], options: [])
            #expect(noCreate.errorReply?.code == .notFound)
            #expect(try client.writeFile(path, [Array("new".utf8)], options: [.truncate]) == .ok(count: 3))
            #expect(try client.readWholeFile(path) == Array("new".utf8))

            let intoDirectory = try client.writeFile(scratch.path, [[1]])
            #expect(intoDirectory.errorReply?.code == .isADirectory)
        }

        @Test func cancelStopsAWrite() throws {
            let client = try DoorsClient()
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }
            let id = client.newID()
            try client.send(Frame(requestID: id, .writeFile(WriteFileRequest(path: scratch.path + "/partial"))))
            try client.send(Frame(requestID: id, .fileData(Array(repeating: 65, count: 1000))))
            try client.send(Frame(requestID: id, .cancel))
            try client.send(Frame(requestID: id, .fileData([66])))  // no longer in flight: dropped
            let answer = try client.receive()
            #expect(answer.requestID == id)
            #expect(answer.message.errorReply?.code == .cancelled)
            #expect(try client.readWholeFile(scratch.path + "/partial")?.count == 1000)
        }

        @Test func readErrors() throws {
            let client = try DoorsClient()
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }
            let missing = try client.readFile(scratch.path + "/missing")
            #expect(missing.error?.code == .notFound)
            let directory = try client.readFile(scratch.path)
            #expect(directory.error?.code == .isADirectory)
            #expect(directory.frames == 0)
        }

        @Test func statTypesAndErrors() throws {
            let client = try DoorsClient()
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }
            let file = scratch.path + "/file"
            #expect(try client.writeFile(file, [[1, 2, 3]], permissions: 0o640) == .ok(count: 3))
            #expect(symlink(file, scratch.path + "/link") == 0)

            guard case .statResult(let info)? = try? client.call(.stat(StatRequest(path: file))) else {
                Issue.record("stat of a file failed")
                return
            }
            #expect(info.type == .regular && info.size == 3 && info.permissions == 0o640 && info.nlink == 1)
            #expect(info.uid == getuid() && info.gid == getgid())
            #expect(info.mtimeSeconds > 1_600_000_000)

            if case .statResult(let link) = try client.call(.stat(StatRequest(path: scratch.path + "/link"))) {
                #expect(link.type == .symlink)
            } else {
                Issue.record("lstat of a symlink failed")
            }
            // Version 2: the host resolves a path before it sends it, and a symlink met here is
            // refused rather than followed.
            let through = try client.call(.stat(StatRequest(path: scratch.path + "/link", followSymlinks: true)))
            #expect(through.errorReply?.errno == ELOOP)
            if case .statResult(let directory) = try client.call(.stat(StatRequest(path: scratch.path))) {
                #expect(directory.type == .directory)
            } else {
                Issue.record("stat of a directory failed")
            }
            if case .statResult(let device) = try client.call(.stat(StatRequest(path: "/dev/null"))) {
                #expect(device.type == .other)
            } else {
                Issue.record("stat of /dev/null failed")
            }

            let missing = try client.call(.stat(StatRequest(path: scratch.path + "/missing")))
            #expect(missing.errorReply?.code == .notFound)
            #expect(missing.errorReply?.errno == ENOENT)
            let underFile = try client.call(.stat(StatRequest(path: file + "/child")))
            #expect(underFile.errorReply?.code == .notADirectory)
            #expect(underFile.errorReply?.errno == ENOTDIR)
        }

        /// Resolve answers with the path the kernel reaches: symlinks (relative and absolute,
        /// chained, in the middle of a path) followed, `.`, `..` and `//` gone.
        @Test func resolveFollowsSymlinksAndFailsOnLoopsAndMissingParts() throws {
            let client = try DoorsClient()
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }
            let canonical = try #require(realpath(scratch.path, nil))
            let root = String(cString: canonical)
            free(canonical)
            #expect(mkdir(scratch.path + "/real", 0o755) == 0)
            #expect(try client.writeFile(scratch.path + "/real/file", [[7]]) == .ok(count: 1))
            #expect(symlink("real", scratch.path + "/rel") == 0)
            #expect(symlink(scratch.path + "/rel", scratch.path + "/chain") == 0)
            #expect(symlink("/etc", scratch.path + "/out") == 0)
            #expect(symlink("loop2", scratch.path + "/loop1") == 0)
            #expect(symlink("loop1", scratch.path + "/loop2") == 0)

            let cases: [(String, String)] = [
                (scratch.path + "/chain/file", root + "/real/file"),
                (scratch.path + "/rel/./..//real/file", root + "/real/file"),
                (scratch.path + "/out/../etc", "/etc"),
                (scratch.path + "/out", "/etc"),
                ("/", "/"),
            ]
            for (path, want) in cases {
                #expect(try client.call(.resolve(path: path)) == .resolved(path: want), "resolving \(path)")
            }
            let missing = try client.call(.resolve(path: scratch.path + "/real/missing"))
            #expect(missing.errorReply?.code == .notFound)
            let loop = try client.call(.resolve(path: scratch.path + "/loop1"))
            #expect(loop.errorReply?.errno == ELOOP)
            let underFile = try client.call(.resolve(path: scratch.path + "/real/file/x"))
            #expect(underFile.errorReply?.code == .notADirectory)
        }

        @Test func mkdirAndItsErrors() throws {
            let client = try DoorsClient()
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }
            let directory = scratch.path + "/made"
            #expect(try client.call(.mkdir(MkdirRequest(path: directory, permissions: 0o750))) == .ok(count: 0))
            if case .statResult(let info) = try client.call(.stat(StatRequest(path: directory))) {
                #expect(info.type == .directory)
                #expect(info.permissions == 0o750 & ~currentUmask())
            } else {
                Issue.record("the new directory is not there")
            }

            let again = try client.call(.mkdir(MkdirRequest(path: directory)))
            #expect(again.errorReply?.code == .exists)
            #expect(again.errorReply?.errno == EEXIST)
            #expect(try client.call(.mkdir(MkdirRequest(path: directory, parents: true))) == .ok(count: 0))

            let deep = scratch.path + "/a/b/c/d"
            let noParents = try client.call(.mkdir(MkdirRequest(path: deep)))
            #expect(noParents.errorReply?.code == .notFound)
            #expect(try client.call(.mkdir(MkdirRequest(path: deep, parents: true))) == .ok(count: 0))
            if case .statResult(let info) = try client.call(.stat(StatRequest(path: deep))) {
                #expect(info.type == .directory)
            } else {
                Issue.record("mkdir -p made nothing")
            }

            let file = scratch.path + "/file"
            #expect(try client.writeFile(file, [[0]]) == .ok(count: 1))
            let underFile = try client.call(.mkdir(MkdirRequest(path: file + "/sub")))
            #expect(underFile.errorReply?.code == .notADirectory)
            #expect(underFile.errorReply?.errno == ENOTDIR)
            let underFileParents = try client.call(.mkdir(MkdirRequest(path: file + "/sub/deeper", parents: true)))
            #expect(underFileParents.errorReply?.errno == ENOTDIR)
            let overFile = try client.call(.mkdir(MkdirRequest(path: file, parents: true)))
            #expect(overFile.errorReply?.errno == EEXIST)
        }

        @Test func listInBatches() throws {
            let client = try DoorsClient()
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }
            // More entries than one batch may hold (4096), with long names so several
            // payload-size batches are needed as well.
            let count = 5000
            let padding = String(repeating: "n", count: 200)
            for index in 0..<count {
                let fd = open(scratch.path + "/\(padding)-\(index)", O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
                #expect(fd >= 0)
                close(fd)
            }
            #expect(mkdir(scratch.path + "/subdir", 0o755) == 0)
            #expect(symlink("/nowhere", scratch.path + "/dangling") == 0)

            let listing = try client.list(scratch.path)
            #expect(listing.error == nil)
            #expect(listing.entries.count == count + 2)
            #expect(listing.batches >= 4)
            let names = Set(listing.entries.map(\.name))
            #expect(names.count == count + 2)
            #expect(names.contains("\(padding)-0") && names.contains("\(padding)-\(count - 1)"))
            #expect(!names.contains(".") && !names.contains(".."))
            #expect(listing.entries.first { $0.name == "subdir" }?.type == .directory)
            #expect(listing.entries.first { $0.name == "dangling" }?.type == .symlink)
            #expect(listing.entries.first { $0.name == "\(padding)-7" }?.type == .regular)

            let empty = try client.list(scratch.path + "/subdir")
            #expect(empty.error == nil && empty.entries.isEmpty && empty.batches == 0)
            let missing = try client.list(scratch.path + "/missing")
            #expect(missing.error?.code == .notFound)
            let notDirectory = try client.list(scratch.path + "/\(padding)-1")
            #expect(notDirectory.error?.code == .notADirectory)
            #expect(notDirectory.error?.errno == ENOTDIR)
        }

        @Test func removeFilesAndTrees() throws {
            let client = try DoorsClient()
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }
            let tree = scratch.path + "/tree"
            #expect(try client.call(.mkdir(MkdirRequest(path: tree + "/a/b/c", parents: true))) == .ok(count: 0))
            #expect(try client.writeFile(tree + "/a/b/c/file", [[1]]) == .ok(count: 1))
            #expect(try client.writeFile(tree + "/top", [[1]]) == .ok(count: 1))
            // A symlink out of the tree: removing the tree must not follow it.
            let outside = scratch.path + "/outside"
            #expect(try client.call(.mkdir(MkdirRequest(path: outside))) == .ok(count: 0))
            #expect(try client.writeFile(outside + "/keep", [[1]]) == .ok(count: 1))
            #expect(symlink(outside, tree + "/a/link") == 0)

            let notEmpty = try client.call(.remove(RemoveRequest(path: tree)))
            #expect(notEmpty.errorReply?.code == .notEmpty)
            #expect(try client.call(.remove(RemoveRequest(path: tree + "/top"))) == .ok(count: 0))
            #expect(try client.call(.remove(RemoveRequest(path: tree, recursive: true))) == .ok(count: 0))
            #expect(try client.call(.stat(StatRequest(path: tree))).errorReply?.code == .notFound)
            #expect(try client.readWholeFile(outside + "/keep") == [1])

            #expect(try client.call(.remove(RemoveRequest(path: outside + "/keep"))) == .ok(count: 0))
            #expect(try client.call(.remove(RemoveRequest(path: outside))) == .ok(count: 0))
            let missing = try client.call(.remove(RemoveRequest(path: outside)))
            #expect(missing.errorReply?.code == .notFound)
            #expect(missing.errorReply?.errno == ENOENT)
            let underFile = try client.call(.remove(RemoveRequest(path: "/dev/null/x")))
            #expect(underFile.errorReply?.errno == ENOTDIR)
        }

        @Test func removeDeepTreesUpToTheDepthLimit() throws {
            let client = try DoorsClient()
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }
            let levels = FileOperations.maxRemoveDepth - 1
            let deep = scratch.path + "/deep" + String(repeating: "/d", count: levels)
            #expect(try client.call(.mkdir(MkdirRequest(path: deep, parents: true))) == .ok(count: 0))
            #expect(try client.writeFile(deep + "/leaf", [[1]]) == .ok(count: 1))
            #expect(try client.call(.remove(RemoveRequest(path: scratch.path + "/deep", recursive: true))) == .ok(count: 0))
            #expect(try client.call(.stat(StatRequest(path: scratch.path + "/deep"))).errorReply?.code == .notFound)

            // One level more than the limit: refused (ELOOP), nothing crashes.
            let deeper = scratch.path + "/deeper" + String(repeating: "/d", count: levels + 2)
            #expect(try client.call(.mkdir(MkdirRequest(path: deeper, parents: true))) == .ok(count: 0))
            let refused = try client.call(.remove(RemoveRequest(path: scratch.path + "/deeper", recursive: true)))
            #expect(refused.errorReply?.errno == ELOOP)
            #expect(try client.call(.ping(nonce: 1)) == .pong(nonce: 1))
        }
    }
}

func currentUmask() -> UInt32 {
    let mask = umask(0o022)
    umask(mask)
    return UInt32(mask)
}
