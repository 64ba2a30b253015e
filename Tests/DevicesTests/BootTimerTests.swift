import Dispatch
import Testing
import Devices

@Suite struct BootTimerTests {
    @Test func magicWriteReportsBootOnce() {
        let reports = Recorder<Void>()
        let timer = BootTimer(onBootComplete: { reports.record(()) })
        writeByte(timer, 0, 123)
        writeByte(timer, 0, 123)
        #expect(reports.values.count == 1)
        #expect(BootTimer.port == 0x440)
    }

    @Test func wrongValueOrOffsetIsIgnored() {
        let reports = Recorder<Void>()
        let timer = BootTimer(onBootComplete: { reports.record(()) })
        writeByte(timer, 0, 122)
        writeByte(timer, 1, 123)
        timer.write(offset: 0, data: [])
        #expect(reports.values.isEmpty)
        writeByte(timer, 0, 123)  // the ignored writes did not use up the one report
        #expect(reports.values.count == 1)
        #expect(readByte(timer, 0) == 0)
    }

    @Test func racingVCPUsReportOnce() {
        let reports = Recorder<Void>()
        let timer = BootTimer(onBootComplete: { reports.record(()) })
        DispatchQueue.concurrentPerform(iterations: 16) { _ in writeByte(timer, 0, 123) }
        #expect(reports.values.count == 1)
    }
}
