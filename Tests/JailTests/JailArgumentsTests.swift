import Testing
@testable import Jail

@Suite struct JailArgumentsTests {
    let base = ["--id", "vm-1", "--root", "/run/momin/jail/vm-1", "--uid", "61234", "--gid", "61235"]

    func parse(_ extra: [String], program: [String] = ["--", "/bin/momin-vmm", "--kernel", "/vmlinuz"]) throws(JailArguments.ParseError) -> JailPlan {
        try JailArguments.parse(base + extra + program)
    }

    func refusal(_ extra: [String], program: [String] = ["--", "/bin/momin-vmm"]) -> String? {
        do { _ = try parse(extra, program: program); return nil } catch { return error.description }
    }

    @Test func helpBeforeTheProgramIsOursAndAfterItIsTheProgramsOwn() throws {
        #expect(throws: JailArguments.ParseError.helpRequested) { try JailArguments.parse(["--help"]) }
        #expect(throws: JailArguments.ParseError.helpRequested) { try parse(["-h"]) }
        #expect(try parse([], program: ["--", "/bin/momin-vmm", "--help"]).arguments == ["--help"])
        #expect(JailArguments.ParseError.helpRequested.description.hasPrefix("usage: momin-jailer --id NAME"))
    }

    @Test func theLivenessDescriptorRoundTripsAndMustBeAbove2() throws {
        let plan = try parse(["--liveness-fd", "3"])
        #expect(plan.livenessFD == 3)
        #expect(try JailArguments.parse(JailArguments.render(plan)).livenessFD == 3)
        #expect(try parse([]).livenessFD == nil)
        for bad in ["2", "0", "-1", "x", "1024"] {
            #expect(refusal(["--liveness-fd", bad]) == "--liveness-fd \(bad) is not an inherited descriptor above 2")
        }
        #expect(refusal(["--liveness-fd", "3", "--liveness-fd", "4"]) == "--liveness-fd is given twice")
    }

    @Test func passedDescriptorsRoundTripInOrderAndAreChecked() throws {
        let plan = try parse(["--liveness-fd", "3", "--pass-fd", "11", "--pass-fd", "10"])
        #expect(plan.passedFDs == [11, 10])
        #expect(try JailArguments.parse(JailArguments.render(plan)) == plan)
        #expect(try parse([]).passedFDs.isEmpty)
        for bad in ["2", "-1", "x", "1024"] {
            #expect(refusal(["--pass-fd", bad]) == "--pass-fd \(bad) is not an inherited descriptor above 2 (below 1024), given once, other than --liveness-fd")
        }
        #expect(refusal(["--pass-fd", "10", "--pass-fd", "10"])?.hasPrefix("--pass-fd 10 is not") == true)
        #expect(refusal(["--liveness-fd", "10", "--pass-fd", "10"])?.hasPrefix("--pass-fd 10 is not") == true)
    }

