import Doors
import Foundation
import Glibc
import GuestClient
@testable import GuestClientTestSupport
import POSIX
import Testing

/// Standard input for exec: streamed while output comes back, from bytes or a host descriptor.
@Suite struct ExecInputTests {
    /// Reads the Exec request, then stdin frames up to StdinEnd; returns the request and stdin.
    static func readRequestAndStdin(_ peer: Peer) throws -> (Frame, [UInt8]) {
        let request = try peer.receive()
        guard case .exec(let exec) = request.message, exec.sendsStdin else {
            throw FakeError("expected Exec with sendsStdin, got \(request)")
        }
        var stdin: [UInt8] = []
        while true {
            let frame = try peer.receive()
            if case .stdinData(let bytes) = frame.message { stdin += bytes; continue }
            if case .stdinEnd = frame.message { return (request, stdin) }
            throw FakeError("expected stdin, got \(frame)")
        }
    }

    /// The guest's program writes 4 MiB before it reads any of its 4 MiB of input (`sort`
    /// does the opposite, `cat` interleaves). A client that sent all input before reading any
    /// output would wedge with the guest: both sides' buffers full, each waiting for the other.
    @Test func lotsOfOutputBeforeTheInputIsReadDoesNotWedge() throws {
        let stdin = pattern(4 << 20, seed: 5)
        let stdout = pattern(4 << 20, seed: 6)
        let (client, guest) = try connect { peer in
            let request = try peer.receive()
            guard case .exec = request.message else { throw FakeError("expected Exec, got \(request)") }
            var frames = [Frame(requestID: request.requestID, .started(pid: 3))]
            for start in stride(from: 0, to: stdout.count, by: 65_536) {
                frames.append(Frame(requestID: request.requestID, .stdoutData(Array(stdout[start..<min(start + 65_536, stdout.count)]))))
            }
            try peer.write(peer.bytes(frames))  // blocks until the client reads
            var got: [UInt8] = []
            while true {
                let frame = try peer.receive()
                if case .stdinData(let bytes) = frame.message { got += bytes; continue }
                guard case .stdinEnd = frame.message else { throw FakeError("expected stdin, got \(frame)") }
                break
            }
            try peer.send(Frame(requestID: request.requestID, .exit(ExitReport(status: .exited(code: 0)))))
            return got
        }
        var output: [UInt8] = []
        let report = try client.exec(ExecRequest(argv: ["tac"]), input: .bytes(stdin)) { if $0 { output += $1 } }
        let got = try guest.join()
        #expect(report == ExitReport(status: .exited(code: 0)))
        expectSameBytes(output, stdout, "stdout")
        expectSameBytes(got, stdin, "stdin the guest got")
    }

    /// Input from a pipe arrives as the writer produces it, then StdinEnd at the writer's EOF.
    @Test func inputFromADescriptorIsStreamedToItsEnd() throws {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        let (readEnd, writeEnd) = (fds[0], fds[1])
        defer { close(readEnd) }
        let stdin = pattern(3 << 20, seed: 8)
        let writer = Thread {
            var offset = 0
            while offset < stdin.count {
                let end = min(offset + 10_000, stdin.count)  // odd sizes: frames need not match writes
                guard (try? FileIO.writeAll(writeEnd, stdin[offset..<end])) != nil else { break }
                offset = end
            }
            close(writeEnd)
        }
        let (client, guest) = try connect { peer in
            let (request, got) = try Self.readRequestAndStdin(peer)
            try peer.send(
                Frame(requestID: request.requestID, .started(pid: 4)),
                Frame(requestID: request.requestID, .exit(ExitReport(status: .exited(code: 3)))))
            return got
        }
        writer.start()
        let report = try client.exec(ExecRequest(argv: ["wc", "-c"]), input: .descriptor(readEnd)) { _, _ in }
        let got = try guest.join()
        #expect(report == ExitReport(status: .exited(code: 3)))
        expectSameBytes(got, stdin, "stdin the guest got")
    }

    /// A program that exits without reading its input: the exec returns at once, without
    /// waiting for an input that never ends.
    /// The input never ends: a client that waited for it would run into the time limit.
    @Test(.timeLimit(.minutes(1))) func anExitBeforeTheInputEndsReturnsAtOnce() throws {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }  // the write end stays open: no EOF ever
        try FileIO.writeAll(fds[1], Array("partial".utf8))
        let (client, guest) = try connect { peer in
            let request = try peer.receive()
            try peer.send(
                Frame(requestID: request.requestID, .started(pid: 5)),
                Frame(requestID: request.requestID, .exit(ExitReport(status: .exited(code: 0)))))
        }
        let report = try client.exec(ExecRequest(argv: ["true"]), input: .descriptor(fds[0])) { _, _ in }
        try guest.join()
        #expect(report == ExitReport(status: .exited(code: 0)))
    }

    @Test func noInputSendsNoStdin() throws {
        let (client, guest) = try connect { peer in
            let request = try peer.receive()
            guard case .exec(let exec) = request.message else { throw FakeError("expected Exec, got \(request)") }
            try peer.send(Frame(requestID: request.requestID, .exit(ExitReport(status: .exited(code: 0)))))
            return exec.sendsStdin
        }
        _ = try client.exec(ExecRequest(argv: ["true"]), input: .none) { _, _ in }
        #expect(try guest.join() == false)
    }
}
