// CKVM: the only code in MominAI that includes <linux/kvm.h> or calls ioctl(2).
// Swift cannot import the _IO/_IOR/_IOW macros nor call variadic ioctl, so this shim exports
// the request numbers as constants and wraps ioctl in fixed-arity functions. Only the KVM
// target imports it.
#ifndef CKVM_H
#define CKVM_H

#include <linux/kvm.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/eventfd.h>

// System ioctls (on /dev/kvm).
extern const unsigned long CKVM_GET_API_VERSION;
extern const unsigned long CKVM_CREATE_VM;
extern const unsigned long CKVM_CHECK_EXTENSION;
extern const unsigned long CKVM_GET_VCPU_MMAP_SIZE;
extern const unsigned long CKVM_GET_SUPPORTED_CPUID;
extern const unsigned long CKVM_GET_MSR_INDEX_LIST;

// VM ioctls.
extern const unsigned long CKVM_CREATE_VCPU;
extern const unsigned long CKVM_SET_USER_MEMORY_REGION;
extern const unsigned long CKVM_SET_TSS_ADDR;
extern const unsigned long CKVM_SET_IDENTITY_MAP_ADDR;
extern const unsigned long CKVM_CREATE_IRQCHIP;
extern const unsigned long CKVM_CREATE_PIT2;
extern const unsigned long CKVM_IRQ_LINE;
extern const unsigned long CKVM_IRQFD;
extern const unsigned long CKVM_IOEVENTFD;

// vCPU ioctls.
extern const unsigned long CKVM_RUN;
extern const unsigned long CKVM_GET_REGS;
extern const unsigned long CKVM_SET_REGS;
extern const unsigned long CKVM_GET_SREGS;
extern const unsigned long CKVM_SET_SREGS;
extern const unsigned long CKVM_GET_FPU;
extern const unsigned long CKVM_SET_FPU;
extern const unsigned long CKVM_SET_CPUID2;
extern const unsigned long CKVM_SET_MSRS;
extern const unsigned long CKVM_GET_LAPIC;
extern const unsigned long CKVM_SET_LAPIC;
extern const unsigned long CKVM_GET_MP_STATE;

// Capabilities we ask about.
extern const int CKVM_CAP_IRQCHIP;
extern const int CKVM_CAP_USER_MEMORY;
extern const int CKVM_CAP_SET_TSS_ADDR;
extern const int CKVM_CAP_EXT_CPUID;
extern const int CKVM_CAP_IRQFD;
extern const int CKVM_CAP_IOEVENTFD;
extern const int CKVM_CAP_PIT2;
extern const int CKVM_CAP_NR_VCPUS;
extern const int CKVM_CAP_MAX_VCPUS;
extern const int CKVM_CAP_IMMEDIATE_EXIT;

// Fixed-arity ioctl wrappers. Each returns ioctl's result; errno is left as the kernel set it.
int ckvm_ioctl_none(int fd, unsigned long request);
int ckvm_ioctl_value(int fd, unsigned long request, unsigned long value);
int ckvm_ioctl_pointer(int fd, unsigned long request, void *argument);

// The kvm_run exit, flattened so that the anonymous union never reaches Swift.
typedef struct {
    uint32_t reason;           // KVM_EXIT_*
    // KVM_EXIT_IO
    uint8_t io_direction;      // KVM_EXIT_IO_IN / KVM_EXIT_IO_OUT
    uint8_t io_size;           // 1, 2 or 4
    uint16_t io_port;
    uint32_t io_count;
    uint64_t io_data_offset;   // from the start of the kvm_run mapping
    // KVM_EXIT_MMIO
    uint64_t mmio_address;
    uint32_t mmio_length;
    uint8_t mmio_is_write;
    uint8_t mmio_data[8];
    // KVM_EXIT_FAIL_ENTRY
    uint64_t fail_entry_reason;
    // KVM_EXIT_INTERNAL_ERROR
    uint32_t internal_suberror;
    // KVM_EXIT_SYSTEM_EVENT
    uint32_t system_event_type;
} ckvm_exit;

void ckvm_decode_exit(const struct kvm_run *run, ckvm_exit *out);
void ckvm_set_mmio_data(struct kvm_run *run, const uint8_t *data, uint32_t length);
void ckvm_set_immediate_exit(struct kvm_run *run, uint8_t value);

// Exit reasons as plain ints (Swift imports the KVM_EXIT_* macros, but keeping the set here
// documents which ones the wrapper understands).
extern const uint32_t CKVM_EXIT_IO, CKVM_EXIT_MMIO, CKVM_EXIT_HLT, CKVM_EXIT_SHUTDOWN,
    CKVM_EXIT_FAIL_ENTRY, CKVM_EXIT_INTR, CKVM_EXIT_INTERNAL_ERROR, CKVM_EXIT_SYSTEM_EVENT,
    CKVM_EXIT_IRQ_WINDOW_OPEN, CKVM_EXIT_UNKNOWN, CKVM_EXIT_DEBUG, CKVM_EXIT_EXCEPTION;
extern const uint8_t CKVM_EXIT_IO_IN;

// Local APIC register page (struct kvm_lapic_state.regs): 32-bit access at a byte offset.
uint32_t ckvm_lapic_get(const struct kvm_lapic_state *state, uint32_t offset);
void ckvm_lapic_set(struct kvm_lapic_state *state, uint32_t offset, uint32_t value);

// Variable-size argument blocks (flexible arrays), allocated with calloc, freed with free().
struct kvm_cpuid2 *ckvm_cpuid_alloc(uint32_t entries);
struct kvm_msrs *ckvm_msrs_alloc(uint32_t entries);
struct kvm_msr_list *ckvm_msr_list_alloc(uint32_t entries);
void ckvm_free(void *pointer);

#endif
