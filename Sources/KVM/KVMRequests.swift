import CKVM

/// The ioctl request numbers a running VMM thread makes, for its seccomp filter (the numbers
/// come from <linux/kvm.h>, which only CKVM includes; the Seccomp module does not depend on KVM).
public enum KVMRequests {
    /// What `VCPU.run()` calls on a vCPU fd once the vCPU is set up: KVM_RUN alone. (Register
    /// and CPUID set-up happens on the main thread before the vCPU threads start.)
    public static var vcpuThread: [UInt64] { [UInt64(CKVM_RUN)] }
}
