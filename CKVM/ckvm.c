/* CKVM: see ckvm.h. Every function here is one line of C that Swift cannot write itself. */
#define _GNU_SOURCE
#include "ckvm.h"

#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ioctl request numbers */

const unsigned long ckvm_KVM_GET_API_VERSION = KVM_GET_API_VERSION;
const unsigned long ckvm_KVM_CREATE_VM = KVM_CREATE_VM;
const unsigned long ckvm_KVM_CHECK_EXTENSION = KVM_CHECK_EXTENSION;
const unsigned long ckvm_KVM_GET_VCPU_MMAP_SIZE = KVM_GET_VCPU_MMAP_SIZE;
const unsigned long ckvm_KVM_GET_SUPPORTED_CPUID = KVM_GET_SUPPORTED_CPUID;
const unsigned long ckvm_KVM_GET_MSR_INDEX_LIST = KVM_GET_MSR_INDEX_LIST;
const unsigned long ckvm_KVM_GET_MSR_FEATURE_INDEX_LIST = KVM_GET_MSR_FEATURE_INDEX_LIST;
const unsigned long ckvm_KVM_CREATE_VCPU = KVM_CREATE_VCPU;
const unsigned long ckvm_KVM_SET_USER_MEMORY_REGION = KVM_SET_USER_MEMORY_REGION;
const unsigned long ckvm_KVM_GET_DIRTY_LOG = KVM_GET_DIRTY_LOG;
const unsigned long ckvm_KVM_CLEAR_DIRTY_LOG = KVM_CLEAR_DIRTY_LOG;
const unsigned long ckvm_KVM_ENABLE_CAP = KVM_ENABLE_CAP;
const unsigned long ckvm_KVM_X86_SET_MSR_FILTER = KVM_X86_SET_MSR_FILTER;
const unsigned long ckvm_KVM_GET_STATS_FD = KVM_GET_STATS_FD;
const unsigned long ckvm_KVM_REGISTER_COALESCED_MMIO = KVM_REGISTER_COALESCED_MMIO;
const unsigned long ckvm_KVM_UNREGISTER_COALESCED_MMIO = KVM_UNREGISTER_COALESCED_MMIO;
const unsigned long ckvm_KVM_RUN = KVM_RUN;
const unsigned long ckvm_KVM_GET_REGS = KVM_GET_REGS;
const unsigned long ckvm_KVM_SET_REGS = KVM_SET_REGS;
const unsigned long ckvm_KVM_GET_SREGS = KVM_GET_SREGS;
const unsigned long ckvm_KVM_SET_SREGS = KVM_SET_SREGS;
const unsigned long ckvm_KVM_GET_FPU = KVM_GET_FPU;
const unsigned long ckvm_KVM_SET_FPU = KVM_SET_FPU;
const unsigned long ckvm_KVM_GET_XSAVE = KVM_GET_XSAVE;
const unsigned long ckvm_KVM_GET_XSAVE2 = KVM_GET_XSAVE2;
const unsigned long ckvm_KVM_SET_XSAVE = KVM_SET_XSAVE;
const unsigned long ckvm_KVM_GET_XCRS = KVM_GET_XCRS;
const unsigned long ckvm_KVM_SET_XCRS = KVM_SET_XCRS;
const unsigned long ckvm_KVM_GET_MSRS = KVM_GET_MSRS;
const unsigned long ckvm_KVM_SET_MSRS = KVM_SET_MSRS;
const unsigned long ckvm_KVM_GET_DEBUGREGS = KVM_GET_DEBUGREGS;
const unsigned long ckvm_KVM_SET_DEBUGREGS = KVM_SET_DEBUGREGS;
const unsigned long ckvm_KVM_GET_VCPU_EVENTS = KVM_GET_VCPU_EVENTS;
const unsigned long ckvm_KVM_SET_VCPU_EVENTS = KVM_SET_VCPU_EVENTS;
const unsigned long ckvm_KVM_GET_MP_STATE = KVM_GET_MP_STATE;
const unsigned long ckvm_KVM_SET_MP_STATE = KVM_SET_MP_STATE;
const unsigned long ckvm_KVM_SET_GUEST_DEBUG = KVM_SET_GUEST_DEBUG;
const unsigned long ckvm_KVM_INTERRUPT = KVM_INTERRUPT;
const unsigned long ckvm_KVM_NMI = KVM_NMI;
const unsigned long ckvm_KVM_SET_CPUID2 = KVM_SET_CPUID2;
const unsigned long ckvm_KVM_GET_CPUID2 = KVM_GET_CPUID2;
const unsigned long ckvm_KVM_GET_TSC_KHZ = KVM_GET_TSC_KHZ;
const unsigned long ckvm_PERF_EVENT_IOC_ENABLE = PERF_EVENT_IOC_ENABLE;
const unsigned long ckvm_PERF_EVENT_IOC_DISABLE = PERF_EVENT_IOC_DISABLE;
const unsigned long ckvm_PERF_EVENT_IOC_RESET = PERF_EVENT_IOC_RESET;
const unsigned long ckvm_PERF_EVENT_IOC_PERIOD = PERF_EVENT_IOC_PERIOD;

