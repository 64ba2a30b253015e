import PackageIndex
import Testing

/// The resolver over an index held in memory: pages as PEP 503 HTML, metadata as METADATA text.
@Suite struct ResolverTests {
    /// A project's files: filename, Requires-Python, yanked, and its METADATA's Requires-Dist lines.
    struct FakeFile {
        var filename: String
        var requiresPython: String? = nil
        var yanked = false
        var requires: [String] = []
        var metadataName: String? = nil
    }

    final class Index: PackageSource {
        var projects: [String: [FakeFile]]
        var pagesRead: [String] = []
        var metadataRead: [String] = []

        init(_ projects: [String: [FakeFile]]) { self.projects = projects }

        func page(project: String) throws(ResolutionFailure) -> ProjectPage {
            pagesRead.append(project)
            guard let files = projects[project] else { throw .noMatch(name: project, why: "404") }
            let sha = String(repeating: "ab", count: 32)
            var html = "<html><body>"
            for file in files {
                var attributes = ""
                if let python = file.requiresPython { attributes += " data-requires-python=\"\(python.replacingLessThan())\"" }
                if file.yanked { attributes += " data-yanked=\"\"" }
                if file.filename.hasSuffix(".whl") { attributes += " data-dist-info-metadata=\"true\"" }
                html += "<a href=\"../../files/\(file.filename)#sha256=\(sha)\"\(attributes)>\(file.filename)</a>"
            }
            do { return try SimpleIndex.projectPage(html: Array((html + "</body></html>").utf8), url: "https://index.test/simple/\(project)/") } catch {
                throw .badIndex("\(error)")
            }
        }

        func metadata(of file: DistributionFile) throws(ResolutionFailure) -> CoreMetadata {
            metadataRead.append(file.filename)
            guard let fake = projects.values.joined().first(where: { $0.filename == file.filename }),
                  let wheel = try? WheelName(parsing: file.filename) else { throw .badIndex("no \(file.filename)") }
            var text = "Metadata-Version: 2.1\nName: \(fake.metadataName ?? wheel.distribution)\nVersion: \(wheel.version)\n"
            for line in fake.requires { text += "Requires-Dist: \(line)\n" }
            do { return try CoreMetadata(parsing: text) } catch { throw .badIndex("\(error)") }
        }
    }

    func resolve(_ requests: [String], _ index: Index, allow: @escaping (String, Version?) -> Bool = { _, _ in true }) throws -> [String] {
        let requirements = try requests.map { try Requirement(parsing: $0) }
        return try Resolver().resolve(requirements, source: index, allows: allow).map { "\($0.name) \($0.version) \($0.file.filename)" }
    }

    static func wheel(_ name: String, _ version: String, tag: String = "py3-none-any", requires: [String] = [],
                      python: String? = nil, yanked: Bool = false) -> FakeFile {
        FakeFile(filename: "\(name.replacingDashes())-\(version)-\(tag).whl", requiresPython: python, yanked: yanked, requires: requires)
    }

    @Test func theNewestVersionAndItsDependenciesAreChosenBreadthFirst() throws {
        let index = Index([
            "app": [Self.wheel("app", "1.0"), Self.wheel("app", "1.1", requires: ["lib>=2", "tool; python_version < \"3\"", "extra-only; extra == \"x\""])],
            "lib": [Self.wheel("lib", "1.9"), Self.wheel("lib", "2.0"), Self.wheel("lib", "2.1rc1")],
        ])
        #expect(try resolve(["app"], index) == ["app 1.1 app-1.1-py3-none-any.whl", "lib 2.0 lib-2.0-py3-none-any.whl"])
        // The marker that is false for the guest and the extra nobody asked for are never read.
        #expect(index.pagesRead == ["app", "lib"])
    }

