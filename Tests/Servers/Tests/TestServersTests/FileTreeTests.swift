import Glibc
import Testing
@testable import TestServers

@Suite struct FileTreeTests {
    @Test func decodesPaths() {
        #expect(FileTree.segments("/")! == ([], true))
        #expect(FileTree.segments("/simple/momin-good/")! == (["simple", "momin-good"], true))
        #expect(FileTree.segments("//a%2Db//c%20d")! == (["a-b", "c d"], false))
        #expect(FileTree.segments("/a/%C3%A9")! == (["a", "é"], false))
    }

    @Test(arguments: ["/..", "/a/../b", "/a/%2e%2E/b", "/./a", "/a%00b", "/a%2", "/a%+1", "/a%zz", "/%C3"])
    func refusesPaths(_ path: String) {
        #expect(FileTree.segments(path) == nil)
    }

    /// A root holding a file, a directory, a symlink inside and two leading out.
    @Test func findsOnlyWhatIsInside() throws {
        var template = Array("/tmp/filetree.XXXXXX".utf8CString)
        let made = try #require(mkdtemp(&template))
        let base = String(cString: made)
        defer { _ = system("rm -rf '\(base)'") }
        #expect(system("""
            mkdir -p '\(base)/root/dir' && echo x > '\(base)/root/dir/f' && echo s > '\(base)/secret' \
            && ln -s dir/f '\(base)/root/inside' && ln -s ../secret '\(base)/root/out' && ln -s .. '\(base)/root/up'
            """) == 0)
        let tree = try FileTree(root: base + "/root/")
        #expect(tree.root == base + "/root")
        #expect(tree.find([]) == .directory(base + "/root"))
        #expect(tree.find(["dir"]) == .directory(base + "/root/dir"))
        #expect(tree.find(["dir", "f"]) == .file(base + "/root/dir/f"))
        #expect(tree.find(["inside"]) == .file(base + "/root/dir/f"))
        #expect(tree.find(["out"]) == .none)
        #expect(tree.find(["up"]) == .none)
        #expect(tree.find(["up", "secret"]) == .none)
        #expect(tree.find(["missing"]) == .none)
        #expect(throws: UsageError.self) { try FileTree(root: base + "/missing") }
    }
}
