import Merkle

/// What the log records: every tool request, the policy's decision on it, a digest of its result,
/// and the lifecycle of VMs and policies. Each case has a typed payload; `AuditRecord.leafData`
/// turns one into the canonical bytes that the Merkle tree commits to (docs/audit.md).
public enum AuditEvent: Hashable, Sendable {
    case toolRequest(ToolRequest)
    case decision(Decision)
    case resultDigest(ResultDigest)
    case lifecycle(Lifecycle)
    /// How an allowed network connection made for an agent ended (after its result digest).
    case connectionEnd(ConnectionEnd)
    /// How an allowed model call through the Brain relay ended (after its result digest).
    case brainCall(BrainCall)

    /// The `kind` column of the entries table; also the order of the tag byte in the encoding.
    public var kind: String {
        switch self {
        case .toolRequest: "tool-request"
        case .decision: "decision"
        case .resultDigest: "result-digest"
        case .lifecycle(.vmStart): "vm-start"
        case .lifecycle(.vmStop): "vm-stop"
        case .lifecycle(.policyLoad): "policy-load"
        case .lifecycle(.runRefused): "run-refused"
        case .lifecycle(.diskAttach): "disk-attach"
        case .lifecycle(.diskDetach): "disk-detach"
        case .connectionEnd: "connection-end"
        case .brainCall: "brain-call"
        }
    }
}

/// An agent asked for a tool call (Hands) with these arguments.
public struct ToolRequest: Hashable, Sendable {
    /// Ties the request to its decision and result.
    public var requestID: UInt64
    /// The agent (its VM) that asked.
    public var agent: String
    public var tool: String
    /// The arguments as the gateway received them, opaque to the log.
    public var arguments: [UInt8]
    /// Who asked the host for the call, when it came through the API (`uid=1000(alice) pid=4242
    /// via momin serve`, from the kernel's peer credentials); nil for the agent's own calls and
    /// the command line's.
    public var caller: String?

    public init(requestID: UInt64, agent: String, tool: String, arguments: [UInt8], caller: String? = nil) {
        self.requestID = requestID
        self.agent = agent
        self.tool = tool
        self.arguments = arguments
        self.caller = caller
    }
}

/// The policy engine's answer to a request.
public struct Decision: Hashable, Sendable {
    public enum Verdict: UInt8, Hashable, Sendable {
        case deny = 0
        case allow = 1
    }

    public var requestID: UInt64
    public var verdict: Verdict
    /// The rule that decided (empty for the default).
    public var rule: String
    public var reason: String

    public init(requestID: UInt64, verdict: Verdict, rule: String, reason: String) {
        self.requestID = requestID
        self.verdict = verdict
        self.rule = rule
        self.reason = reason
    }
}

/// What a call produced, by digest: the log holds no result bytes.
public struct ResultDigest: Hashable, Sendable {
    public var requestID: UInt64
    /// The tool's status (an exit status, or a negative error code).
    public var status: Int64
    public var byteCount: UInt64
    /// SHA-256 of the result bytes.
    public var sha256: MerkleHash

    public init(requestID: UInt64, status: Int64, byteCount: UInt64, sha256: MerkleHash) {
        self.requestID = requestID
        self.status = status
        self.byteCount = byteCount
        self.sha256 = sha256
    }
}

/// The end of a connection the host made for an agent (docs/egress.md): where it went, how
/// much it carried each way, how long it lasted, and why it ended.
public struct ConnectionEnd: Hashable, Sendable {
    public var requestID: UInt64
    /// The address and port connected to (`[v6]:port` for IPv6); empty when no connection was made.
    public var address: String
    /// Bytes from the agent to the far end, and back.
    public var bytesSent: UInt64
    public var bytesReceived: UInt64
    public var durationMilliseconds: UInt64
    /// How it ended: `closed` (both sides finished), `idle: ...`, `limit: ...`, `error: ...`.
    public var end: String
    /// With the rule's `log_content` (plain HTTP only): the first `ConnectionEnd.contentKept`
    /// bytes each way, as they went; empty otherwise.
    public var sentContent: [UInt8]
    public var receivedContent: [UInt8]

    /// The most bytes of each direction a record keeps.
    public static let contentKept = 1 << 20

    public init(requestID: UInt64, address: String, bytesSent: UInt64, bytesReceived: UInt64, durationMilliseconds: UInt64, end: String,
                sentContent: [UInt8] = [], receivedContent: [UInt8] = []) {
        self.requestID = requestID
        self.address = address
        self.bytesSent = bytesSent
        self.bytesReceived = bytesReceived
        self.durationMilliseconds = durationMilliseconds
        self.end = end
        self.sentContent = sentContent
        self.receivedContent = receivedContent
    }
}