    @Test func aFullCommandLine() throws {
        let plan = try parse(["--bind", "/opt/momin/momin-vmm:/bin/momin-vmm", "--bind", "/run/momin/vm-1::rw",
                              "--device", "/dev/kvm", "--netns", "host", "--rlimit", "nofile=1024,fsize=0",
                              "--rlimit", "nproc=64,core=0", "--env", "LANG=C"])
        #expect(plan.id == "vm-1")
        #expect(plan.root == "/run/momin/jail/vm-1")
        #expect(plan.uid == 61234 && plan.gid == 61235)
        #expect(plan.binds == [Bind(source: "/opt/momin/momin-vmm", destination: "/bin/momin-vmm", writable: false,
                                    spec: "/opt/momin/momin-vmm:/bin/momin-vmm"),
                               Bind(source: "/run/momin/vm-1", destination: "/run/momin/vm-1", writable: true,
                                    spec: "/run/momin/vm-1::rw")])
        #expect(plan.devices == ["/dev/kvm"])
        #expect(plan.network == .host)
        #expect(plan.limits == [ResourceLimit(.nofile, 1024), ResourceLimit(.fsize, 0), ResourceLimit(.nproc, 64), ResourceLimit(.core, 0)])
        #expect(plan.environment == ["LANG=C"])
        #expect(plan.program == "/bin/momin-vmm")
        #expect(plan.arguments == ["--kernel", "/vmlinuz"])
    }

    @Test func defaults() throws {
        let plan = try parse([])
        #expect(plan.network == .new)
        #expect(plan.binds.isEmpty && plan.devices.isEmpty && plan.limits.isEmpty && plan.environment.isEmpty)
    }

    @Test func aBindIsReadOnlyAtTheSamePathUnlessSaidOtherwise() throws {
        let plan = try parse(["--bind", "/usr/lib//x86_64-linux-gnu/./", "--bind", "/a:/b:rw"])
        #expect(plan.binds.map(\.source) == ["/usr/lib/x86_64-linux-gnu", "/a"])
        #expect(plan.binds.map(\.destination) == ["/usr/lib/x86_64-linux-gnu", "/b"])
        #expect(plan.binds.map(\.writable) == [false, true])
    }

    @Test func argumentsAfterTheProgramAreItsOwn() throws {
        let plan = try parse([], program: ["--", "/bin/busybox", "--uid", "0", "--"])
        #expect(plan.program == "/bin/busybox")
        #expect(plan.arguments == ["--uid", "0", "--"])
    }

    @Test func renderIsWhatParseReadsBack() throws {
        let plan = try parse(["--bind", "/a:/b:rw", "--bind", "/c", "--device", "/dev/kvm", "--rlimit", "nofile=9",
                              "--env", "K=V"])
        var back = try JailArguments.parse(JailArguments.render(plan))
        for i in back.binds.indices { back.binds[i].spec = plan.binds[i].spec }
        #expect(back == plan)
    }

    @Test func badBindSyntax() {
        #expect(refusal(["--bind", "/a:/b:rx"]) == "--bind /a:/b:rx: mode must be ro or rw, not 'rx'")
        #expect(refusal(["--bind", "/a:/b:ro:x"]) == "--bind /a:/b:ro:x: expected SRC[:DST[:ro|rw]]")
        #expect(refusal(["--bind", ""]) == "--bind : source is empty")
        #expect(refusal(["--bind", ":/b"]) == "--bind :/b: source is empty")
        #expect(refusal(["--bind"], program: []) == "--bind needs a value")
    }

    @Test func relativePaths() {
        #expect(refusal(["--bind", "lib:/lib"]) == "--bind lib:/lib: source lib: not an absolute path")
        #expect(refusal(["--bind", "/lib:lib"]) == "--bind /lib:lib: destination lib: not an absolute path")
        #expect(refusal(["--bind", "/lib:/x/../etc"]) == "--bind /lib:/x/../etc: destination /x/../etc: '..' is not allowed")
        #expect(refusal(["--device", "dev/kvm"]) == "--device dev/kvm: not an absolute path")
        #expect(refusal([], program: ["--", "momin-vmm"])
                == "program momin-vmm: not an absolute path (it runs inside the jail, without PATH)")
        do {
            _ = try JailArguments.parse(["--id", "a", "--root", "jail", "--uid", "1", "--gid", "1", "--", "/p"])
            Issue.record("a relative --root was accepted")
        } catch { #expect(error.description == "--root jail: not an absolute path") }
    }

    @Test func rootIDsAreRefused() {
        do {
            _ = try JailArguments.parse(["--id", "a", "--root", "/j", "--uid", "0", "--gid", "5", "--", "/p"])
            Issue.record("uid 0 was accepted")
        } catch { #expect(error.description == "--uid 0 is refused: the jailed program must not run as root") }
        do {
            _ = try JailArguments.parse(["--id", "a", "--root", "/j", "--uid", "5", "--gid", "0", "--", "/p"])
            Issue.record("gid 0 was accepted")
        } catch { #expect(error.description == "--gid 0 is refused: the jailed program must not run as root") }
    }

    @Test func badIDs() {
        for bad in ["-1", "4294967295", "abc", ""] {
            do {
                _ = try JailArguments.parse(["--id", "a", "--root", "/j", "--uid", bad, "--gid", "5", "--", "/p"])
                Issue.record("--uid \(bad) was accepted")
            } catch { #expect(error.description == "--uid \(bad) is not a number from 1 to 4294967294") }
        }
    }

    @Test func badNames() {
        let long = String(repeating: "a", count: 65)
        for bad in ["", "a b", "vm/1", long] {
            do {
                _ = try JailArguments.parse(["--id", bad, "--root", "/j", "--uid", "5", "--gid", "5", "--", "/p"])
                Issue.record("--id \(bad) was accepted")
            } catch { #expect(error.description == "--id \(bad) must be 1 to 64 letters, digits, '-' or '_'") }
        }
    }

    @Test func badLimits() {
        #expect(refusal(["--rlimit", "stack=1"]) == "--rlimit stack=1: unknown resource 'stack' (nofile, fsize, nproc, core)")
        #expect(refusal(["--rlimit", "nofile=many"]) == "--rlimit nofile=many: nofile value 'many' is not a number")
        #expect(refusal(["--rlimit", "nofile"]) == "--rlimit nofile: expected NAME=VALUE, not 'nofile'")
        #expect(refusal(["--rlimit", "nofile=1,nofile=2"]) == "--rlimit nofile=1,nofile=2: nofile is given twice")
        #expect(refusal(["--rlimit", "nproc=1", "--rlimit", "nproc=2"]) == "--rlimit nproc=2: nproc is given twice")
    }

    @Test func otherRefusals() {
        #expect(refusal(["--netns", "none"]) == "--netns none must be new or host")
        #expect(refusal(["--env", "=x"]) == "--env =x is not KEY=VALUE")
        #expect(refusal(["--env", "PATH"]) == "--env PATH is not KEY=VALUE")
        #expect(refusal(["--id", "b"]) == "--id is given twice")
        #expect(refusal(["--chroot", "/x"]) == "unknown option --chroot (usage: \(JailArguments.usage))")
        #expect(refusal([], program: []) == "no program to run: give its path inside the jail after --")
        #expect(refusal([], program: ["--"]) == "no program to run: give its path inside the jail after --")
        do {
            _ = try JailArguments.parse(["--id", "a", "--uid", "5", "--gid", "5", "--", "/p"])
            Issue.record("no --root was accepted")
        } catch { #expect(error.description == "--root is required") }
    }
}
