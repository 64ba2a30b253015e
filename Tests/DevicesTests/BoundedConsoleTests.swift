import Devices
import Synchronization
import Testing

/// The console's bounds with a clock the test moves: bursts pass, a flood is dropped with one
/// marker when output resumes, and nothing passes the size bound.
@Suite struct BoundedConsoleTests {
    /// Monotonic nanoseconds that only the test advances.
    final class TestClock: Sendable {
        let now = Atomic<UInt64>(1_000_000_000)
        func advance(seconds: Double) { now.add(UInt64(seconds * 1e9), ordering: .relaxed) }
    }

    func text(_ output: CollectedOutput) -> String { String(decoding: output.bytes, as: UTF8.self) }

    @Test func aBurstPassesAndAFloodIsDroppedWithOneMarkerWhenOutputResumes() {
        let output = CollectedOutput(), clock = TestClock()
        let console = BoundedConsole(output, limits: .init(totalBytes: 1 << 20, bytesPerSecond: 1000, burstBytes: 4000),
                                     clock: { clock.now.load(ordering: .relaxed) })
        // A guest writing a byte at a time, as the 8250's THR takes them: 10,000 at once.
        for _ in 0..<10_000 { console.write([UInt8(ascii: "x")]) }
        #expect(output.bytes.count == 4000)
        #expect(console.droppedBytes == 6000)
        // Half a second earns 500 bytes: under a quarter of the burst, so still dropping.
        clock.advance(seconds: 0.5)
        console.write(Array("early\n".utf8))
        #expect(output.bytes.count == 4000 && console.droppedBytes == 6006)
        // Another second: output resumes, after one line saying what was lost.
        clock.advance(seconds: 1)
        console.write(Array("late\n".utf8))
        #expect(text(output).hasSuffix("x\n[momin-vmm: 6006 console bytes dropped: over 1000 bytes/s]\nlate\n"))
        #expect(text(output).split(separator: "[momin-vmm:").count == 2)
    }

    @Test func nothingPassesTheSizeBoundAndItsEndIsMarked() {
        let output = CollectedOutput(), clock = TestClock()
        let console = BoundedConsole(output, limits: .init(totalBytes: 200, bytesPerSecond: 1 << 30, burstBytes: 1 << 30),
                                     clock: { clock.now.load(ordering: .relaxed) })
        for _ in 0..<50 { console.write(Array("0123456789".utf8)) }
        clock.advance(seconds: 60)
        console.write(Array("after".utf8))
        #expect(output.bytes.count == 200)
        #expect(text(output).hasSuffix("\n[momin-vmm: console output stops here: 200 bytes written]\n"))
        #expect(!text(output).contains("after"))
        #expect(console.droppedBytes + output.bytes.count - 59 == 505)
    }

    @Test func theStandardBoundsHoldAWholeBootLogInOneBurst() {
        let output = CollectedOutput()
        let console = BoundedConsole(output, clock: { 5 })
        let line = Array("[    0.000000] Linux version 6.1.0 (debian-kernel@lists.debian.org) ...\n".utf8)
        for _ in 0..<(256 << 10) / line.count { console.write(line) }
        #expect(console.droppedBytes == 0)
        #expect(BoundedConsole.Limits.standard.totalBytes == 64 << 20)
    }
}
