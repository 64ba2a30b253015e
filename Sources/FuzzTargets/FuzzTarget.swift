/// The fuzz targets: one function per parser that hostile bytes reach (docs/testing.md,
/// "Fuzzing"). Each takes any bytes, and stops the process (`fatalError`, which libFuzzer
/// reports as a crash with its input) when a property it checks does not hold; running out of
/// memory, a trap or an address error is a crash too under `-sanitize=fuzzer,address`.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// Doors frames from a stream: refused, waiting, or re-encoding to the bytes they came from.
    case doorsFrame = "doors-frame"
    /// Hands call and reply frames: refused, or re-encoding to the bytes they came from.
    case handsCall = "hands-call"
    /// A split virtqueue over guest memory the input fills, walked as a device walks it, with
    /// each chain read as a vsock TX packet.
    case virtqueue
    /// One vsock stream connection, driven by guest packets and host socket events: its credit
    /// accounting holds after every step.
    case vsockConnection = "vsock-connection"
    /// A split virtqueue over guest memory the input fills, each chain read as a virtio-blk
    /// request: accepted ones are exactly what their chain holds and lie inside the disk.
    case virtioBlock = "virtio-blk"
    /// A policy file, YAML or JSON: refused with an error, or a policy no wider than itself.
    case policy
    /// A parent and a child policy: when the check finds no widening, the child is allowed
    /// nothing the parent is not.
    case narrowing
    /// An image layer's tar (`momin image import`): entries are exactly as long as they say,
    /// within the limits, and the paths the layer rules accept stay inside the tree.
    case tar
    /// An HTTP request head as the egress proxy reads it: refused with a status, or parsed
    /// within its bounds and forwarded as exactly one request.
    case httpHead = "http-head"
    /// What the Brain relay reads: a provider's response head, chunked body and event stream,
    /// and a guest's chat request and its rewrite, which parses again to the same request.
    case brainWire = "brain-wire"
    /// What the host reads to install packages for a guest: versions, specifiers, requirements,
    /// METADATA, wheel filenames and simple index pages, each reading back from its description.
    case packageIndex = "package-index"

    /// Runs one input through the target.
    public func run(_ bytes: [UInt8]) {
        switch self {
        case .doorsFrame: DoorsFrameTarget.run(bytes)
        case .handsCall: HandsCallTarget.run(bytes)
        case .virtqueue: VirtqueueTarget.run(bytes)
        case .vsockConnection: VsockConnectionTarget.run(bytes)
        case .virtioBlock: VirtioBlockTarget.run(bytes)
        case .policy: PolicyTarget.run(bytes)
        case .narrowing: NarrowingTarget.run(bytes)
        case .tar: TarTarget.run(bytes)
        case .httpHead: HTTPHeadTarget.run(bytes)
        case .brainWire: BrainWireTarget.run(bytes)
        case .packageIndex: PackageIndexTarget.run(bytes)
        }
    }
}

/// Stops with what broke: libFuzzer keeps the input that did it.
func violated(_ what: String) -> Never {
    fatalError("fuzz property violated: \(what)")
}
