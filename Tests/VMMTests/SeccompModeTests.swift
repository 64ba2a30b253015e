import MachineConfig
import Seccomp
import Testing
@testable import VMM

@Suite struct SeccompModeTests {
    @Test func modesMapToActions() {
        #expect(SeccompMode(rawValue: "kill")?.action == .killProcess)
        #expect(SeccompMode(rawValue: "trap")?.action == .trap)
        #expect(SeccompMode(rawValue: "log")?.action == .log)
        #expect(SeccompMode(rawValue: "off")?.action == nil)
        #expect(SeccompMode(rawValue: "KILL") == nil)
    }

    @Test func aMalformedProfileStopsValidationNamingTheClass() {
        var confinement = Confinement(mode: .kill)
        #expect(throws: Never.self) { try confinement.validate() }
        confinement.malformedForTesting = true
        do {
            try confinement.validate()
            Issue.record("a malformed profile validated")
        } catch {
            #expect(error.description == "seccomp: unknown syscall name \"momin_no_such_syscall\" (in the main thread profile)")
        }
        // Off builds nothing, so there is nothing to fail.
        #expect(throws: Never.self) { try Confinement(mode: .off).validate() }
    }
}
