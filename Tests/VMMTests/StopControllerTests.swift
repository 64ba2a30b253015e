import Foundation
import Testing
@testable import VMM

@Suite struct StopControllerTests {
    @Test func waitTimesOutWithNothing() {
        let controller = StopController()
        let start = Date()
        #expect(controller.wait(seconds: 0.05) == nil)
        #expect(Date().timeIntervalSince(start) >= 0.04)
        #expect(!controller.isStopped)
    }

    @Test func firstFinishWins() {
        let controller = StopController()
        controller.finish(.stopped(vcpu: 1, .tripleFault))
        controller.finish(.poweredOff)
        #expect(controller.isStopped)
        #expect(controller.wait(seconds: 0) == .stopped(vcpu: 1, .tripleFault))
        #expect(controller.wait(seconds: nil) == .stopped(vcpu: 1, .tripleFault))
    }

    @Test(arguments: [5.0, nil])
    func waitWakesWhenAnotherThreadFinishes(seconds: Double?) {
        let controller = StopController()
        Thread {
            usleep(20_000)
            controller.finish(.reset)
        }.start()
        #expect(controller.wait(seconds: seconds) == .reset)
    }

    @Test func onlyPowerOffAndResetAreClean() {
        #expect(MachineExit.poweredOff.isClean && MachineExit.reset.isClean)
        #expect(!MachineExit.stopped(vcpu: 0, .halted).isClean)
        #expect(!MachineExit.timedOut(seconds: 1).isClean)
        #expect(!MachineExit.vcpuFailed(vcpu: 0, "EFAULT").isClean)
        let failed = MachineExit.deviceFailed(device: "virtio-vsock at 0xd0001000", reason: "queue 0: bad head")
        #expect(!failed.isClean)
        #expect(failed.description == "virtio-vsock at 0xd0001000 failed and needs a reset the guest cannot do: queue 0: bad head")
    }
}
