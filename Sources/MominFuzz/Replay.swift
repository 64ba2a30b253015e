// Built with -DFUZZING (Scripts/fuzz), libFuzzer brings main. Built without, this is a replay
// driver: `momin-fuzz TARGET FILE...` runs each file through the target once, with no
// sanitizer, and prints one line per file (how a crash found by the fuzzer is looked at).
#if !FUZZING
import FuzzTargets
import Glibc
import POSIX

@main
struct Replay {
    static func main() {
        let arguments = CommandLine.arguments.dropFirst()
        if arguments.first == "--help" || arguments.first == "-h" || arguments.isEmpty {
            print("""
                usage: momin-fuzz TARGET FILE...
                       momin-fuzz --write-seeds DIR
                Runs each FILE through fuzz target TARGET once (no sanitizer): \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")).
                --write-seeds writes each target's seed inputs to DIR/TARGET/.
                Fuzzing itself is Scripts/fuzz [TARGET] [--seconds N].
                """)
            exit(arguments.isEmpty ? 2 : 0)
        }
        if arguments.first == "--write-seeds", arguments.count == 2 {
            // The committed corpus's first inputs, one directory per target.
            let root = arguments.last!
            for target in FuzzTarget.allCases {
                let directory = root + "/" + target.rawValue
                mkdir(directory, 0o755)
                for (index, seed) in Seeds.seeds(for: target).enumerated() {
                    let path = directory + "/seed-\(index)"
                    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
                    guard fd >= 0 else {
                        say("momin-fuzz: cannot write \(path)\n")
                        exit(1)
                    }
                    do { try FileIO.writeAll(fd, seed) } catch {
                        say("momin-fuzz: \(path): \(error)\n")
                        exit(1)
                    }
                    close(fd)
                }
            }
            exit(0)
        }
        guard let target = FuzzTarget(rawValue: arguments.first!) else {
            say("momin-fuzz: no fuzz target \(arguments.first!)\n")
            exit(2)
        }
        for path in arguments.dropFirst() {
            let bytes: [UInt8]
            do { bytes = try FileIO.readFile(path, limit: 16 << 20) } catch {
                say("momin-fuzz: \(path): \(error)\n")
                exit(2)
            }
            target.run(bytes)
            print("\(path): ok")
        }
    }
}
#endif
