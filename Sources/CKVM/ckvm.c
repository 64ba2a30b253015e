// See include/ckvm.h. Request numbers come straight from <linux/kvm.h>'s _IO* macros.
#include "ckvm.h"
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

const unsigned long CKVM_GET_API_VERSION = KVM_GET_API_VERSION;
const unsigned long CKVM_CREATE_VM = KVM_CREATE_VM;
const unsigned long CKVM_CHECK_EXTENSION = KVM_CHECK_EXTENSION;
const unsigned long CKVM_GET_VCPU_MMAP_SIZE = KVM_GET_VCPU_MMAP_SIZE;
const unsigned long CKVM_GET_SUPPORTED_CPUID = KVM_GET_SUPPORTED_CPUID;
const unsigned long CKVM_GET_MSR_INDEX_LIST = KVM_GET_MSR_INDEX_LIST;

const unsigned long CKVM_CREATE_VCPU = KVM_CREATE_VCPU;
const unsigned long CKVM_SET_USER_MEMORY_REGION = KVM_SET_USER_MEMORY_REGION;
const unsigned long CKVM_SET_TSS_ADDR = KVM_SET_TSS_ADDR;
const unsigned long CKVM_SET_IDENTITY_MAP_ADDR = KVM_SET_IDENTITY_MAP_ADDR;
const unsigned long CKVM_CREATE_IRQCHIP = KVM_CREATE_IRQCHIP;
const unsigned long CKVM_CREATE_PIT2 = KVM_CREATE_PIT2;
const unsigned long CKVM_IRQ_LINE = KVM_IRQ_LINE;
const unsigned long CKVM_IRQFD = KVM_IRQFD;
const unsigned long CKVM_IOEVENTFD = KVM_IOEVENTFD;

const unsigned long CKVM_RUN = KVM_RUN;
const unsigned long CKVM_GET_REGS = KVM_GET_REGS;
const unsigned long CKVM_SET_REGS = KVM_SET_REGS;
const unsigned long CKVM_GET_SREGS = KVM_GET_SREGS;
const unsigned long CKVM_SET_SREGS = KVM_SET_SREGS;
const unsigned long CKVM_GET_FPU = KVM_GET_FPU;
const unsigned long CKVM_SET_FPU = KVM_SET_FPU;
const unsigned long CKVM_SET_CPUID2 = KVM_SET_CPUID2;
const unsigned long CKVM_SET_MSRS = KVM_SET_MSRS;
const unsigned long CKVM_GET_LAPIC = KVM_GET_LAPIC;
const unsigned long CKVM_SET_LAPIC = KVM_SET_LAPIC;
const unsigned long CKVM_GET_MP_STATE = KVM_GET_MP_STATE;

const int CKVM_CAP_IRQCHIP = KVM_CAP_IRQCHIP;
const int CKVM_CAP_USER_MEMORY = KVM_CAP_USER_MEMORY;
const int CKVM_CAP_SET_TSS_ADDR = KVM_CAP_SET_TSS_ADDR;
const int CKVM_CAP_EXT_CPUID = KVM_CAP_EXT_CPUID;
const int CKVM_CAP_IRQFD = KVM_CAP_IRQFD;
const int CKVM_CAP_IOEVENTFD = KVM_CAP_IOEVENTFD;
const int CKVM_CAP_PIT2 = KVM_CAP_PIT2;
const int CKVM_CAP_NR_VCPUS = KVM_CAP_NR_VCPUS;
const int CKVM_CAP_MAX_VCPUS = KVM_CAP_MAX_VCPUS;
const int CKVM_CAP_IMMEDIATE_EXIT = KVM_CAP_IMMEDIATE_EXIT;

