@testable import Images
import Testing

@Suite struct BuildPlanTests {
    let key = "0123456789abcdef0123456789abcdeffedcba9876543210fedcba9876543210"

    @Test func mmdebstrapRunsAsRootIntoADirectoryWithTheSourcesAndPackages() {
        let plan = DebianBuildPlan(request: DebianImageRequest(extraPackages: ["tshark", "jq"], architecture: "amd64"), inputsKey: key)
        #expect(plan.mmdebstrapArguments(program: "/usr/bin/mmdebstrap", target: "/s/tmp/1-0/root") == [
            "/usr/bin/mmdebstrap", "--mode=root", "--variant=minbase", "--format=directory", "--architectures=amd64",
            "--include=binutils,coreutils,file,jq,python3,python3-pip,sleuthkit,tshark,xxd,yara",
            "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/info/*",
            "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-include=/usr/share/doc/*/copyright",
            "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-exclude=/usr/share/lintian/*",
            "--aptopt=Acquire::Retries \"3\"",
            "bookworm", "/s/tmp/1-0/root",
            "deb http://deb.debian.org/debian bookworm main",
            "deb http://deb.debian.org/debian bookworm-updates main",
            "deb http://deb.debian.org/debian-security bookworm-security main",
        ])
        let simulated = plan.mmdebstrapArguments(program: "mmdebstrap", target: "/s/tmp/1-0/check", simulate: true)
        #expect(Array(simulated.prefix(3)) == ["mmdebstrap", "--simulate", "--mode=root"])
        #expect(Array(simulated.dropFirst(2)) == Array(plan.mmdebstrapArguments(program: "mmdebstrap", target: "/s/tmp/1-0/check").dropFirst()))
        // No defaults, no extras: no --include at all; a rolling suite has one source.
        let bare = DebianBuildPlan(request: DebianImageRequest(suite: "sid", defaultPackages: false, architecture: "arm64"), inputsKey: key)
        let argv = bare.mmdebstrapArguments(program: "mmdebstrap", target: "t")
        #expect(!argv.contains { $0.hasPrefix("--include") })
        #expect(argv.contains("--architectures=arm64"))
        #expect(Array(argv.suffix(3)) == ["sid", "t", "deb http://deb.debian.org/debian sid main"])
    }

    @Test func mke2fsGetsFixedIdentitiesFromTheKey() {
        let plan = DebianBuildPlan(request: DebianImageRequest(), inputsKey: key)
        #expect(plan.filesystemUUID == "01234567-89ab-4def-8123-456789abcdef")
        #expect(plan.hashSeed == "fedcba98-7654-4210-bedc-ba9876543210")
        #expect(plan.mke2fsArguments(program: "/sbin/mke2fs", tree: "/b/root", image: "/b/image.ext4", inodes: 9000) == [
            "/sbin/mke2fs", "-F", "-q", "-t", "ext4", "-b", "4096", "-I", "256", "-N", "9000", "-m", "0", "-L", "momin",
            "-U", "01234567-89ab-4def-8123-456789abcdef",
            "-E", "hash_seed=fedcba98-7654-4210-bedc-ba9876543210,lazy_itable_init=0,lazy_journal_init=0,nodiscard,root_owner=0:0",
            "-d", "/b/root", "/b/image.ext4",
        ])
        #expect(DebianBuildPlan.mke2fsConfiguration.contains("\t\tfeatures = extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize\n"))
        #expect(!DebianBuildPlan.mke2fsConfiguration.contains("has_journal"))
    }

    @Test func theEnvironmentIsFixedButForPathAndProxies() {
        let environment = DebianBuildPlan.environment(
            parent: ["PATH": "/usr/local/bin:/usr/bin", "LANG": "de_DE.UTF-8", "https_proxy": "http://p:3128", "HOME": "/root", "TZ": "Europe/Berlin"],
            extra: ["MKE2FS_CONFIG": "/b/mke2fs.conf"])
        #expect(environment == [
            "E2FSPROGS_FAKE_TIME=1686355200", "LC_ALL=C", "MKE2FS_CONFIG=/b/mke2fs.conf", "PATH=/usr/local/bin:/usr/bin:/usr/sbin:/sbin",
            "SOURCE_DATE_EPOCH=1686355200", "TZ=UTC", "https_proxy=http://p:3128",
        ])
        #expect(DebianBuildPlan.environment(parent: [:]).first { $0.hasPrefix("PATH=") } == "PATH=/usr/bin:/bin:/usr/sbin:/sbin")
    }

    @Test func theCtimeScriptSetsEachInode() {
        #expect(DebianBuildPlan.ctimeScript(inodes: [2, 11, 12]) == "sif <2> ctime @1686355200\nsif <11> ctime @1686355200\nsif <12> ctime @1686355200\n")
    }

    @Test func theInputsKeyChangesWithEveryInputButTheName() {
        let base = DebianImageRequest(architecture: "amd64")
        let key = base.inputsKey(tools: fixedTools)
        #expect(key.utf8.count == 64)
        var renamed = base
        renamed.name = "other"
        #expect(renamed.inputsKey(tools: fixedTools) == key)
        var reordered = base
        reordered.extraPackages = ["jq", "python3"]  // already in the defaults
        #expect(reordered.inputsKey(tools: fixedTools) == key)
        var variants: [DebianImageRequest] = []
        for change in 0..<6 {
            var request = base
            switch change {
            case 0: request.suite = "trixie"
            case 1: request.extraPackages = ["tshark"]
            case 2: request.defaultPackages = false
            case 3: request.size = 1 << 30
            case 4: request.mirror = "http://mirror.example/debian"
            default: request.architecture = "arm64"
            }
            variants.append(request)
        }
        let keys = variants.map { $0.inputsKey(tools: fixedTools) } + [
            base.inputsKey(tools: ToolVersions(mmdebstrap: "1.4.0", e2fsprogs: "1.47.0")),
            base.inputsKey(tools: ToolVersions(mmdebstrap: "1.3.5", e2fsprogs: "1.47.2")),
        ]
        #expect(Set(keys + [key]).count == keys.count + 1)
    }

    @Test func requestsAreCheckedBeforeAnythingRuns() throws {
        try DebianImageRequest().validate()
        try DebianImageRequest(name: "triage-2.x", extraPackages: ["g++", "libc6-dev", "python3.11"]).validate()
        let bad: [(DebianImageRequest, String)] = [
            (DebianImageRequest(name: ""), "image name '' is invalid"),
            (DebianImageRequest(name: "-x"), "image name '-x' is invalid"),
            (DebianImageRequest(name: "Debian"), "image name 'Debian' is invalid"),
            (DebianImageRequest(name: String(repeating: "a", count: 65)), "is invalid"),
            (DebianImageRequest(suite: "Bookworm"), "suite 'Bookworm' is not a Debian suite name"),
            (DebianImageRequest(suite: "../x"), "suite '../x' is not"),
            (DebianImageRequest(extraPackages: ["x"]), "'x' is not a Debian package name"),
            (DebianImageRequest(extraPackages: ["jq;rm"]), "'jq;rm' is not a Debian package name"),
            (DebianImageRequest(extraPackages: ["--option"]), "'--option' is not"),
            (DebianImageRequest(size: 1 << 20), "--size 1048576 bytes is below 16 MiB"),
            (DebianImageRequest(mirror: "ftp://x"), "mirror 'ftp://x' is not an http, https or file URL"),
            (DebianImageRequest(mirror: "http://x y"), "mirror 'http://x y' is not"),
            (DebianImageRequest(architecture: "vax"), "architecture 'vax'"),
        ]
        for (request, message) in bad {
            do {
                try request.validate()
                Issue.record("accepted \(request)")
            } catch {
                #expect(error.kind == .badInput)
                #expect(error.message.contains(message), "\(error.message)")
            }
        }
    }

    @Test func packageListsSplitOnCommas() throws {
        #expect(try DebianImageRequest.parsePackageList("jq") == ["jq"])
        #expect(try DebianImageRequest.parsePackageList("tshark, python3-yaml ,jq") == ["tshark", "python3-yaml", "jq"])
        #expect(throws: ImageError.badInput("--packages 'jq,,x' has an empty item: give names separated by commas")) {
            try DebianImageRequest.parsePackageList("jq,,x")
        }
        #expect(throws: ImageError.self) { try DebianImageRequest.parsePackageList("") }
        #expect(throws: ImageError.self) { try DebianImageRequest.parsePackageList("jq tshark") }
        #expect(DebianImageRequest.debianArchitecture(machine: "x86_64") == "amd64")
        #expect(DebianImageRequest.debianArchitecture(machine: "aarch64") == "arm64")
    }
}

