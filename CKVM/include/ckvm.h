/* CKVM: the mechanical C layer over <linux/kvm.h> for Lockstep's Swift KVM module.
 *
 * Only what Swift cannot do itself lives here:
 *  - ioctl request numbers (function-like _IOR/_IOW macros that Swift does not import),
 *    exported as `extern const unsigned long ckvm_<MACRO>`;
 *  - capability numbers newer than these 6.1 userspace headers, numbered by hand;
 *  - accessors for the anonymous union in `struct kvm_run` and the PIO data area;
 *  - the variadic calls `ioctl` and `syscall(SYS_perf_event_open)`;
 *  - the kick signal handler, which needs a C function and a thread-local pointer.
 * Nothing else: all logic is in Sources/KVM.
 */
#ifndef CKVM_H
#define CKVM_H

#include <stdint.h>
#include <sys/types.h>
#include <linux/kvm.h>
#include <linux/perf_event.h>

/* ---- ioctl request numbers (Swift does not import function-like macros) ---- */

/* /dev/kvm */
extern const unsigned long ckvm_KVM_GET_API_VERSION;
extern const unsigned long ckvm_KVM_CREATE_VM;
extern const unsigned long ckvm_KVM_CHECK_EXTENSION;
extern const unsigned long ckvm_KVM_GET_VCPU_MMAP_SIZE;
extern const unsigned long ckvm_KVM_GET_SUPPORTED_CPUID;
extern const unsigned long ckvm_KVM_GET_MSR_INDEX_LIST;
extern const unsigned long ckvm_KVM_GET_MSR_FEATURE_INDEX_LIST;

/* VM fd */
extern const unsigned long ckvm_KVM_CREATE_VCPU;
extern const unsigned long ckvm_KVM_SET_USER_MEMORY_REGION;
extern const unsigned long ckvm_KVM_GET_DIRTY_LOG;
extern const unsigned long ckvm_KVM_CLEAR_DIRTY_LOG;
extern const unsigned long ckvm_KVM_ENABLE_CAP;
extern const unsigned long ckvm_KVM_X86_SET_MSR_FILTER;
extern const unsigned long ckvm_KVM_GET_STATS_FD;
extern const unsigned long ckvm_KVM_REGISTER_COALESCED_MMIO;
extern const unsigned long ckvm_KVM_UNREGISTER_COALESCED_MMIO;

/* vCPU fd */
extern const unsigned long ckvm_KVM_RUN;
extern const unsigned long ckvm_KVM_GET_REGS;
extern const unsigned long ckvm_KVM_SET_REGS;
extern const unsigned long ckvm_KVM_GET_SREGS;
extern const unsigned long ckvm_KVM_SET_SREGS;
extern const unsigned long ckvm_KVM_GET_FPU;
extern const unsigned long ckvm_KVM_SET_FPU;
extern const unsigned long ckvm_KVM_GET_XSAVE;
extern const unsigned long ckvm_KVM_GET_XSAVE2;
extern const unsigned long ckvm_KVM_SET_XSAVE;
extern const unsigned long ckvm_KVM_GET_XCRS;
extern const unsigned long ckvm_KVM_SET_XCRS;
extern const unsigned long ckvm_KVM_GET_MSRS;
extern const unsigned long ckvm_KVM_SET_MSRS;
extern const unsigned long ckvm_KVM_GET_DEBUGREGS;
extern const unsigned long ckvm_KVM_SET_DEBUGREGS;
extern const unsigned long ckvm_KVM_GET_VCPU_EVENTS;
extern const unsigned long ckvm_KVM_SET_VCPU_EVENTS;
extern const unsigned long ckvm_KVM_GET_MP_STATE;
extern const unsigned long ckvm_KVM_SET_MP_STATE;
extern const unsigned long ckvm_KVM_SET_GUEST_DEBUG;
extern const unsigned long ckvm_KVM_INTERRUPT;
extern const unsigned long ckvm_KVM_NMI;
extern const unsigned long ckvm_KVM_SET_CPUID2;
extern const unsigned long ckvm_KVM_GET_CPUID2;
extern const unsigned long ckvm_KVM_GET_TSC_KHZ;

