import FuzzTargets
import Glibc

/// The target this process fuzzes, from MOMIN_FUZZ_TARGET (Scripts/fuzz sets it).
nonisolated(unsafe) var selected: FuzzTarget?

/// libFuzzer's entry point: one input through the selected target.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let target = selected ?? chooseTarget() else { return 0 }
    target.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

func chooseTarget() -> FuzzTarget? {
    let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
    guard let name = getenv("MOMIN_FUZZ_TARGET").map({ String(cString: $0) }) else {
        say("momin-fuzz: set MOMIN_FUZZ_TARGET to one of: \(names)\n")
        exit(2)
    }
    guard let target = FuzzTarget(rawValue: name) else {
        say("momin-fuzz: no fuzz target \(name); there are: \(names)\n")
        exit(2)
    }
    selected = target
    return target
}

/// One line on stderr.
func say(_ line: String) {
    var text = line
    text.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}