/// One model call the host made for an agent through the Brain relay (docs/brain.md): the model
/// asked for, the tokens it cost, digests of what went each way, how it ended.
public struct BrainCall: Hashable, Sendable {
    /// Where the token counts came from.
    public enum Usage: UInt8, Hashable, Sendable {
        /// No reply carried them (the call failed or was cut before the provider answered).
        case none = 0
        /// The provider's own `usage` object.
        case reported = 1
        /// A stream that ended without `usage`: one completion token per chunk with content, no
        /// prompt tokens; a lower bound.
        case estimated = 2
    }

    public var requestID: UInt64
    public var model: String
    /// The provider's HTTP status; 0 when no response head arrived.
    public var status: UInt64
    public var promptTokens: UInt64
    public var completionTokens: UInt64
    public var usage: Usage
    /// SHA-256 of the request body as the provider received it, and of the response body as the
    /// agent received it.
    public var requestSHA256: MerkleHash
    public var responseSHA256: MerkleHash
    public var bytesSent: UInt64
    public var bytesReceived: UInt64
    public var durationMilliseconds: UInt64
    /// How it ended: `complete`, `provider status N`, `limit: ...`, `error: ...`, `agent hung up`.
    public var end: String
    /// With `brain.log_content`: the request and response bodies (up to `contentKept` each); else empty.
    public var requestContent: [UInt8]
    public var responseContent: [UInt8]

    /// The most bytes of each body a record keeps.
    public static let contentKept = 8 << 20

    public init(requestID: UInt64, model: String, status: UInt64, promptTokens: UInt64, completionTokens: UInt64, usage: Usage,
                requestSHA256: MerkleHash, responseSHA256: MerkleHash, bytesSent: UInt64, bytesReceived: UInt64,
                durationMilliseconds: UInt64, end: String, requestContent: [UInt8] = [], responseContent: [UInt8] = []) {
        self.requestID = requestID
        self.model = model
        self.status = status
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.usage = usage
        self.requestSHA256 = requestSHA256
        self.responseSHA256 = responseSHA256
        self.bytesSent = bytesSent
        self.bytesReceived = bytesReceived
        self.durationMilliseconds = durationMilliseconds
        self.end = end
        self.requestContent = requestContent
        self.responseContent = responseContent
    }
}

/// VMs starting and stopping, policies being loaded, runs refused before their VM booted.
public enum Lifecycle: Hashable, Sendable {
    case vmStart(vm: String)
    case vmStop(vm: String, reason: String)
    /// A policy was loaded from `source`; `sha256` is the digest of its text.
    case policyLoad(source: String, sha256: MerkleHash)
    /// The run of VM `vm` was refused before it booted: its policy did not load, it asked for
    /// more than the policy allows, the host had no room for it; `reason` says which.
    case runRefused(vm: String, reason: String)
    /// A host file was attached to VM `vm` as a disk, as it was then.
    case diskAttach(DiskState)
    /// A read-write disk was detached from VM `vm` (the VM is gone), as the VM left it.
    case diskDetach(DiskState)
}

/// A disk file at attach or detach: what it is, where, and what it held.
public struct DiskState: Hashable, Sendable {
    public var vm: String
    /// The disk's name in the VM (its virtio-blk serial).
    public var name: String
    /// The host file, every symlink resolved.
    public var path: String
    public var writable: Bool
    public var size: UInt64
    /// A cheap identity of the file (device, inode, modification time).
    public var identity: String
    /// The SHA-256 of its bytes; nil when it was too big to read at attach (docs/disks.md).
    public var sha256: MerkleHash?

    public init(vm: String, name: String, path: String, writable: Bool, size: UInt64, identity: String, sha256: MerkleHash?) {
        self.vm = vm
        self.name = name
        self.path = path
        self.writable = writable
        self.size = size
        self.identity = identity
        self.sha256 = sha256
    }
}

/// One entry of the log: its position, when it was appended, and what happened.
public struct AuditRecord: Hashable, Sendable {
    public var index: UInt64
    /// Nanoseconds since the Unix epoch (wall clock; not assumed monotonic).
    public var time: UInt64
    public var event: AuditEvent

    public init(index: UInt64, time: UInt64, event: AuditEvent) {
        self.index = index
        self.time = time
        self.event = event
    }
}
