/*
 * The namespace mode's program filter: the seccomp filter every program of
 * --isolation namespace runs under, built once by the server and handed to
 * bubblewrap (--seccomp FD) in each host container. The only user of
 * libseccomp in the project.
 *
 * The filter is the sandbox's seccomp profile (the Docker engine's default
 * for an unprivileged container, less io_uring: seccomp.json), given as
 * plain rules by its owner, with this module's own policy on top, whatever
 * the rules say:
 *   - no namespace: unshare, setns, and clone with any CLONE_NEW* flag
 *     (clone3 fails with ENOSYS, so that libc falls back to clone);
 *   - no mount: mount, umount2, pivot_root, the new mount API (fsopen,
 *     fsmount, fsconfig, fspick, move_mount, open_tree, mount_setattr);
 *   - no ptrace, no process_vm_readv/writev.
 * These fail with EPERM (ENOSYS for clone3), as everything the profile does
 * not allow. So the filter is at least as strict as the profile.
 *
 * Thread safety: reentrant.
 */
#ifndef PYEXEC_EXECUTOR_NAMESPACE_SECCOMP_FILTER_H
#define PYEXEC_EXECUTOR_NAMESPACE_SECCOMP_FILTER_H

#include <stddef.h>
#include <stdint.h>

#include "server/base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One argument condition, as a Docker profile spells it. */
typedef struct px_seccomp_arg {
    unsigned index;     /* 0..5 */
    const char *op;     /* "SCMP_CMP_EQ", "SCMP_CMP_MASKED_EQ", ... */
    uint64_t value;     /* for MASKED_EQ: the mask */
    uint64_t value_two; /* for MASKED_EQ: what the masked argument must equal */
} px_seccomp_arg;

/* One rule: every name in `names` gets `action` when all `args` hold. */
typedef struct px_seccomp_rule {
    const char *const *names;
    size_t n_names;
    const char *action; /* "SCMP_ACT_ALLOW" or "SCMP_ACT_ERRNO" */
    int errno_ret;      /* for SCMP_ACT_ERRNO; 0: EPERM */
    const px_seccomp_arg *args;
    size_t n_args; /* at most 6 */
} px_seccomp_rule;

/* A profile: the default action must be SCMP_ACT_ERRNO (the sandbox's is;
 * errno EPERM); `arches` are Docker's names ("SCMP_ARCH_X86_64", ...). */
typedef struct px_seccomp_profile {
    const char *const *arches;
    size_t n_arches;
    const px_seccomp_rule *rules;
    size_t n_rules;
} px_seccomp_profile;

/* Builds the program filter from `profile` with this module's policy (see
 * the top) as a classic BPF program, the form bubblewrap's --seccomp reads,
 * into a new buffer (*bpf, *len; malloc'd, owned by the caller). System
 * call names this libseccomp does not know are skipped (they cannot be
 * allowed, so they stay refused). Returns 0, or -1 with `err` set
 * (PX_E_INVALID for a profile it cannot express, PX_E_INTERNAL else). */
int px_ns_filter_build(const px_seccomp_profile *profile, uint8_t **bpf, size_t *len,
                       px_error *err);

#ifdef __cplusplus
}
#endif

#endif