/* perf_event fd */
extern const unsigned long ckvm_PERF_EVENT_IOC_ENABLE;
extern const unsigned long ckvm_PERF_EVENT_IOC_DISABLE;
extern const unsigned long ckvm_PERF_EVENT_IOC_RESET;
extern const unsigned long ckvm_PERF_EVENT_IOC_PERIOD;

/* ---- Capabilities newer than the 6.1 userspace headers (numbered by hand from the kernel's
 * include/uapi/linux/kvm.h; see shared/kvm-probes/capnames.h). ---- */
enum {
    CKVM_CAP_DIRTY_LOG_RING_WITH_BITMAP = 225,
    CKVM_CAP_PMU_EVENT_MASKED_EVENTS = 226,
    CKVM_CAP_COUNTER_OFFSET = 227,
    CKVM_CAP_USER_MEMORY2 = 231,
    CKVM_CAP_MEMORY_FAULT_INFO = 232,
    CKVM_CAP_MEMORY_ATTRIBUTES = 233,
    CKVM_CAP_GUEST_MEMFD = 234,
    CKVM_CAP_VM_TYPES = 235,
    CKVM_CAP_PRE_FAULT_MEMORY = 236,
    CKVM_CAP_X86_APIC_BUS_CYCLES_NS = 237,
    CKVM_CAP_X86_GUEST_MODE = 238,
};

/* ---- Variadic calls ---- */

/* ioctl(2) with an integer argument: Swift cannot call the variadic C `ioctl`. */
int ckvm_ioctl_val(int fd, unsigned long request, unsigned long value);
/* ioctl(2) with a pointer argument: Swift cannot call the variadic C `ioctl`. */
int ckvm_ioctl_ptr(int fd, unsigned long request, void *pointer);
/* perf_event_open(2): glibc has no wrapper and Swift cannot call the variadic `syscall`. */
int ckvm_perf_event_open(struct perf_event_attr *attr, pid_t pid, int cpu, int group_fd,
                         unsigned long flags);
/* fcntl(fd, F_SETOWN_EX, {F_OWNER_TID, gettid()}): F_SETOWN_EX, struct f_owner_ex and gettid are
 * _GNU_SOURCE-only, which Swift's Glibc module does not import (and fcntl is variadic). */
int ckvm_fcntl_owner_this_thread(int fd);
/* fcntl(fd, F_SETSIG, signo): F_SETSIG is _GNU_SOURCE-only (not imported by Swift's Glibc). */
int ckvm_fcntl_set_signal(int fd, int signo);

/* ---- Kick: a signal that makes the current thread's KVM_RUN return EINTR ---- */

/* Installs the kick handler for `signo` (sigaction, SA_RESTART): a signal handler must be a C
 * function, and it reaches the thread's kvm_run through C thread-local storage. */
int ckvm_install_kick_handler(int signo);
/* Sets this thread's kvm_run for the kick handler: Swift has no `__thread` variables that a
 * signal handler could read. Pass NULL to clear. */
void ckvm_set_thread_run(struct kvm_run *run);

/* ---- struct kvm_run accessors (Swift cannot name the members of kvm_run's anonymous union
 * reliably, and the PIO data area is at a run-time byte offset) ---- */


/* Atomic load of kvm_run.immediate_exit: the kick handler and other threads write it. */
uint8_t ckvm_run_immediate_exit(const struct kvm_run *run);
/* Atomic store of kvm_run.immediate_exit: written from signal handlers and other threads. */
void ckvm_run_set_immediate_exit(struct kvm_run *run, uint8_t value);

/* The kvm_run header fields below are not in the union, but Swift's `pointee.field` may copy the
 * whole shared 2 KiB kvm_run (the kernel writes it); C reads or writes exactly one field. */

/* kvm_run.exit_reason: one-field read of the shared page (see above). */
uint32_t ckvm_run_exit_reason(const struct kvm_run *run);
/* kvm_run.request_interrupt_window: one-field access to the shared page. */
uint8_t ckvm_run_request_interrupt_window(const struct kvm_run *run);
/* Sets kvm_run.request_interrupt_window: one-field access to the shared page. */
void ckvm_run_set_request_interrupt_window(struct kvm_run *run, uint8_t value);
/* kvm_run.ready_for_interrupt_injection: one-field access to the shared page. */
uint8_t ckvm_run_ready_for_interrupt_injection(const struct kvm_run *run);
/* kvm_run.if_flag: one-field access to the shared page. */
uint8_t ckvm_run_if_flag(const struct kvm_run *run);
/* kvm_run.flags: one-field access to the shared page. */
uint16_t ckvm_run_flags(const struct kvm_run *run);
/* kvm_run.cr8: one-field access to the shared page. */
uint64_t ckvm_run_cr8(const struct kvm_run *run);
/* kvm_run.apic_base: one-field access to the shared page. */
uint64_t ckvm_run_apic_base(const struct kvm_run *run);

