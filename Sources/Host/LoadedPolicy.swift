import Audit
import Crypto
import Merkle
import Policy

/// A policy as loaded for a VM: the compiled policy, the exact bytes parsed, and where from.
public struct LoadedPolicy: Sendable {
    public var policy: AgentPolicy
    public var source: [UInt8]
    public var path: String

    public init(policy: AgentPolicy, source: [UInt8], path: String) {
        self.policy = policy
        self.source = source
        self.path = path
    }

    /// Loads `path` for a machine of `vcpus` and `memoryMiB`, which its resource caps must
    /// hold; a file that does not load, or a machine over the caps, is bad input.
    public static func load(path: String, vcpus: Int, memoryMiB: Int) throws(HostError) -> LoadedPolicy {
        let loaded = try load(path: path)
        try loaded.allow(vcpus: vcpus, memoryMiB: memoryMiB)
        return loaded
    }

    /// Whether the policy's resource caps hold a machine of `vcpus` and `memoryMiB`; one over
    /// them is bad input naming the cap.
    public func allow(vcpus: Int, memoryMiB: Int) throws(HostError) {
        let caps = policy.resources
        if vcpus > caps.vcpus { throw .badInput("--vcpus \(vcpus) is over the policy's cap of \(caps.vcpus) (resources.vcpus)") }
        if memoryMiB > caps.memoryMiB {
            throw .badInput("--memory \(memoryMiB) MiB is over the policy's cap of \(caps.memoryMiB) MiB (resources.memory_mib)")
        }
    }

    /// Loads `path`; one that does not load is bad input (FILE:LINE: FIELD: MESSAGE).
    public static func load(path: String) throws(HostError) -> LoadedPolicy {
        do {
            let loaded = try AgentPolicy.loadWithSource(path: path)
            return LoadedPolicy(policy: loaded.policy, source: loaded.source, path: path)
        } catch {
            throw .badInput(error.description)
        }
    }

    /// SHA-256 of the bytes parsed.
    public var digest: MerkleHash { MerkleHash(bytes: Array(SHA256.hash(data: source)))! }

    /// The policy-load entry: where it came from and the SHA-256 of the bytes parsed.
    public var loadEvent: Lifecycle { .policyLoad(source: path, sha256: digest) }
}
