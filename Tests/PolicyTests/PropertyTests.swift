import Doors
import Policy
import TestRandom
import Testing

/// Generated cases with a fixed seed each: a failure names the seed's case and reproduces.
@Suite struct PropertyTests {
    static let readPolicy: AgentPolicy = try! parse("""
        version: 1
        agent: props
        tools:
          files:
            read: [/allowed/**, /other/*.txt]
        """)

    static let segments = ["allowed", "secret", "other", "a", "b", "x.txt", "l1", "l2", "..", ".", "", "//"]

    /// A random file system over the same names, with symlinks pointing anywhere: in, out,
    /// relative, absolute, into loops.
    static func randomFileSystem(_ random: inout SeededGenerator) -> FakeFileSystem {
        var fs = FakeFileSystem()
        for top in ["/allowed", "/secret", "/other"] {
            fs.add(top + "/a/x.txt", .file)
            fs.add(top + "/x.txt", .file)
            fs.add(top + "/b", .directory)
        }
        let targets = ["/secret", "/secret/x.txt", "/allowed/a", "..", "../..", "../secret", "a", "/other", "/", "l1", "/allowed/l2", "b/../.."]
        for dir in ["/allowed", "/allowed/a", "/allowed/b", "/other", "/secret"] {
            for name in ["l1", "l2"] where random.chance(60) {
                fs.add(dir + "/" + name, .symlink(random.pick(targets)))
            }
        }
        return fs
    }

    static func randomPath(_ random: inout SeededGenerator) -> String {
        "/" + (0..<Int.random(in: 0...6, using: &random)).map { _ in random.pick(segments) }.joined(separator: "/")
    }

    /// Whether a canonical path is under /allowed or one of /other's .txt files, checked
    /// without the glob engine.
    static func insideAllowed(_ path: String) -> Bool {
        if path == "/allowed" || path.hasPrefix("/allowed/") { return true }
        let parts = path.split(separator: "/")
        return parts.count == 2 && parts[0] == "other" && parts[1].hasSuffix(".txt")
    }

    /// (b) An allowed read's canonical path lies under an allowed glob: symlinks never widen.
    @Test func allowedImpliesTheCanonicalPathIsAllowed() {
        var random = SeededGenerator(seed: 0xB)
        var allowed = 0
        var deniedOnlyBySymlinks = 0
        for _ in 0..<200 {
            let fs = Self.randomFileSystem(&random)
            for _ in 0..<30 {
                let path = Self.randomPath(&random)
                let decision = Self.readPolicy.evaluate(.readFile(path: path), resolver: fs)
                guard case .success(let normal) = PathNormalization.normalize(path) else {
                    #expect(!decision.isAllowed)
                    continue
                }
                let canonical = fs.canonicalPath(normal, followFinalSymlink: true)
                if decision.isAllowed {
                    allowed += 1
                    #expect(canonical.map(Self.insideAllowed) == true, "\(path) → \(canonical ?? "nil") allowed")
                    #expect(Self.insideAllowed(normal), "\(path) allowed")
                } else if Self.insideAllowed(normal) {
                    deniedOnlyBySymlinks += 1
                    #expect(canonical.map(Self.insideAllowed) != true, "\(path) denied: \(decision)")
                }
            }
        }
        // The generator reaches both sides of the property.
        #expect(allowed > 100 && deniedOnlyBySymlinks > 50, "\(allowed) allowed, \(deniedOnlyBySymlinks) denied by symlinks")
    }

