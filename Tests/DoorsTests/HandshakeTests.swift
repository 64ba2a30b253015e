import Testing
import Doors

@Suite struct HandshakeTests {
    @Test func theHighestCommonVersionWins() throws {
        let older = Hello(versions: [1, 2], maxPayload: 262_144)
        let newer = Hello(versions: [1, 2, 3], maxPayload: 262_144)
        #expect(try Session.negotiate(local: older, remote: newer).version == 2)
        #expect(try Session.negotiate(local: newer, remote: older).version == 2)
        #expect(try Session.negotiate(local: Hello(versions: [3, 1]), remote: Hello(versions: [1, 4])).version == 1)
    }

    @Test func theSmallerPayloadLimitWins() throws {
        let small = Hello(maxPayload: 65_536)
        let large = Hello(maxPayload: 262_144)
        #expect(try Session.negotiate(local: small, remote: large) == Session(version: 2, maxPayload: 65_536))
        #expect(try Session.negotiate(local: large, remote: small) == Session(version: 2, maxPayload: 65_536))
        // A future peer offering more still gets this build's ceiling.
        #expect(try Session.negotiate(local: Hello(maxPayload: .max), remote: Hello(maxPayload: .max)).maxPayload
            == DoorsProtocol.maxPayload)
    }

    @Test func noCommonVersionIsAClearError() {
        let error = DoorsError.noCommonVersion(local: [1], remote: [2, 3])
        #expect(throws: error) { try Session.negotiate(local: Hello(versions: [1]), remote: Hello(versions: [2, 3])) }
        #expect(error.isFatal)
        let reply = error.reply
        #expect(reply.requestID == 0)
        #expect(reply.message == .error(ErrorReply(
            code: .unsupportedVersion, message: "no common protocol version (local [1], remote [2, 3])")))
    }

    @Test func helloAlwaysTravelsAsHandshakeVersion() throws {
        let encoder = FrameEncoder(version: 9)
        let hello = try encoder.encode(Frame(requestID: 0, .hello(Hello(versions: [1, 9]))))
        #expect(hello[2] == DoorsProtocol.handshakeVersion)
        let ping = try encoder.encode(Frame(requestID: 1, .ping(nonce: 0)))
        #expect(ping[2] == 9)
    }

    /// Both ends of a connection, each sending Hello and applying the agreed session.
    @Test func aFullHandshakeBetweenTwoEnds() throws {
        let hostHello = Hello(maxPayload: 262_144, software: "momin")
        let guestHello = Hello(maxPayload: 131_072, software: "momin-init")
        var guestDecoder = FrameDecoder()
        var hostDecoder = FrameDecoder()
        guestDecoder.append(try encode(Frame(requestID: 0, .hello(hostHello))))
        hostDecoder.append(try encode(Frame(requestID: 0, .hello(guestHello))))
        guard case .hello(let seenByGuest) = try guestDecoder.next()?.message,
            case .hello(let seenByHost) = try hostDecoder.next()?.message
        else {
            Issue.record("no Hello")
            return
        }
        let guestSession = try Session.negotiate(local: guestHello, remote: seenByGuest)
        let hostSession = try Session.negotiate(local: hostHello, remote: seenByHost)
        #expect(guestSession == hostSession)
        #expect(hostSession == Session(version: 2, maxPayload: 131_072))
        guestDecoder.apply(guestSession)
        #expect(guestDecoder.maxPayload == 131_072)
        #expect(guestDecoder.acceptedVersions == [2])

        let hostEncoder = FrameEncoder(session: hostSession)
        #expect(throws: DoorsError.payloadTooLarge(length: 131_073, limit: 131_072)) {
            try hostEncoder.encode(Frame(requestID: 1, .fileData([UInt8](repeating: 0, count: 131_073))))
        }
        guestDecoder.append(try hostEncoder.encode(Frame(requestID: 1, .fileData([UInt8](repeating: 0, count: 131_072)))))
        #expect(try guestDecoder.next()?.type == .fileData)
    }

    @Test func aPinnedDecoderRefusesOtherVersions() {
        var decoder = FrameDecoder(acceptedVersions: [1, 2])
        decoder.apply(Session(version: 2, maxPayload: 65_536))
        decoder.append(rawFrame(type: FrameType.cancel.rawValue, version: 1))
        #expect(throws: DoorsError.unsupportedVersion(1)) { try decoder.next() }
    }

    /// Lowering the limit below what is already buffered must not trap; the next append overflows.
    @Test func applyingASmallerLimitWithBytesBuffered() throws {
        var decoder = FrameDecoder()
        let big = try encode(Frame(requestID: 1, .stdoutData([UInt8](repeating: 3, count: 100_000))))
        decoder.append(big.prefix(90_000))
        decoder.apply(Session(version: 2, maxPayload: 65_536))
        #expect(decoder.freeCapacity == 0)
        decoder.append(big[90_000...])
        #expect(throws: DoorsError.payloadTooLarge(length: 100_000, limit: 65_536)) { try decoder.next() }
    }
}