const uint32_t CKVM_EXIT_IO = KVM_EXIT_IO, CKVM_EXIT_MMIO = KVM_EXIT_MMIO,
    CKVM_EXIT_HLT = KVM_EXIT_HLT, CKVM_EXIT_SHUTDOWN = KVM_EXIT_SHUTDOWN,
    CKVM_EXIT_FAIL_ENTRY = KVM_EXIT_FAIL_ENTRY, CKVM_EXIT_INTR = KVM_EXIT_INTR,
    CKVM_EXIT_INTERNAL_ERROR = KVM_EXIT_INTERNAL_ERROR,
    CKVM_EXIT_SYSTEM_EVENT = KVM_EXIT_SYSTEM_EVENT,
    CKVM_EXIT_IRQ_WINDOW_OPEN = KVM_EXIT_IRQ_WINDOW_OPEN, CKVM_EXIT_UNKNOWN = KVM_EXIT_UNKNOWN,
    CKVM_EXIT_DEBUG = KVM_EXIT_DEBUG, CKVM_EXIT_EXCEPTION = KVM_EXIT_EXCEPTION;
const uint8_t CKVM_EXIT_IO_IN = KVM_EXIT_IO_IN;

int ckvm_ioctl_none(int fd, unsigned long request) { return ioctl(fd, request, 0); }
int ckvm_ioctl_value(int fd, unsigned long request, unsigned long value) { return ioctl(fd, request, value); }
int ckvm_ioctl_pointer(int fd, unsigned long request, void *argument) { return ioctl(fd, request, argument); }

void ckvm_decode_exit(const struct kvm_run *run, ckvm_exit *out) {
    memset(out, 0, sizeof(*out));
    out->reason = run->exit_reason;
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        out->io_direction = run->io.direction;
        out->io_size = run->io.size;
        out->io_port = run->io.port;
        out->io_count = run->io.count;
        out->io_data_offset = run->io.data_offset;
        break;
    case KVM_EXIT_MMIO:
        out->mmio_address = run->mmio.phys_addr;
        out->mmio_length = run->mmio.len;
        out->mmio_is_write = run->mmio.is_write;
        memcpy(out->mmio_data, run->mmio.data, sizeof(out->mmio_data));
        break;
    case KVM_EXIT_FAIL_ENTRY:
        out->fail_entry_reason = run->fail_entry.hardware_entry_failure_reason;
        break;
    case KVM_EXIT_INTERNAL_ERROR:
        out->internal_suberror = run->internal.suberror;
        break;
    case KVM_EXIT_SYSTEM_EVENT:
        out->system_event_type = run->system_event.type;
        break;
    }
}

void ckvm_set_mmio_data(struct kvm_run *run, const uint8_t *data, uint32_t length) {
    if (length > sizeof(run->mmio.data)) length = sizeof(run->mmio.data);
    memcpy(run->mmio.data, data, length);
}

void ckvm_set_immediate_exit(struct kvm_run *run, uint8_t value) { run->immediate_exit = value; }

uint32_t ckvm_lapic_get(const struct kvm_lapic_state *state, uint32_t offset) {
    uint32_t value = 0;
    if (offset <= sizeof(state->regs) - 4) memcpy(&value, state->regs + offset, 4);
    return value;
}

void ckvm_lapic_set(struct kvm_lapic_state *state, uint32_t offset, uint32_t value) {
    if (offset <= sizeof(state->regs) - 4) memcpy(state->regs + offset, &value, 4);
}

struct kvm_cpuid2 *ckvm_cpuid_alloc(uint32_t entries) {
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + (size_t)entries * sizeof(struct kvm_cpuid_entry2));
    if (c) c->nent = entries;
    return c;
}

struct kvm_msrs *ckvm_msrs_alloc(uint32_t entries) {
    struct kvm_msrs *m = calloc(1, sizeof(*m) + (size_t)entries * sizeof(struct kvm_msr_entry));
    if (m) m->nmsrs = entries;
    return m;
}

struct kvm_msr_list *ckvm_msr_list_alloc(uint32_t entries) {
    struct kvm_msr_list *l = calloc(1, sizeof(*l) + (size_t)entries * sizeof(uint32_t));
    if (l) l->nmsrs = entries;
    return l;
}

void ckvm_free(void *pointer) { free(pointer); }