    /// (c) Adding ".", "..", "//" or "x/.." noise to a path never changes the verdict, so a
    /// denied path stays denied.
    @Test func noiseNeverWidensAccess() {
        var random = SeededGenerator(seed: 0xC)
        let noises = ["/.", "//", "/zz/..", "/./", "/a/b/../.."]
        var denied = 0
        for _ in 0..<100 {
            let fs = Self.randomFileSystem(&random)
            for _ in 0..<40 {
                let path = Self.randomPath(&random)
                guard case .success(let normal) = PathNormalization.normalize(path) else { continue }
                let verdict = Self.readPolicy.evaluate(.readFile(path: normal), resolver: fs)
                if !verdict.isAllowed { denied += 1 }
                var noisy = normal == "/" ? "" : normal
                for _ in 0..<Int.random(in: 1...3, using: &random) {
                    let cut = Int.random(in: 0...noisy.count, using: &random)
                    let index = noisy.index(noisy.startIndex, offsetBy: cut)
                    // Noise goes only at segment boundaries, so it never splits a name.
                    if cut == noisy.count || noisy[index] == "/" { noisy.insert(contentsOf: random.pick(noises), at: index) }
                }
                if random.chance(30) { noisy = "/.." + noisy }
                if random.chance(30) { noisy += "/" }
                if noisy.isEmpty || !noisy.hasPrefix("/") { noisy = "/" + noisy }
                let after = Self.readPolicy.evaluate(.readFile(path: noisy), resolver: fs)
                #expect(after.isAllowed == verdict.isAllowed, "\(normal) vs \(noisy)")
            }
        }
        #expect(denied > 1000)
    }

    /// (d) An allowed argv with one argument changed outside its pattern, one added or one
    /// dropped, or another program, is denied.
    @Test func argvMutationsOutsideThePatternsAreDenied() throws {
        let policy = try parse("""
            version: 1
            agent: exec-props
            tools:
              exec:
                - program: /usr/bin/grep
                  args:
                    prefix: ["-[inc]", "-e", "*"]
                    rest: ["path:/allowed/**"]
                    max: 6
                  env: [LANG=C.UTF-8]
            """)
        var random = SeededGenerator(seed: 0xD)
        let flags = ["-i", "-n", "-c"]
        let badFlags = ["-f", "-r", "--include=*", "-in", "-", "", "i", "-e"]
        let badPaths = ["/secret/x.txt", "/allowed/l1/x.txt", "/allowed/../secret", "allowed/a", "/allowedx", "/", "-f", "/allowed/./a"]
        let programs = ["/usr/bin/grepx", "/bin/grep", "/usr/bin/egrep", "grep", "/usr/bin/grep/"]
        var checked = 0
        for _ in 0..<3000 {
            var fs = FakeFileSystem()
            fs.add("/allowed/a/x.txt", .file)
            fs.add("/secret/x.txt", .file)
            fs.add("/allowed/l1", .symlink("/secret"))
            fs.add("/usr/bin/grep", .file)
            let files = (0..<Int.random(in: 0...3, using: &random)).map { _ in random.pick(["/allowed/a/x.txt", "/allowed/a", "/allowed/new", "/allowed"]) }
            let argv = ["/usr/bin/grep", random.pick(flags), "-e", random.pick(["x", "-f", "/etc/shadow", ""])] + files
            let env = ["LANG=C.UTF-8"]
            #expect(policy.evaluate(.exec(ExecRequest(argv: argv, env: env)), resolver: fs).isAllowed, "\(argv)")

            var mutated = argv
            var mutatedEnv = env
            switch Int.random(in: 0..<6, using: &random) {
            case 0: mutated[1] = random.pick(badFlags)
            case 1: mutated[2] = random.pick(["-f", "-E", "--regexp", "e"])
            case 2 where files.count > 0: mutated[4 + Int.random(in: 0..<files.count, using: &random)] = random.pick(badPaths)
            case 2, 3: mutated.insert(random.pick(badPaths), at: Int.random(in: 4...mutated.count, using: &random))
            case 4: mutated[0] = random.pick(programs)
            default:
                if random.chance(50) { mutated.removeSubrange(1...Int.random(in: 1...3, using: &random)) }
                else { mutatedEnv.append(random.pick(["LD_PRELOAD=/x.so", "LANG=C", "PATH=/tmp", "LANG"])) }
            }
            let decision = policy.evaluate(.exec(ExecRequest(argv: mutated, env: mutatedEnv)), resolver: fs)
            #expect(!decision.isAllowed, "\(mutated) \(mutatedEnv) allowed")
            checked += 1
        }
        #expect(checked == 3000)
    }
}