int ckvm_ioctl_val(int fd, unsigned long request, unsigned long value) {
    return ioctl(fd, request, value);
}

int ckvm_ioctl_ptr(int fd, unsigned long request, void *pointer) {
    return ioctl(fd, request, pointer);
}

int ckvm_perf_event_open(struct perf_event_attr *attr, pid_t pid, int cpu, int group_fd,
                         unsigned long flags) {
    return (int)syscall(SYS_perf_event_open, attr, pid, cpu, group_fd, flags);
}

int ckvm_fcntl_owner_this_thread(int fd) {
    return fcntl(fd, F_SETOWN_EX, &(struct f_owner_ex){.type = F_OWNER_TID, .pid = gettid()});
}

int ckvm_fcntl_set_signal(int fd, int signo) {
    return fcntl(fd, F_SETSIG, signo);
}

/* The kvm_run of the vCPU this thread runs (or last ran); read by the kick handler. */
static __thread struct kvm_run *ckvm_thread_run;

static void ckvm_kick_handler(int signo) {
    (void)signo;
    struct kvm_run *run = __atomic_load_n(&ckvm_thread_run, __ATOMIC_RELAXED);
    if (run) __atomic_store_n(&run->immediate_exit, 1, __ATOMIC_SEQ_CST);
}

int ckvm_install_kick_handler(int signo) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ckvm_kick_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    return sigaction(signo, &sa, NULL);
}

void ckvm_set_thread_run(struct kvm_run *run) {
    __atomic_store_n(&ckvm_thread_run, run, __ATOMIC_RELAXED);
}

uint8_t ckvm_run_immediate_exit(const struct kvm_run *run) {
    return __atomic_load_n(&run->immediate_exit, __ATOMIC_SEQ_CST);
}
void ckvm_run_set_immediate_exit(struct kvm_run *run, uint8_t value) {
    __atomic_store_n(&run->immediate_exit, value, __ATOMIC_SEQ_CST);
}

