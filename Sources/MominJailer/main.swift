// momin-jailer: builds one jail (namespaces, a pivot_root'ed tmpfs holding only what was bound,
// an unprivileged uid, no capabilities, no_new_privs) and execs a program inside it; see
// docs/jailer.md. Like momin-vmm it links no Foundation and no argument parser.
import Glibc
import Jail

let plan: JailPlan
do {
    plan = try JailArguments.parse(Array(CommandLine.arguments.dropFirst()))
    try plan.validate(against: HostPaths())
} catch JailArguments.ParseError.helpRequested {
    print(JailArguments.ParseError.helpRequested)
    exit(0)
} catch {
    Jailer.die("\(error)")
}
Jailer.run(plan)
