import Egress
import Foundation
import Glibc
import Testing

/// The host's model key: what is accepted, and that its text never shows.
@Suite struct BrainCredentialTests {
    @Test func oneLineOfVisibleASCIIIsAKeyAndItsDescriptionHidesIt() throws {
        let key = try BrainCredential.parse(Array("sk-test-123\n".utf8), source: "k").get()
        #expect(key.description == "an API key of 11 bytes")
        #expect(!"\(key)".contains("sk-test"))
        #expect(try BrainCredential.parse(Array("sk-test-123\r\n".utf8), source: "k").get() == key)
    }

    @Test func keysThatCouldEndAHeaderEarlyOrAreEmptyAreRefused() {
        for bad in ["", "\n", "two words", "a\rb", "line\nline", "caf\u{e9}", String(repeating: "k", count: 4097)] {
            guard case .failure(let error) = BrainCredential.parse(Array(bad.utf8), source: "MOMIN_BRAIN_API_KEY") else {
                Issue.record("accepted \(bad.debugDescription)")
                continue
            }
            #expect(error.description.hasPrefix("MOMIN_BRAIN_API_KEY "))
            #expect(!error.description.contains(bad) || bad.isEmpty || bad == "\n")
        }
    }

    @Test func aKeyFileMustBeRegularAndReadableByItsOwnerOnly() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/key"
        try Data("sk-file\n".utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o644)
        guard case .failure(let open) = BrainCredential.load(file: path) else { Issue.record("a world-readable key was taken"); return }
        #expect(open.description == "key file \(path) may be read or written by others (mode 644); chmod 600 it")
        chmod(path, 0o600)
        #expect(try BrainCredential.load(file: path).get().description == "an API key of 7 bytes")
        guard case .failure(let directory) = BrainCredential.load(file: dir) else { Issue.record("a directory was taken"); return }
        #expect(directory.description.contains("not a regular file") || directory.description.contains("key file \(dir)"))
        guard case .failure(let missing) = BrainCredential.load(file: dir + "/none") else { Issue.record("a missing file was taken"); return }
        #expect(missing.description.hasPrefix("key file \(dir)/none: "))
        // The file wins over the variable; neither is no key; a bad one is an error, not none.
        #expect(try BrainCredential.fromEnvironment(file: path, value: "sk-other").get()?.description == "an API key of 7 bytes")
        #expect(try BrainCredential.fromEnvironment(file: nil, value: nil).get() == nil)
        guard case .failure = BrainCredential.fromEnvironment(file: nil, value: "bad key") else { Issue.record("a bad variable was taken"); return }
    }
}
