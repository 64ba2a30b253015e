import CSeccomp
import Glibc

/// One allowed syscall, optionally only when its arguments pass every condition.
public struct SyscallRule: Equatable, Sendable {
    public let syscall: String
    /// All must hold. An empty list applies the rule whatever the arguments.
    public let conditions: [ArgumentCondition]
    /// Why the thread class needs it (one line; docs/seccomp.md lists them).
    public let reason: String
    /// nil: the call runs. An errno: the call does not run and fails with it (SECCOMP_RET_ERRNO),
    /// for what a library only probes and copes without.
    public let failsWith: Int32?

    public init(_ syscall: String, _ conditions: ArgumentCondition..., reason: String) {
        self.init(syscall, conditions: conditions, reason: reason)
    }

    public init(_ syscall: String, conditions: [ArgumentCondition], reason: String) {
        self.syscall = syscall
        self.conditions = conditions
        self.reason = reason
        failsWith = nil
    }

    /// The call never runs; the thread sees it fail with `errno` and goes on.
    public init(_ syscall: String, failingWith errno: Int32, reason: String) {
        self.syscall = syscall
        conditions = []
        self.reason = reason
        failsWith = errno
    }

    /// Whether the syscall really runs under this rule.
    public var allows: Bool { failsWith == nil }
}

/// A test on one syscall argument (0 to 5, as the kernel passes them: ioctl's request is
/// argument 1, socket's domain argument 0).
public struct ArgumentCondition: Equatable, Sendable {
    public enum Test: Equatable, Sendable {
        /// Equal to any of the values.
        case oneOf([UInt64])
        /// `argument & mask == value`.
        case maskedEqual(mask: UInt64, value: UInt64)
    }

    public let index: Int
    public let test: Test

    public static func argument(_ index: Int, equals value: UInt64) -> ArgumentCondition {
        ArgumentCondition(index: index, test: .oneOf([value]))
    }

    public static func argument(_ index: Int, oneOf values: [UInt64]) -> ArgumentCondition {
        ArgumentCondition(index: index, test: .oneOf(values))
    }

    public static func argument(_ index: Int, masked mask: UInt64, equals value: UInt64) -> ArgumentCondition {
        ArgumentCondition(index: index, test: .maskedEqual(mask: mask, value: value))
    }
}

/// An allowlist of syscalls for one thread: whatever no rule allows gets `defaultAction`.
///
/// Filters are per thread and they stack: `install()` confines the calling thread only (no
/// TSYNC), and a thread created afterwards inherits its creator's filters. So every thread
/// installs its own filter first thing, before it runs guest code or reads guest data, and the
/// thread that creates the others installs its own last (docs/seccomp.md).
public struct SyscallFilter: Equatable, Sendable {
    public enum Action: Equatable, Sendable {
        /// SECCOMP_RET_KILL_PROCESS: the whole process dies of SIGSYS (status 159 in a shell).
        case killProcess
        /// SECCOMP_RET_TRAP: the thread gets SIGSYS (see `SeccompTrap`), to find missing syscalls.
        case trap
        /// SECCOMP_RET_LOG: allowed, but the kernel logs it (audit or dmesg).
        case log
    }

    public var defaultAction: Action
    public var rules: [SyscallRule]

    public init(defaultAction: Action, rules: [SyscallRule]) {
        self.defaultAction = defaultAction
        self.rules = rules
    }

    /// Checks every rule and builds libseccomp's filter; nothing is installed yet.
    public func compile() throws(SeccompError) -> CompiledSyscallFilter {
        try CompiledSyscallFilter(self)
    }

    /// Compiles and installs on the calling thread.
    public func install() throws(SeccompError) { try compile().install() }

    /// The syscall number for `name` on this architecture.
    public static func resolve(_ name: String) throws(SeccompError) -> Int32 {
        let number = seccomp_syscall_resolve_name(name)
        if number == __NR_SCMP_ERROR { throw .unknownSyscall(name) }
        // libseccomp gives negative pseudo-numbers to syscalls this architecture lacks.
        if number < 0 { throw .notOnThisArchitecture(name) }
        return number
    }

    /// One comparison libseccomp makes: `argument & mask == value` (a plain equality has an
    /// all-ones mask).
    public struct Comparison: Equatable, Sendable {
        public let argument: Int
        public let mask: UInt64
        public let value: UInt64
    }