/* KVM_EXIT_UNKNOWN: hw.hardware_exit_reason (anonymous union member). */
uint64_t ckvm_run_hw_exit_reason(const struct kvm_run *run);
/* KVM_EXIT_FAIL_ENTRY: fail_entry.hardware_entry_failure_reason (anonymous union member). */
uint64_t ckvm_run_fail_entry_reason(const struct kvm_run *run);
/* KVM_EXIT_FAIL_ENTRY: fail_entry.cpu (anonymous union member). */
uint32_t ckvm_run_fail_entry_cpu(const struct kvm_run *run);
/* KVM_EXIT_EXCEPTION: ex.exception (anonymous union member). */
uint32_t ckvm_run_ex_exception(const struct kvm_run *run);
/* KVM_EXIT_EXCEPTION: ex.error_code (anonymous union member). */
uint32_t ckvm_run_ex_error_code(const struct kvm_run *run);

/* KVM_EXIT_IO: io.direction (anonymous union member). */
uint8_t ckvm_run_io_direction(const struct kvm_run *run);
/* KVM_EXIT_IO: io.size (anonymous union member). */
uint8_t ckvm_run_io_size(const struct kvm_run *run);
/* KVM_EXIT_IO: io.port (anonymous union member). */
uint16_t ckvm_run_io_port(const struct kvm_run *run);
/* KVM_EXIT_IO: io.count (anonymous union member). */
uint32_t ckvm_run_io_count(const struct kvm_run *run);
/* KVM_EXIT_IO: io.data_offset, the byte offset of the data area from the start of kvm_run. */
uint64_t ckvm_run_io_data_offset(const struct kvm_run *run);

/* KVM_EXIT_DEBUG: debug.arch.exception (anonymous union member). */
uint32_t ckvm_run_debug_exception(const struct kvm_run *run);
/* KVM_EXIT_DEBUG: debug.arch.pc (anonymous union member). */
uint64_t ckvm_run_debug_pc(const struct kvm_run *run);
/* KVM_EXIT_DEBUG: debug.arch.dr6 (anonymous union member). */
uint64_t ckvm_run_debug_dr6(const struct kvm_run *run);
/* KVM_EXIT_DEBUG: debug.arch.dr7 (anonymous union member). */
uint64_t ckvm_run_debug_dr7(const struct kvm_run *run);

/* KVM_EXIT_MMIO: mmio.phys_addr (anonymous union member). */
uint64_t ckvm_run_mmio_phys_addr(const struct kvm_run *run);
/* KVM_EXIT_MMIO: mmio.len (anonymous union member). */
uint32_t ckvm_run_mmio_len(const struct kvm_run *run);
/* KVM_EXIT_MMIO: mmio.is_write (anonymous union member). */
uint8_t ckvm_run_mmio_is_write(const struct kvm_run *run);
/* KVM_EXIT_MMIO: the 8-byte mmio.data array (anonymous union member; the kernel reads it back
 * for a read at the next KVM_RUN). */
uint8_t *ckvm_run_mmio_data(struct kvm_run *run);

/* KVM_EXIT_HYPERCALL: hypercall.nr (anonymous union member). */
uint64_t ckvm_run_hypercall_nr(const struct kvm_run *run);
/* KVM_EXIT_HYPERCALL: hypercall.args[i], i < 6 (anonymous union member). */
uint64_t ckvm_run_hypercall_arg(const struct kvm_run *run, unsigned int i);
/* KVM_EXIT_HYPERCALL: hypercall.longmode (anonymous union member). */
uint32_t ckvm_run_hypercall_longmode(const struct kvm_run *run);
/* KVM_EXIT_HYPERCALL: sets hypercall.ret for the next KVM_RUN (anonymous union member). */
void ckvm_run_set_hypercall_ret(struct kvm_run *run, uint64_t value);

