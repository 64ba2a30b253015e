/// Why KVM_RUN returned, decoded from the shared run area. The kvm_run union never leaves the
/// KVM module: this enum carries copies of what it held.
public enum VCPUExit: Equatable, Sendable {
    /// The guest read `size` bytes from I/O `port`, `count` times (string I/O when > 1).
    /// Answer with `VCPU.completeInput` before the next run.
    case ioIn(port: UInt16, size: Int, count: Int)
    /// The guest wrote `data` (`count × size` bytes) to I/O `port`.
    case ioOut(port: UInt16, size: Int, data: [UInt8])
    /// The guest read `size` bytes at guest-physical `address`. Answer with `VCPU.completeInput`.
    case mmioRead(address: UInt64, size: Int)
    /// The guest wrote `data` at guest-physical `address`.
    case mmioWrite(address: UInt64, data: [UInt8])
    /// HLT with no in-kernel irqchip to sleep on.
    case halt
    /// Triple fault (or an INIT the VMM must handle): the guest is dead.
    case shutdown
    /// VM entry failed; `reason` is the hardware's entry-failure code.
    case failEntry(reason: UInt64)
    /// KVM could not emulate an instruction or deliver an event.
    case internalError(suberror: UInt32)
    /// KVM_EXIT_SYSTEM_EVENT (shutdown/reset/crash requested through KVM).
    case systemEvent(type: UInt32)
    /// A signal or `immediate_exit` interrupted KVM_RUN; nothing happened in the guest.
    case interrupted
    /// An exit reason this VMM does not handle.
    case unhandled(reason: UInt32)
}
