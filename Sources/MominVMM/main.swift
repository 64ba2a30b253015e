// momin-vmm: the process that holds one microVM. `momin` starts it (exec for `momin boot`, a
// child for `momin run`); its command line is the internal interface in VMMArguments. It links
// no Foundation and no argument parser, so what it costs beyond guest RAM stays small.
import Glibc
import MachineConfig
import VMM

ProcessClock.markStart()
if let status = SeccompSelfTest.runIfAsked(Array(CommandLine.arguments.dropFirst())) { exit(status) }
do {
    let arguments = try VMMArguments.parse(Array(CommandLine.arguments.dropFirst()))
    exit(VMMProcess.run(arguments))
} catch .helpRequested {
    FileDescriptorOutput(fd: 1).write(Array((VMMArguments.usage + "\n").utf8))
    exit(0)
} catch {
    FileDescriptorOutput(fd: 2).write(Array("momin-vmm: error: \(error)\n".utf8))
    exit(2)
}