/* KVM_EXIT_INTERNAL_ERROR: internal.suberror (anonymous union member). */
uint32_t ckvm_run_internal_suberror(const struct kvm_run *run);
/* KVM_EXIT_INTERNAL_ERROR: internal.ndata (anonymous union member). */
uint32_t ckvm_run_internal_ndata(const struct kvm_run *run);
/* KVM_EXIT_INTERNAL_ERROR: internal.data[i], i < 16 (anonymous union member). */
uint64_t ckvm_run_internal_data(const struct kvm_run *run, unsigned int i);

/* KVM_EXIT_SYSTEM_EVENT: system_event.type (anonymous union member). */
uint32_t ckvm_run_system_event_type(const struct kvm_run *run);
/* KVM_EXIT_SYSTEM_EVENT: system_event.ndata (anonymous union member). */
uint32_t ckvm_run_system_event_ndata(const struct kvm_run *run);
/* KVM_EXIT_SYSTEM_EVENT: system_event.data[i], i < 16 (nested anonymous union member). */
uint64_t ckvm_run_system_event_data(const struct kvm_run *run, unsigned int i);

/* KVM_EXIT_X86_RDMSR/WRMSR: msr.reason (anonymous union member). */
uint32_t ckvm_run_msr_reason(const struct kvm_run *run);
/* KVM_EXIT_X86_RDMSR/WRMSR: msr.index (anonymous union member). */
uint32_t ckvm_run_msr_index(const struct kvm_run *run);
/* KVM_EXIT_X86_RDMSR/WRMSR: msr.data (anonymous union member). */
uint64_t ckvm_run_msr_data(const struct kvm_run *run);
/* KVM_EXIT_X86_RDMSR: sets msr.data for the next KVM_RUN (anonymous union member). */
void ckvm_run_set_msr_data(struct kvm_run *run, uint64_t value);
/* KVM_EXIT_X86_RDMSR/WRMSR: sets msr.error (1 = inject #GP) for the next KVM_RUN. */
void ckvm_run_set_msr_error(struct kvm_run *run, uint8_t value);

/* KVM_EXIT_TPR_ACCESS: tpr_access.rip (anonymous union member). */
uint64_t ckvm_run_tpr_access_rip(const struct kvm_run *run);
/* KVM_EXIT_TPR_ACCESS: tpr_access.is_write (anonymous union member). */
uint32_t ckvm_run_tpr_access_is_write(const struct kvm_run *run);
/* KVM_EXIT_IOAPIC_EOI: eoi.vector (anonymous union member). */
uint8_t ckvm_run_eoi_vector(const struct kvm_run *run);
/* KVM_EXIT_NOTIFY: notify.flags (anonymous union member). */
uint32_t ckvm_run_notify_flags(const struct kvm_run *run);

/* ---- Rings shared with the kernel ---- */

/* Acquire load of a ring index the kernel produces: Swift cannot do atomic accesses on memory
 * it does not own (the coalesced MMIO ring page). */
uint32_t ckvm_load_acquire_u32(const uint32_t *pointer);
/* Release store of a ring index the kernel consumes: Swift cannot do atomic accesses on memory
 * it does not own. */
void ckvm_store_release_u32(uint32_t *pointer, uint32_t value);

/* ---- Anonymous unions in other structs ---- */

/* Sets kvm_dirty_log.dirty_bitmap, a member of an anonymous union. */
void ckvm_dirty_log_set_bitmap(struct kvm_dirty_log *log, void *bitmap);
/* Sets kvm_clear_dirty_log.dirty_bitmap, a member of an anonymous union. */
void ckvm_clear_dirty_log_set_bitmap(struct kvm_clear_dirty_log *log, void *bitmap);
/* Sets kvm_coalesced_mmio_zone.pio, a member of an anonymous union. */
void ckvm_coalesced_mmio_zone_set_pio(struct kvm_coalesced_mmio_zone *zone, uint32_t pio);
/* kvm_coalesced_mmio.pio, a member of an anonymous union. */
uint32_t ckvm_coalesced_mmio_pio(const struct kvm_coalesced_mmio *entry);

#endif
