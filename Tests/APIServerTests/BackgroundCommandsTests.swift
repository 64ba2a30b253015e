@testable import APIServer
import Testing

/// What a background command's output and a sandbox's commands may hold of the server's memory.
@Suite struct BackgroundCommandsTests {
    @Test func aStreamKeepsItsNewestBytesAndCountsTheRest() {
        var window = BackgroundCommands.Window()
        var all: [UInt8] = []
        for index in 0..<50 {
            let chunk = [UInt8](repeating: UInt8(index), count: 7 << 10)
            window.append(chunk)
            all += chunk
            #expect(window.kept.count <= BackgroundCommands.windowBytes)
        }
        // Compared as a Bool: a failure should not print two 256 KiB arrays.
        #expect(window.kept.count == BackgroundCommands.windowBytes)
        #expect(window.kept.elementsEqual(all.suffix(BackgroundCommands.windowBytes)))
        #expect(window.dropped == UInt64(all.count - BackgroundCommands.windowBytes))
        let big = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        window.append(big)
        all += big
        #expect(window.kept.count == BackgroundCommands.windowBytes)
        #expect(window.kept.elementsEqual(all.suffix(BackgroundCommands.windowBytes)))
        #expect(window.dropped == UInt64(all.count - BackgroundCommands.windowBytes))
    }

    @Test func aSandboxKeepsAtMostItsShareOfCommandsAndNeverDropsARunningOne() throws {
        let table = BackgroundCommands()
        let commands = (0..<BackgroundCommands.perSandbox).map { BackgroundCommands.Command(id: "cmd-\($0)", argv: ["sleep"]) }
        for command in commands { try table.add(command, to: "box") }
        let extra = BackgroundCommands.Command(id: "cmd-extra", argv: ["true"])
        #expect(throws: Problem(status: 409, title: "conflict",
                                detail: "\(BackgroundCommands.perSandbox) background commands are running in box; wait for one to end or kill one")) {
            try table.add(extra, to: "box")
        }
        commands[3].finish(CommandEvent(type: "exit"))
        try table.add(extra, to: "box")
        #expect(table.all(in: "box").map(\.id) == commands.map(\.id).filter { $0 != "cmd-3" } + ["cmd-extra"])
        #expect(table.command("cmd-3", in: "box") == nil && table.command("cmd-extra", in: "other") == nil)
        table.forget("box")
        #expect(table.all(in: "box").isEmpty)
    }
}