@Suite struct BuildOutputTests {
    @Test func versionsAreRead() {
        #expect(BuildOutput.mmdebstrapVersion("mmdebstrap 1.3.5\n") == "1.3.5")
        #expect(BuildOutput.mmdebstrapVersion("debootstrap 1.0\n") == nil)
        #expect(BuildOutput.e2fsprogsVersion("mke2fs 1.47.0 (5-Feb-2023)\n\tUsing EXT2FS Library version 1.47.0") == "1.47.0")
        #expect(BuildOutput.e2fsprogsVersion("") == nil)
    }

    @Test func dpkgQueryGivesTheInstalledPackagesSorted() throws {
        let text = "ii \tzlib1g\t1:1.2.13.dfsg-1\tamd64\nii \tbase-files\t12.4+deb12u11\tamd64\nrc \tgone\t1.0\tamd64\n"
        #expect(try BuildOutput.installedPackages(text) == [
            ImagePackage(name: "base-files", version: "12.4+deb12u11", architecture: "amd64"),
            ImagePackage(name: "zlib1g", version: "1:1.2.13.dfsg-1", architecture: "amd64"),
        ])
        #expect(throws: ImageError.self) { try BuildOutput.installedPackages("ii \tjq\n") }
    }

    @Test func dumpe2fsFreeRangesGiveTheInodesInUse() throws {
        let report = """
            Inode count:              40
            First inode:              11
            Free inodes:              23
            Group 0: (Blocks 0-32767) csum 0x1234 [ITABLE_ZEROED]
              Free inodes: 15-20
            Group 1: (Blocks 32768-65535)
              Free inodes: 21-30, 33, 35-40
            """
        #expect(try BuildOutput.inodesInUse(dumpe2fs: report) == [2, 11, 12, 13, 14, 31, 32, 34])
        let full = "Inode count: 16\nFirst inode: 11\n  Free inodes: \n"
        #expect(try BuildOutput.inodesInUse(dumpe2fs: full) == [2, 11, 12, 13, 14, 15, 16])
        #expect(throws: ImageError.self) { try BuildOutput.inodesInUse(dumpe2fs: "First inode: 11\n") }
        #expect(throws: ImageError.self) { try BuildOutput.inodesInUse(dumpe2fs: "Inode count: 16\nFirst inode: 11\n  Free inodes: 9-x\n") }
        #expect(throws: ImageError.self) { try BuildOutput.inodesInUse(dumpe2fs: "Inode count: 16\nFirst inode: 11\n  Free inodes: 14-12\n") }
    }

    @Test func mmdebstrapFailuresNameTheirCause() {
        let request = DebianImageRequest(architecture: "amd64")
        let missing = BuildOutput.mmdebstrapFailure(
            lines: ["I: running apt-get update...", "E: Unable to locate package nosuchpkg", "E: Unable to locate package other", "E: apt-get failed"],
            request: request, status: "exited 1")
        #expect(missing == .badInput("Debian bookworm has no package nosuchpkg, other (amd64): check the name with apt-cache policy nosuchpkg"))
        let candidate = BuildOutput.mmdebstrapFailure(lines: ["E: Package 'vpnc' has no installation candidate"], request: request, status: "exited 1")
        #expect(candidate.kind == .badInput)
        #expect(candidate.message.hasPrefix("Debian bookworm has no package vpnc "))
        let offline = BuildOutput.mmdebstrapFailure(
            lines: ["W: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  Temporary failure resolving 'deb.debian.org'",
                    "E: apt-get update failed"], request: request, status: "exited 1")
        #expect(offline.kind == .failed)
        #expect(offline.message.hasPrefix("cannot reach the Debian archive: W: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease"))
        let suite = BuildOutput.mmdebstrapFailure(
            lines: ["E: The repository 'http://deb.debian.org/debian nosuch Release' does not have a Release file."], request: request, status: "exited 1")
        #expect(suite.kind == .badInput)
        #expect(suite.message.hasPrefix("suite bookworm is not in the Debian archive at http://deb.debian.org/debian: "))
        let other = BuildOutput.mmdebstrapFailure(lines: ["I: something", "E: mkdir failed"], request: request, status: "exited 1")
        #expect(other == .failed("mmdebstrap exited 1: E: mkdir failed"))
        #expect(BuildOutput.mmdebstrapFailure(lines: [], request: request, status: "killed by signal 9") == .failed("mmdebstrap killed by signal 9: no output"))
    }
}