    /// The comparisons of `rule`, one list per libseccomp rule: a `oneOf` set becomes one rule
    /// per value (rules for one syscall are alternatives; comparisons in one list all must hold).
    /// Pure, so it is tested alone.
    public static func expand(_ rule: SyscallRule) throws(SeccompError) -> [[Comparison]] {
        var seen = Set<Int>()
        var lists: [[Comparison]] = [[]]
        for condition in rule.conditions {
            guard (0...5).contains(condition.index) else { throw .argumentIndex(syscall: rule.syscall, index: condition.index) }
            guard seen.insert(condition.index).inserted else {
                throw .repeatedArgument(syscall: rule.syscall, argument: condition.index)
            }
            let comparisons: [Comparison]
            switch condition.test {
            case .oneOf(let values):
                guard !values.isEmpty else { throw .emptyValueSet(syscall: rule.syscall, argument: condition.index) }
                comparisons = values.map { Comparison(argument: condition.index, mask: .max, value: $0) }
            case .maskedEqual(let mask, let value):
                comparisons = [Comparison(argument: condition.index, mask: mask, value: value)]
            }
            lists = lists.flatMap { list in comparisons.map { list + [$0] } }
        }
        return lists
    }
}

/// A filter built by libseccomp and ready to install; owns the libseccomp context. Build it on
/// any thread, install it on the one thread it is for (at most once).
public final class CompiledSyscallFilter: @unchecked Sendable {
    private let context: scmp_filter_ctx
    public let ruleCount: Int

    init(_ filter: SyscallFilter) throws(SeccompError) {
        let action: UInt32 = switch filter.defaultAction {
        case .killProcess: SCMP_ACT_KILL_PROCESS
        case .trap: SCMP_ACT_TRAP
        case .log: SCMP_ACT_LOG
        }
        // Resolve and check everything before asking libseccomp for anything.
        var resolved: [(number: Int32, rule: SyscallRule, lists: [[SyscallFilter.Comparison]])] = []
        for rule in filter.rules {
            resolved.append((try SyscallFilter.resolve(rule.syscall), rule, try SyscallFilter.expand(rule)))
        }
        guard let context = seccomp_init(action) else { throw .libseccomp(step: "seccomp_init", errno: ENOMEM) }
        do {
            // A syscall from another ABI (x32, i386) is treated like one not on the list.
            try Self.check("seccomp_attr_set(SCMP_FLTATR_ACT_BADARCH)", seccomp_attr_set(context, SCMP_FLTATR_ACT_BADARCH, action))
            // seccomp(2) needs no_new_privs (or CAP_SYS_ADMIN): seccomp_load sets it on the
            // calling thread just before loading; threads made later inherit it; it never clears.
            try Self.check("seccomp_attr_set(SCMP_FLTATR_CTL_NNP)", seccomp_attr_set(context, SCMP_FLTATR_CTL_NNP, 1))
            // The calling thread only: each thread class gets its own filter.
            try Self.check("seccomp_attr_set(SCMP_FLTATR_CTL_TSYNC)", seccomp_attr_set(context, SCMP_FLTATR_CTL_TSYNC, 0))
            var count = 0
            for (number, rule, lists) in resolved {
                for list in lists {
                    let comparisons = list.map {
                        $0.mask == .max
                            ? scmp_arg_cmp(arg: UInt32($0.argument), op: SCMP_CMP_EQ, datum_a: $0.value, datum_b: 0)
                            : scmp_arg_cmp(arg: UInt32($0.argument), op: SCMP_CMP_MASKED_EQ, datum_a: $0.mask, datum_b: $0.value)
                    }
                    // SCMP_ACT_ERRNO(e) in <seccomp.h>: SECCOMP_RET_ERRNO | e, a macro Swift cannot import.
                    let ruleAction = rule.failsWith.map { 0x0005_0000 | (UInt32($0) & 0xffff) } ?? SCMP_ACT_ALLOW
                    let rc = comparisons.withUnsafeBufferPointer {
                        seccomp_rule_add_array(context, ruleAction, number, UInt32($0.count), $0.baseAddress)
                    }
                    try Self.check("seccomp_rule_add_array(\(rule.syscall))", rc)
                    count += 1
                }
            }
            ruleCount = count
        } catch {
            seccomp_release(context)
            throw error
        }
        self.context = context
    }

    deinit { seccomp_release(context) }

    /// Confines the calling thread (and threads it creates afterwards). Irreversible.
    public func install() throws(SeccompError) {
        try Self.check("seccomp_load", seccomp_load(context))
    }

    /// libseccomp returns 0 or a negated errno.
    private static func check(_ step: String, _ rc: Int32) throws(SeccompError) {
        if rc < 0 { throw .libseccomp(step: step, errno: -rc) }
    }
}
