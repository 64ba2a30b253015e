import PackageIndex

/// The `packages` section (docs/policy.md, "packages").
extension PolicyBuilder {
    func packages(_ node: SourceNode) throws(PolicyError) -> Packages {
        let fields = try mapping(node, "packages", keys: ["pip", "apt"])
        var packages = Packages()
        if let entry = fields["pip"] {
            let pip = try mapping(entry.node, "packages.pip", keys: ["index", "allow"])
            guard let indexEntry = pip["index"] else {
                throw fail(entry.node, "packages.pip.index", "missing (the simple repository's URL, such as https://pypi.org/simple)")
            }
            packages.pip = PipPackages(rule: RuleRef("packages.pip", line: entry.line), index: try url(indexEntry.node, "packages.pip.index"),
                                       allow: try packageRules(entry.node, pip["allow"], .pip))
        }
        if let entry = fields["apt"] {
            let apt = try mapping(entry.node, "packages.apt", keys: ["mirrors", "allow"])
            guard let mirrorsEntry = apt["mirrors"] else {
                throw fail(entry.node, "packages.apt.mirrors", "missing (the Debian mirrors apt may use, such as http://deb.debian.org/debian)")
            }
            let items = try sequence(mirrorsEntry.node, "packages.apt.mirrors")
            if items.isEmpty { throw fail(mirrorsEntry.node, "packages.apt.mirrors", "an empty list reaches no mirror; leave packages.apt out instead") }
            var mirrors: [BaseURL] = []
            for (index, item) in items.enumerated() { mirrors.append(try url(item, "packages.apt.mirrors[\(index)]")) }
            packages.apt = AptPackages(rule: RuleRef("packages.apt", line: entry.line), mirrors: mirrors,
                                       allow: try packageRules(entry.node, apt["allow"], .apt))
        }
        return packages
    }

    private func url(_ node: SourceNode, _ field: String) throws(PolicyError) -> BaseURL {
        let text = try string(node, field)
        switch BaseURL.parse(text) {
        case .success(let url): return url
        case .failure(let problem): throw fail(node, field, "\(quoted(text)) \(problem)")
        }
    }

    /// `allow`: each entry a name glob, or for pip `{name: GLOB, versions: SPECIFIERS}`.
    private func packageRules(_ section: SourceNode, _ entry: Entry?, _ ecosystem: PackageEcosystem) throws(PolicyError) -> [PackageRule] {
        let field = "packages.\(ecosystem.rawValue).allow"
        guard let entry else { throw fail(section, field, "missing (the names allowed, globs)") }
        let items = try sequence(entry.node, field)
        if items.isEmpty { throw fail(entry.node, field, "an empty list allows no package; leave packages.\(ecosystem.rawValue) out instead") }
        var rules: [PackageRule] = []
        for (index, item) in items.enumerated() {
            let itemField = "\(field)[\(index)]"
            var nameNode = item
            var nameField = itemField
            var versions: SpecifierSet?
            if case .mapping = item.value {
                let keys = ecosystem == .pip ? ["name", "versions"] : ["name"]
                let fields = try mapping(item, itemField, keys: keys)
                guard let name = fields["name"] else { throw fail(item, itemField + ".name", "missing (a package name glob)") }
                nameNode = name.node
                nameField = itemField + ".name"
                if let versionsEntry = fields["versions"] {
                    let text = try string(versionsEntry.node, itemField + ".versions")
                    do { versions = try SpecifierSet(parsing: text) } catch {
                        throw fail(versionsEntry.node, itemField + ".versions", "\(quoted(text)) is not a PEP 440 specifier set: \(error.reason)")
                    }
                    if versions?.specifiers.isEmpty == true {
                        throw fail(versionsEntry.node, itemField + ".versions", "empty: leave versions out to allow any")
                    }
                }
            }
            let pattern = try string(nameNode, nameField)
            rules.append(PackageRule(rule: RuleRef(itemField, line: item.line), name: try packageGlob(pattern, nameNode, nameField, ecosystem),
                                     versions: versions))
        }
        return rules
    }

    /// A name glob, normalised as the names it is matched against are (pip: PEP 503's
    /// lowercase with `-` for every run of `-_.`), made of what such names hold and `* ? [ ] !`.
    private func packageGlob(_ pattern: String, _ node: SourceNode, _ field: String, _ ecosystem: PackageEcosystem) throws(PolicyError) -> Glob {
        let normal = ecosystem == .pip ? ProjectName.normalize(pattern) : pattern
        let nameBytes: [UInt8] = ecosystem == .pip ? Array("-".utf8) : Array("+-.".utf8)
        let allowed: (UInt8) -> Bool = { b in
            (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || nameBytes.contains(b) || Array("*?[]!".utf8).contains(b)
        }
        guard !normal.isEmpty, normal.utf8.count <= 256, normal.utf8.allSatisfy(allowed) else {
            let what = ecosystem == .pip ? "letters, digits, - . _" : "lowercase letters, digits, + - ."
            throw fail(node, field, "\(quoted(pattern)) is not a name glob for \(ecosystem.rawValue) packages (\(what), and * ? [...])")
        }
        return try compile(normal, node, field, kind: .text)
    }
}
