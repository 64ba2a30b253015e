import Agents
import Audit
import Crypto
import Glibc
import MachineConfig
import Merkle
import Policy
import POSIX

/// One `--disk PATH[:ro|:rw][,name=N][,bps=N][,iops=N]`: a host file to attach to a VM as a virtio-blk disk
/// (docs/disks.md). Read-only unless `:rw`; a named disk gets the name as its serial, by which
/// the guest finds it (and momin-init mounts it: /evidence/N read-only, /disks/N read-write).
public struct DiskRequest: Equatable, Sendable {
    public var path: String
    public var writable: Bool
    public var name: String?
    /// The root image (`--image`): read-only, serial `rootSerial`, made `/` under a writable
    /// layer by momin-init rather than mounted under /evidence.
    public var isRoot = false
    /// Rate limits the device enforces (token buckets with one second's burst): bytes read and
    /// written per second, requests per second.
    public var bytesPerSecond: UInt64?
    public var operationsPerSecond: UInt64?

    public init(path: String, writable: Bool = false, name: String? = nil) {
        self.path = path
        self.writable = writable
        self.name = name
    }

    /// A VM's scratch disk (`momin start --scratch`): read-write, serial `scratchSerial`,
    /// mounted at /scratch by momin-init; it outlives the VM (docs/disks.md, "Scratch").
    public var isScratch = false

    /// The root image's serial, which no `--disk` may take.
    public static let rootSerial = "momin-root"
    /// The scratch disk's serial, which no `--disk` may take either.
    public static let scratchSerial = "momin-scratch"

    /// `--image PATH`: the root image, always read-only (docs/disks.md, "Root images").
    public static func rootImage(_ path: String) -> DiskRequest {
        var request = DiskRequest(path: path, name: rootSerial)
        request.isRoot = true
        return request
    }

    /// The scratch disk kept at `path` for a named VM.
    public static func scratch(_ path: String) -> DiskRequest {
        var request = DiskRequest(path: path, writable: true, name: scratchSerial)
        request.isScratch = true
        return request
    }

    /// tmpfs `size=` for the writable layer over a root image: digits with k, m, g or %, what
    /// momin-init takes (`momin.overlay`).
    public static func checkOverlaySize(_ text: String) throws(HostError) {
        var digits = Substring(text)
        if let last = digits.last, "kmgKMG%".contains(last) { digits = digits.dropLast() }
        guard !digits.isEmpty, digits.count <= 12, digits.allSatisfy({ $0.isASCII && $0.isNumber }), Int(digits)! > 0 else {
            throw .badInput("--overlay \(text): expected a size such as 256m, 1g or 50% (of the VM's memory)")
        }
    }

    /// The most disks one VM may have.
    public static let maximumCount = 8

    /// Reads the option's value from its end: `,KEY=VALUE` parts (`name`, `bps`, `iops`, each
    /// once), then `:ro` or `:rw`; what is left is the path, which may hold `:` and `,` itself.
    public static func parse(_ text: String) throws(HostError) -> DiskRequest {
        var rest = Substring(text)
        var name: String?
        var bytesPerSecond: UInt64?, operationsPerSecond: UInt64?
        while let comma = rest.lastIndex(of: ",") {
            let part = rest[rest.index(after: comma)...]
            guard let equals = part.firstIndex(of: "="), ["name", "bps", "iops"].contains(part[..<equals]) else { break }
            let key = String(part[..<equals]), value = String(part[part.index(after: equals)...])
            func once<T>(_ current: T?) throws(HostError) {
                if current != nil { throw .badInput("--disk \(text): \(key)= is given twice") }
            }
            switch key {
            case "name":
                try once(name)
                guard isValidName(value) else {
                    throw .badInput("--disk \(text): name '\(value)' is not 1 to 20 of A-Z a-z 0-9 . _ -, starting with a letter or digit")
                }
                guard value != rootSerial else { throw .badInput("--disk \(text): the name \(rootSerial) is the root image's (--image)") }
                guard value != scratchSerial else { throw .badInput("--disk \(text): the name \(scratchSerial) is the scratch disk's (--scratch)") }
                name = value
            default:
                try once(key == "bps" ? bytesPerSecond : operationsPerSecond)
                guard let n = UInt64(value), n > 0, value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                    throw .badInput("--disk \(text): \(key)=\(value) is not a whole number of at least 1")
                }
                if key == "bps" { bytesPerSecond = n } else { operationsPerSecond = n }
            }
            rest = rest[..<comma]
        }
        var writable = false
        if rest.hasSuffix(":rw") || rest.hasSuffix(":ro") {
            writable = rest.hasSuffix(":rw")
            rest = rest.dropLast(3)
        }
        guard !rest.isEmpty else { throw .badInput("--disk \(text): no path (expected PATH[:ro|:rw][,name=N])") }
        var request = DiskRequest(path: String(rest), writable: writable, name: name)
        request.bytesPerSecond = bytesPerSecond
        request.operationsPerSecond = operationsPerSecond
        return request
    }

    /// A rate asked for, held to a cap: the smaller of the two, or whichever there is.
    static func capped(_ asked: UInt64?, by cap: UInt64?) -> UInt64? {
        guard let cap else { return asked }
        return min(asked ?? cap, cap)
    }

    /// A serial holds 20 bytes (virtio 1.2 §5.2.6, GET_ID); the guest mounts by it.
    public static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        func alphanumeric(_ b: UInt8) -> Bool { (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) }
        guard (1...20).contains(bytes.count), alphanumeric(bytes[0]) else { return false }
        return bytes.allSatisfy { alphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    /// Checks a VM's disks together: at most `maximumCount`, names unique.
    public static func checkSet(_ disks: [DiskRequest]) throws(HostError) {
        guard disks.count <= maximumCount else { throw .badInput("\(disks.count) disks: a VM may have at most \(maximumCount)") }
        var seen: Set<String> = []
        for name in disks.compactMap(\.name) where !seen.insert(name).inserted {
            throw .badInput("--disk: name \(name) is given to two disks")
        }
    }

    /// The kernel command line word that has momin-init mount it (named disks only; the root
    /// image has its own, `momin.root`).
    public var mountWord: String? {
        if isRoot { return name.map { "momin.root=\($0)" } }
        if isScratch { return name.map { "momin.disk=\($0):scratch" } }
        return name.map { "momin.disk=\($0):\(writable ? "rw" : "ro")" }
    }
}

