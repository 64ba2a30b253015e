import Glibc

/// Facts about this host's KVM that decide whether a stock kernel can boot on it.
public enum KVMHost {
    /// A reason to go through the nested rig, or nil when this host's KVM can boot stock kernels
    /// (or is missing, which the VMM reports as an error), or when already inside the rig.
    public static func needsRig(kvmPath: String) -> String? {
        if let inRig = getenv("MOMIN_IN_RIG"), String(cString: inRig) == "1" { return nil }
        guard access(kvmPath, F_OK) == 0 else { return nil }
        if access("/sys/module/kvm_pvm", F_OK) == 0 {
            return "\(kvmPath) here is PVM (kvm_pvm), which runs only PVM-aware guest kernels"
        }
        if !cpuHasHardwareVirtualization() {
            return "this CPU shows neither vmx nor svm, so \(kvmPath) cannot run stock kernels"
        }
        return nil
    }

    static func cpuHasHardwareVirtualization() -> Bool {
        guard let file = fopen("/proc/cpuinfo", "r") else { return false }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0 {
            guard let line else { continue }
            let text = String(cString: line)
            guard text.hasPrefix("flags") else { continue }
            let flags = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
            return flags.contains("vmx") || flags.contains("svm")
        }
        return false
    }
}