/* kvm_run fields */
uint32_t ckvm_run_exit_reason(const struct kvm_run *run) { return run->exit_reason; }
uint8_t ckvm_run_request_interrupt_window(const struct kvm_run *run) { return run->request_interrupt_window; }
uint8_t ckvm_run_ready_for_interrupt_injection(const struct kvm_run *run) { return run->ready_for_interrupt_injection; }
uint8_t ckvm_run_if_flag(const struct kvm_run *run) { return run->if_flag; }
uint16_t ckvm_run_flags(const struct kvm_run *run) { return run->flags; }
uint64_t ckvm_run_cr8(const struct kvm_run *run) { return run->cr8; }
uint64_t ckvm_run_apic_base(const struct kvm_run *run) { return run->apic_base; }
uint64_t ckvm_run_hw_exit_reason(const struct kvm_run *run) { return run->hw.hardware_exit_reason; }
uint64_t ckvm_run_fail_entry_reason(const struct kvm_run *run) { return run->fail_entry.hardware_entry_failure_reason; }
uint32_t ckvm_run_fail_entry_cpu(const struct kvm_run *run) { return run->fail_entry.cpu; }
uint32_t ckvm_run_ex_exception(const struct kvm_run *run) { return run->ex.exception; }
uint32_t ckvm_run_ex_error_code(const struct kvm_run *run) { return run->ex.error_code; }
uint8_t ckvm_run_io_direction(const struct kvm_run *run) { return run->io.direction; }
uint8_t ckvm_run_io_size(const struct kvm_run *run) { return run->io.size; }
uint16_t ckvm_run_io_port(const struct kvm_run *run) { return run->io.port; }
uint32_t ckvm_run_io_count(const struct kvm_run *run) { return run->io.count; }
uint64_t ckvm_run_io_data_offset(const struct kvm_run *run) { return run->io.data_offset; }
uint32_t ckvm_run_debug_exception(const struct kvm_run *run) { return run->debug.arch.exception; }
uint64_t ckvm_run_debug_pc(const struct kvm_run *run) { return run->debug.arch.pc; }
uint64_t ckvm_run_debug_dr6(const struct kvm_run *run) { return run->debug.arch.dr6; }
uint64_t ckvm_run_debug_dr7(const struct kvm_run *run) { return run->debug.arch.dr7; }
uint64_t ckvm_run_mmio_phys_addr(const struct kvm_run *run) { return run->mmio.phys_addr; }
uint32_t ckvm_run_mmio_len(const struct kvm_run *run) { return run->mmio.len; }
uint8_t ckvm_run_mmio_is_write(const struct kvm_run *run) { return run->mmio.is_write; }
uint64_t ckvm_run_hypercall_nr(const struct kvm_run *run) { return run->hypercall.nr; }
uint32_t ckvm_run_hypercall_longmode(const struct kvm_run *run) { return run->hypercall.longmode; }
uint32_t ckvm_run_internal_suberror(const struct kvm_run *run) { return run->internal.suberror; }
uint32_t ckvm_run_internal_ndata(const struct kvm_run *run) { return run->internal.ndata; }
uint32_t ckvm_run_system_event_type(const struct kvm_run *run) { return run->system_event.type; }
uint32_t ckvm_run_system_event_ndata(const struct kvm_run *run) { return run->system_event.ndata; }
uint32_t ckvm_run_msr_reason(const struct kvm_run *run) { return run->msr.reason; }
uint32_t ckvm_run_msr_index(const struct kvm_run *run) { return run->msr.index; }
uint64_t ckvm_run_msr_data(const struct kvm_run *run) { return run->msr.data; }
uint64_t ckvm_run_tpr_access_rip(const struct kvm_run *run) { return run->tpr_access.rip; }
uint32_t ckvm_run_tpr_access_is_write(const struct kvm_run *run) { return run->tpr_access.is_write; }
uint8_t ckvm_run_eoi_vector(const struct kvm_run *run) { return run->eoi.vector; }
uint32_t ckvm_run_notify_flags(const struct kvm_run *run) { return run->notify.flags; }

void ckvm_run_set_request_interrupt_window(struct kvm_run *run, uint8_t value) {
    run->request_interrupt_window = value;
}
uint8_t *ckvm_run_mmio_data(struct kvm_run *run) { return run->mmio.data; }
uint64_t ckvm_run_hypercall_arg(const struct kvm_run *run, unsigned int i) {
    return i < 6 ? run->hypercall.args[i] : 0;
}
void ckvm_run_set_hypercall_ret(struct kvm_run *run, uint64_t value) { run->hypercall.ret = value; }
uint64_t ckvm_run_internal_data(const struct kvm_run *run, unsigned int i) {
    return i < 16 ? run->internal.data[i] : 0;
}
uint64_t ckvm_run_system_event_data(const struct kvm_run *run, unsigned int i) {
    return i < 16 ? run->system_event.data[i] : 0;
}
void ckvm_run_set_msr_data(struct kvm_run *run, uint64_t value) { run->msr.data = value; }
void ckvm_run_set_msr_error(struct kvm_run *run, uint8_t value) { run->msr.error = value; }

void ckvm_dirty_log_set_bitmap(struct kvm_dirty_log *log, void *bitmap) {
    log->dirty_bitmap = bitmap;
}
void ckvm_clear_dirty_log_set_bitmap(struct kvm_clear_dirty_log *log, void *bitmap) {
    log->dirty_bitmap = bitmap;
}
void ckvm_coalesced_mmio_zone_set_pio(struct kvm_coalesced_mmio_zone *zone, uint32_t pio) {
    zone->pio = pio;
}
uint32_t ckvm_coalesced_mmio_pio(const struct kvm_coalesced_mmio *entry) { return entry->pio; }

uint32_t ckvm_load_acquire_u32(const uint32_t *pointer) {
    return __atomic_load_n(pointer, __ATOMIC_ACQUIRE);
}
void ckvm_store_release_u32(uint32_t *pointer, uint32_t value) {
    __atomic_store_n(pointer, value, __ATOMIC_RELEASE);
}
