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

#if FUZZING
/// libFuzzer's driver (FuzzerDriver.cpp), called from our own entry point: SwiftPM links an
/// executable's `main` to MODULE_main, so libFuzzer's own `main` is not the one that runs.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("MominFuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { data, size in fuzzOneInput(data, size) }
}
#endif
