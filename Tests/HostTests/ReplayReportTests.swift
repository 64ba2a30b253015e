import Gateway
import Host
import Merkle
import Testing

/// What `momin replay` reports: identical calls counted, the first differing one explained, and
/// for a model call whose request changed, the byte where it parted from the recording.
@Suite struct ReplayReportTests {
    static let a = MerkleHash(hex: String(repeating: "aa", count: 32))!
    static let b = MerkleHash(hex: String(repeating: "bb", count: 32))!

    static func brain(_ body: String, exchange: CallObservation.Exchange? = .init(request: a, response: b)) -> CallObservation {
        CallObservation(tool: "brain", arguments: Array("model=m\nbody=\(body)\n".utf8), allowed: true, rule: "brain", status: 200, byteCount: 10,
                        digest: b, exchange: exchange)
    }

    static let exec = CallObservation(arguments: [1], allowed: true, rule: "no-policy", status: 0, byteCount: 3, digest: a)

    @Test func identicalCallsMakeAHundredPercent() {
        let calls = [Self.brain("x"), Self.exec]
        let report = ReplayReport(recorded: calls, replayed: calls, recordedRequest: { _ in nil }, divergedRequest: { _ in nil })
        #expect(report.identical)
        #expect(report.lines == ["call 1: identical (brain)", "call 2: identical (exec)", "replay: 2 of 2 calls identical (100.0%)"])
    }

    @Test func aDivergedModelRequestIsShownFromTheByteWhereItParted() throws {
        let recorded = [Self.brain("x"), Self.brain("y"), Self.exec]
        let replayed = [Self.brain("x"), Self.brain("z", exchange: nil), Self.exec]
        let sent = Array(#"{"messages":[{"role":"tool","content":"exit 0"}]}"#.utf8)
        let now = Array(#"{"messages":[{"role":"tool","content":"exit 1"}]}"#.utf8)
        let report = ReplayReport(recorded: recorded, replayed: replayed, recordedRequest: { $0 == Self.a ? sent : nil },
                                  divergedRequest: { $0 == "brain" ? now : nil })
        #expect(!report.identical)
        try #require(report.lines.count == 6)
        #expect(report.lines[1].hasPrefix("call 2: differs (brain): recorded status 200, 10 bytes"))
        #expect(report.lines[2] == #"  the request differs: from byte 13 (of 15 recorded, 15 now): recorded "y\n", now "z\n""#)
        #expect(report.lines[3] == #"  the brain request as sent out differs: from byte 44 (of 49 recorded, 49 now): recorded "0\"}]}", now "1\"}]}""#)
        #expect(report.lines[4] == "call 3: identical (exec)")
        #expect(report.lines[5] == "replay: 2 of 3 calls identical (66.7%)")
    }

    @Test func callsMissingOrExtraInTheReplayAreNamed() {
        let fewer = ReplayReport(recorded: [Self.exec, Self.brain("x")], replayed: [Self.exec], recordedRequest: { _ in nil },
                                 divergedRequest: { _ in nil })
        #expect(!fewer.identical && fewer.lines[1].hasPrefix("call 2: not made in the replay: recorded brain, status 200"))
        let more = ReplayReport(recorded: [Self.exec], replayed: [Self.exec, Self.brain("x")], recordedRequest: { _ in nil },
                                divergedRequest: { _ in nil })
        #expect(!more.identical && more.lines[1].hasPrefix("call 2: made only in the replay: brain"))
        #expect(more.lines.last == "replay: 1 of 1 calls identical (100.0%)")
    }
}

/// The bucket store's clock across a recording and its replay.
@Suite struct RecordedClockTests {
    @Test func aReplayTellsTheRecordedTimesInOrderThenTheWallClock() {
        let recording = RecordedClock.recording()
        let told = [recording.now(), recording.now()]
        #expect(recording.told == told)
        let replaying = RecordedClock.replaying([7, 5])
        #expect(replaying.now() == 7 && replaying.now() == 5)
        #expect(replaying.now() > told[1])  // past the recording: the wall clock
        #expect(replaying.told == [7, 5])
    }
}