/// The host's own file system as the policy's resolver: realpath(3). Disks exist before they
/// are attached, so a path that does not resolve is refused.
public struct HostPaths: PathResolver, Sendable {
    public init() {}

    public func canonicalPath(_ path: String, followFinalSymlink: Bool) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

/// A disk file opened for a VM: the descriptor momin-vmm gets (it opens nothing itself), what
/// the file was at attach, and a lock that keeps a read-write disk to one VM at a time.
public final class AttachedDisk: @unchecked Sendable {
    public let request: DiskRequest
    /// The file, every symlink resolved: what the policy judged and what was opened.
    public let path: String
    public private(set) var fd: Int32
    public let size: UInt64
    public let identity: String
    /// The SHA-256 of the bytes at attach; nil above `digestLimit`.
    public let attachDigest: MerkleHash?

    /// Disks up to this size are read whole at attach for their digest (about 1 s per 500 MiB
    /// here); bigger ones are recorded by identity only.
    public static let digestLimit: UInt64 = 4 << 30

    /// Resolves, judges (when there is a policy), opens and identifies the disk. Everything it
    /// refuses is bad input naming the path; nothing is attached.
    public static func open(_ request: DiskRequest, policy: AgentPolicy?, digestLimit: UInt64 = AttachedDisk.digestLimit)
        throws(HostError) -> AttachedDisk
    {
        let option = "\(request.isRoot ? "--image" : request.isScratch ? "--scratch" : "--disk") \(request.path)"
        var absolute = request.path
        if !absolute.hasPrefix("/") {
            guard let cwd = getcwd(nil, 0) else { throw .failed("getcwd: \(describeErrno())") }
            absolute = String(cString: cwd) + "/" + absolute
            free(cwd)
        }
        guard let path = HostPaths().canonicalPath(absolute, followFinalSymlink: true) else {
            throw .badInput("\(option): \(describeErrno())")
        }
        // The path goes into the audit log and the VM's state, one field of a line.
        guard !path.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) else {
            throw .badInput("\(option): the path holds a control character; rename the file")
        }
        var request = request
        if let policy {
            let decision = policy.evaluate(.attachDisk(path: absolute, writable: request.writable), resolver: HostPaths())
            guard decision.verdict == .allow else { throw .badInput("\(option): refused by the policy: \(decision)") }
            // The rule's caps bound what was asked for, and apply where nothing was.
            if let rule = policy.diskRule(for: decision) {
                request.bytesPerSecond = DiskRequest.capped(request.bytesPerSecond, by: rule.bytesPerSecond)
                request.operationsPerSecond = DiskRequest.capped(request.operationsPerSecond, by: rule.operationsPerSecond)
            }
        }
        // O_NOFOLLOW: the resolved path has no link left in its last component; one put
        // there since is refused, not followed.
        let fd = Glibc.open(path, (request.writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY)
        guard fd >= 0 else { throw .badInput("\(option): cannot open \(path) \(request.writable ? "read-write" : "read-only"): \(describeErrno())") }
        do throws(HostError) {
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw .badInput("\(option): fstat: \(describeErrno())") }
            // A file, or a whole block device (a seized drive, say), whose st_size is 0: its
            // end is where lseek says.
            let kind = info.st_mode & S_IFMT
            guard kind == S_IFREG || kind == S_IFBLK else { throw .badInput("\(option): \(path) is not a regular file or block device") }
            let end = kind == S_IFREG ? Int64(info.st_size) : Int64(lseek(fd, 0, SEEK_END))
            guard end >= 0 else { throw .badInput("\(option): cannot find the size of \(path): \(describeErrno())") }
            let size = UInt64(end)
            guard size > 0, size % 512 == 0 else {
                throw .badInput("\(option): \(path) is \(size) bytes; a disk is a whole number of 512-byte sectors, at least one")
            }
            // A read-write disk is one VM's alone; read-only ones may be shared, but not with a
            // VM that writes (flock(2) on the open file: it goes when the descriptor does).
            guard flock(fd, (request.writable ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0 else {
                throw .badInput("\(option): \(path) is attached \(request.writable ? "to another VM" : "read-write to another VM") (\(describeErrno()))")
            }
            let identity = kind == S_IFBLK
                ? "block device 0x\(String(info.st_rdev, radix: 16))"
                : "dev 0x\(String(info.st_dev, radix: 16)) ino \(info.st_ino) "
                    + "mtime \(info.st_mtim.tv_sec).\(String(info.st_mtim.tv_nsec).leftPadded(to: 9))"
            let digest = size <= digestLimit ? try Self.sha256(fd: fd, size: size, path: path) : nil
            return AttachedDisk(request: request, path: path, fd: fd, size: size, identity: identity, digest: digest)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    private init(request: DiskRequest, path: String, fd: Int32, size: UInt64, identity: String, digest: MerkleHash?) {
        self.request = request
        self.path = path
        self.fd = fd
        self.size = size
        self.identity = identity
        attachDigest = digest
    }

    deinit { close() }

    /// Closes the descriptor (and so its lock); a second call does nothing.
    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// The disk's bytes hashed through its descriptor, 1 MiB at a time.
    static func sha256(fd: Int32, size: UInt64, path: String) throws(HostError) -> MerkleHash {
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: UInt64 = 0
        while offset < size {
            let n = buffer.withUnsafeMutableBytes { raw -> Int in
                (try? FileIO.preadFully(fd, into: UnsafeMutableRawBufferPointer(rebasing: raw.prefix(Int(min(UInt64(raw.count), size - offset)))),
                                        at: Int(offset))) ?? -1
            }
            guard n > 0 else { throw .failed("reading \(path) for its digest at byte \(offset): \(n < 0 ? describeErrno() : "it ended early")") }
            hasher.update(data: buffer[0..<n])
            offset += UInt64(n)
        }
        return MerkleHash(bytes: Array(hasher.finalize()))!
    }

    /// What `open` refuses, found now and nothing kept: for a command that must refuse bad
    /// disks before it goes anywhere (into the nested rig, say). The launch checks again.
    public static func check(_ requests: [DiskRequest], policy: AgentPolicy?) throws(HostError) {
        try DiskRequest.checkSet(requests)
        for request in requests { try open(request, policy: policy, digestLimit: 0).close() }
    }

    /// The audit record of this disk in VM `vm`, at attach (the digest then) or detach (`digest`).
    public func state(vm: String, digest: MerkleHash?) -> DiskState {
        DiskState(vm: vm, name: request.name ?? "", path: path, writable: request.writable, size: size, identity: identity, sha256: digest)
    }

    /// A read-write disk's digest as the VM left it (nil above the limit, like at attach).
    public func detachDigest(digestLimit: UInt64 = AttachedDisk.digestLimit) throws(HostError) -> MerkleHash? {
        guard fd >= 0, size <= digestLimit else { return nil }
        return try Self.sha256(fd: fd, size: size, path: path)
    }
}

extension AttachedDisk {
    /// A VM's disks opened in order: the root image (`--image`; identified, not digested on every
    /// boot: an image is gigabytes, and read-only), each `--disk` judged by `policy`, then the
    /// scratch disk (momin's own file, not the policy's to judge). Nothing is kept on a refusal.
    /// `digestLimit` 0 skips reading the disks for digests nobody logs (a boot has no audit log).
    public static func openAll(rootImage: String?, disks: [DiskRequest], scratch: DiskRequest?, policy: AgentPolicy?,
                               digestLimit: UInt64 = AttachedDisk.digestLimit) throws(HostError) -> [AttachedDisk]
    {
        let root = rootImage.map { DiskRequest.rootImage($0) }
        try DiskRequest.checkSet((root.map { [$0] } ?? []) + disks + (scratch.map { [$0] } ?? []))
        var opened: [AttachedDisk] = []
        if let root { opened.append(try open(root, policy: nil, digestLimit: 0)) }
        for request in disks { opened.append(try open(request, policy: policy, digestLimit: digestLimit)) }
        if let scratch { opened.append(try open(scratch, policy: nil, digestLimit: 0)) }
        return opened
    }

    /// How momin-vmm gets `disks`: the descriptors a launch passes (`Processes.passedDescriptor`),
    /// in order, /dev/vda first.
    public static func configurations(_ disks: [AttachedDisk]) -> [DiskConfiguration] {
        disks.enumerated().map { index, disk in
            DiskConfiguration(descriptor: Processes.passedDescriptor(index), readOnly: !disk.request.writable, serial: disk.request.name,
                              bytesPerSecond: disk.request.bytesPerSecond.map { RateLimit(perSecond: $0) },
                              operationsPerSecond: disk.request.operationsPerSecond.map { RateLimit(perSecond: $0) })
        }
    }

    /// The kernel command line words that have momin-init mount `disks` (docs/guest.md).
    public static func commandLineWords(_ disks: [AttachedDisk], overlaySize: String?) -> [String] {
        disks.compactMap(\.request.mountWord)
            + (disks.contains(where: \.request.isRoot) ? overlaySize.map { ["momin.overlay=\($0)"] } ?? [] : [])
    }
}

extension AttachedDisk {
    /// The disk as an agent tree knows it, which a sub-agent may be given by name; nil for an
    /// unnamed one.
    public var held: HeldDisk? {
        request.name.map { HeldDisk(name: $0, path: path, writable: request.writable, isRoot: request.isRoot) }
    }
}

/// The disks of a long-lived VM (`momin start`), kept in its registry directory (`disks`: one
/// line each, `MODE<tab>SIZE<tab>NAME<tab>IDENTITY<tab>PATH`, MODE `root`, `ro` or `rw`), so that
/// its agent host can pass them on to sub-agents and `momin stop` can log each read-write one as
/// the VM left it, as a run does at its end.
public enum VMDisks {
    static func file(_ directory: String) -> String { directory + "/disks" }

    public static func save(_ disks: [AttachedDisk], in directory: String) throws(HostError) {
        let lines = disks.map { disk in
            let mode = disk.request.isRoot ? "root" : disk.request.writable ? "rw" : "ro"
            return "\(mode)\t\(disk.size)\t\(disk.request.name ?? "")\t\(disk.identity)\t\(disk.path)\n"
        }
        guard !lines.isEmpty else { return }
        try SmallFiles.write(file(directory), lines.joined())
    }

    /// Each line's fields; a damaged line is said through `warn` and left out.
    static func entries(vm: String, in directory: String, warn: (String) -> Void)
        -> [(mode: String, size: UInt64, name: String, identity: String, path: String)]
    {
        guard let text = SmallFiles.read(file(directory)) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: "\t", maxSplits: 4, omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 5, ["root", "ro", "rw"].contains(fields[0]), let size = UInt64(fields[1]) else {
                warn("VM \(vm): \(file(directory)) has a damaged line; that disk is left out")
                return nil
            }
            return (fields[0], size, fields[2], fields[3], fields[4])
        }
    }

    /// The named disks the VM holds, for its agent tree.
    public static func held(vm: String, in directory: String, warn: (String) -> Void) -> [HeldDisk] {
        entries(vm: vm, in: directory, warn: warn).compactMap { entry in
            entry.name.isEmpty ? nil : HeldDisk(name: entry.name, path: entry.path, writable: entry.mode == "rw", isRoot: entry.mode == "root")
        }
    }

    /// The detach records of VM `vm`'s read-write disks, each hashed now (its VMM has ended);
    /// a disk that cannot be read is recorded without a digest, and `warn` says why.
    public static func detachStates(vm: String, in directory: String, digestLimit: UInt64 = AttachedDisk.digestLimit,
                                    warn: (String) -> Void) -> [DiskState] {
        entries(vm: vm, in: directory, warn: warn).filter { $0.mode == "rw" }.map { disk in
            var digest: MerkleHash?
            if disk.size <= digestLimit {
                let fd = Glibc.open(disk.path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY)
                if fd < 0 { warn("VM \(vm): disk \(disk.path): \(describeErrno()); its detach is logged without a digest") } else {
                    do { digest = try AttachedDisk.sha256(fd: fd, size: disk.size, path: disk.path) } catch { warn("VM \(vm): \(error)") }
                    Glibc.close(fd)
                }
            }
            return DiskState(vm: vm, name: disk.name, path: disk.path, writable: true, size: disk.size, identity: disk.identity, sha256: digest)
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