    @Test func thePolicyPicksTheNewestVersionItAllowsAndItsDenialNamesTheNewestOtherwise() throws {
        let index = Index(["app": [Self.wheel("app", "1.0"), Self.wheel("app", "2.0")]])
        #expect(try resolve(["app"], index) { _, version in version.map { $0 < (try! Version(parsing: "2")) } ?? true }
            == ["app 1.0 app-1.0-py3-none-any.whl"])
        #expect(throws: ResolutionFailure.notAllowed(name: "app", version: try Version(parsing: "2.0"), requiredBy: nil)) {
            try resolve(["app==2.0"], index) { _, version in version.map { $0 < (try! Version(parsing: "2")) } ?? true }
        }
    }

    @Test func aRefusedDependencyIsNamedBeforeItsPageIsRead() throws {
        let index = Index(["app": [Self.wheel("app", "1.0", requires: ["Evil_Pkg>=1"])], "evil-pkg": [Self.wheel("evil-pkg", "1.0")]])
        #expect(throws: ResolutionFailure.notAllowed(name: "evil-pkg", version: nil, requiredBy: "app")) {
            try resolve(["app"], index) { name, _ in name != "evil-pkg" }
        }
        #expect(index.pagesRead == ["app"])
    }

    @Test func sourceOnlyProjectsAreRefusedAndNothingIsBuilt() throws {
        let index = Index(["src": [FakeFile(filename: "src-1.0.tar.gz"), FakeFile(filename: "src-1.1.zip")]])
        #expect(throws: ResolutionFailure.sourceOnly(name: "src", sdists: 2)) { try resolve(["src"], index) }
        #expect(index.metadataRead.isEmpty)
    }

    @Test func wheelsForOtherInterpretersPythonsOrYankedAreSkipped() throws {
        let index = Index(["lib": [
            Self.wheel("lib", "3.0", tag: "cp312-cp312-manylinux_2_17_x86_64"),
            Self.wheel("lib", "2.5", python: ">=3.12"),
            Self.wheel("lib", "2.4", yanked: true),
            Self.wheel("lib", "2.3", tag: "cp311-cp311-win_amd64"),
            Self.wheel("lib", "2.2", tag: "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"),
            Self.wheel("lib", "2.2"),
        ]])
        // The platform wheel of 2.2 ranks above the pure one.
        #expect(try resolve(["lib"], index) == ["lib 2.2 lib-2.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"])
        // PEP 592: an exact pin takes a yanked file.
        #expect(try resolve(["lib==2.4"], index) == ["lib 2.4 lib-2.4-py3-none-any.whl"])
        #expect(throws: ResolutionFailure.self) { try resolve(["lib>=2.6"], index) }
    }

    @Test func preReleasesAreTakenOnlyWhenNamedOrAlone() throws {
        let index = Index(["lib": [Self.wheel("lib", "1.0"), Self.wheel("lib", "2.0b1")], "beta": [Self.wheel("beta", "0.1a1")]])
        #expect(try resolve(["lib"], index) == ["lib 1.0 lib-1.0-py3-none-any.whl"])
        #expect(try resolve(["lib>=2.0b1"], index) == ["lib 2.0b1 lib-2.0b1-py3-none-any.whl"])
        #expect(try resolve(["beta"], index) == ["beta 0.1a1 beta-0.1a1-py3-none-any.whl"])
    }

    @Test func conflictsURLsAndLyingMetadataAreRefused() throws {
        let index = Index([
            "app": [Self.wheel("app", "1.0", requires: ["lib<2"])],
            "lib": [Self.wheel("lib", "2.0"), Self.wheel("lib", "1.0")],
            "liar": [FakeFile(filename: "liar-1.0-py3-none-any.whl", metadataName: "other")],
        ])
        #expect(throws: ResolutionFailure.conflict(name: "lib", chosen: try Version(parsing: "2.0"), wanted: "<2", requiredBy: "app")) {
            try resolve(["lib", "app"], index)
        }
        // Breadth first, the request's own names come before any dependency.
        #expect(throws: ResolutionFailure.self) { try resolve(["app", "lib"], index) }
        #expect(try resolve(["app"], index) == ["app 1.0 app-1.0-py3-none-any.whl", "lib 1.0 lib-1.0-py3-none-any.whl"])
        #expect(throws: ResolutionFailure.self) { try resolve(["lib @ https://evil.test/lib.whl"], index) }
        #expect(throws: ResolutionFailure.badIndex("the core metadata of liar-1.0-py3-none-any.whl names other 1.0")) {
            try resolve(["liar"], index)
        }
    }

    /// An index that would have the host read without end is cut at the resolver's bounds:
    /// packages chosen, and requirements read (the same few named again and again).
    @Test func aResolutionStopsAtItsBounds() throws {
        let many = (0...Resolver.maximumPackages).map { "lib\($0)" }
        var projects = ["app": [Self.wheel("app", "1.0", requires: many)]]
        for name in many { projects[name] = [Self.wheel(name, "1.0")] }
        let wide = Index(projects)
        #expect(throws: ResolutionFailure.tooMany(what: "packages", limit: Resolver.maximumPackages)) { try resolve(["app"], wide) }
        #expect(wide.pagesRead.count == Resolver.maximumPackages)
        let again = (0..<1000).map { _ in "lib" }
        let echo = Index(["a": [Self.wheel("a", "1.0", requires: again)], "b": [Self.wheel("b", "1.0", requires: again)],
                          "c": [Self.wheel("c", "1.0", requires: again)], "d": [Self.wheel("d", "1.0", requires: again)],
                          "e": [Self.wheel("e", "1.0", requires: again)], "lib": [Self.wheel("lib", "1.0")]])
        #expect(throws: ResolutionFailure.tooMany(what: "requirements read", limit: Resolver.maximumRequirements)) {
            try resolve(["a", "b", "c", "d", "e"], echo)
        }
    }

    @Test func extrasAskedLaterBringTheirDependencies() throws {
        let index = Index([
            "app": [Self.wheel("app", "1.0", requires: ["lib", "lib[fast]"])],
            "lib": [Self.wheel("lib", "1.0", requires: ["speedup; extra == \"fast\""])],
            "speedup": [Self.wheel("speedup", "1.0")],
        ])
        #expect(try resolve(["app"], index).map { String($0.split(separator: " ")[0]) } == ["app", "lib", "speedup"])
    }
}

extension String {
    func replacingLessThan() -> String { replacing("<", with: "&lt;").replacing(">", with: "&gt;") }
    func replacingDashes() -> String { replacing("-", with: "_") }
}
