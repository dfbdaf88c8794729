/*
 * The namespace mode's program filter (see seccomp_filter.h).
 */
#include "server/executor/namespace/seccomp_filter.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/base/cleanup.h"

/* Refused with EPERM whatever the profile allows (seccomp_filter.h). */
static const char *const denied[] = {
    "unshare",           "setns",     "mount",         "umount",   "umount2",
    "pivot_root",        "fsopen",    "fsmount",       "fsconfig", "fspick",
    "move_mount",        "open_tree", "mount_setattr", "ptrace",   "process_vm_readv",
    "process_vm_writev",
};

/* Every CLONE_NEW* flag: clone with any of them is refused. */
#define CLONE_NS_FLAGS                                                                             \
    ((uint64_t)(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |      \
                CLONE_NEWPID | CLONE_NEWNET | 0x00000080 /* CLONE_NEWTIME */))

static void ctx_releasep(scmp_filter_ctx *c) {
    if (*c)
        seccomp_release(*c);
}

static void fd_closep(int *fd) {
    if (*fd >= 0)
        close(*fd);
}

static bool is_denied(const char *name) {
    for (size_t i = 0; i < PX_ARRAY_SIZE(denied); i++)
        if (strcmp(denied[i], name) == 0)
            return true;
    return strcmp(name, "clone") == 0 || strcmp(name, "clone3") == 0;
}

static int arch_of(const char *name, uint32_t *arch) {
    static const struct {
        const char *name;
        uint32_t arch;
    } arches[] = {
        {"SCMP_ARCH_X86_64", SCMP_ARCH_X86_64}, {"SCMP_ARCH_X86", SCMP_ARCH_X86},
        {"SCMP_ARCH_X32", SCMP_ARCH_X32},       {"SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64},
        {"SCMP_ARCH_ARM", SCMP_ARCH_ARM},
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(arches); i++) {
        if (strcmp(arches[i].name, name) == 0) {
            *arch = arches[i].arch;
            return 0;
        }
    }
    return -1;
}

static int op_of(const char *name, enum scmp_compare *op) {
    static const struct {
        const char *name;
        enum scmp_compare op;
    } ops[] = {
        {"SCMP_CMP_NE", SCMP_CMP_NE},
        {"SCMP_CMP_LT", SCMP_CMP_LT},
        {"SCMP_CMP_LE", SCMP_CMP_LE},
        {"SCMP_CMP_EQ", SCMP_CMP_EQ},
        {"SCMP_CMP_GE", SCMP_CMP_GE},
        {"SCMP_CMP_GT", SCMP_CMP_GT},
        {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(ops); i++) {
        if (strcmp(ops[i].name, name) == 0) {
            *op = ops[i].op;
            return 0;
        }
    }
    return -1;
}

/* Adds one rule of the profile, skipping names this module's policy owns
 * and names libseccomp does not know. */
static int add_rule(scmp_filter_ctx ctx, const px_seccomp_rule *r, px_error *err) {
    uint32_t action;
    if (strcmp(r->action, "SCMP_ACT_ALLOW") == 0)
        action = SCMP_ACT_ALLOW;
    else if (strcmp(r->action, "SCMP_ACT_ERRNO") == 0)
        action = SCMP_ACT_ERRNO((uint16_t)(r->errno_ret > 0 ? r->errno_ret : EPERM));
    else
        return px_error_set(err, PX_E_INVALID, "action '%s' is not supported", r->action);
    if (action == SCMP_ACT_ERRNO(EPERM))
        return 0; /* the default already */
    if (r->n_args > 6)
        return px_error_set(err, PX_E_INVALID, "a rule has %zu argument conditions", r->n_args);
    struct scmp_arg_cmp cmp[6];
    for (size_t i = 0; i < r->n_args; i++) {
        enum scmp_compare op;
        if (r->args[i].index > 5 || op_of(r->args[i].op, &op) < 0)
            return px_error_set(err, PX_E_INVALID, "argument condition '%s' on index %u",
                                r->args[i].op, r->args[i].index);
        cmp[i] = (struct scmp_arg_cmp){r->args[i].index, op, r->args[i].value,
                                       r->args[i].value_two};
    }
    for (size_t i = 0; i < r->n_names; i++) {
        if (is_denied(r->names[i]))
            continue;
        int nr = seccomp_syscall_resolve_name(r->names[i]);
        if (nr == __NR_SCMP_ERROR)
            continue;
        int rc = seccomp_rule_add_array(ctx, action, nr, (unsigned)r->n_args, cmp);
        if (rc < 0)
            return px_error_set_errno(err, PX_E_INVALID, -rc, "rule for '%s'", r->names[i]);
    }
    return 0;
}

/* This module's own rules: clone only without namespace flags, clone3
 * ENOSYS (its flags are in memory, out of a filter's reach). */
static int add_policy(scmp_filter_ctx ctx, px_error *err) {
    int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NS_FLAGS, 0));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    if (rc < 0)
        return px_error_set_errno(err, PX_E_INTERNAL, -rc, "clone rules");
    return 0;
}

/* The filter as BPF, through a memory file (libseccomp writes to an fd). */
static int export_bpf(scmp_filter_ctx ctx, uint8_t **bpf, size_t *len, px_error *err) {
    __attribute__((cleanup(fd_closep))) int fd = memfd_create("pyexec-filter", MFD_CLOEXEC);
    if (fd < 0)
        return px_error_set_errno(err, PX_E_INTERNAL, errno, "memfd_create");
    int rc = seccomp_export_bpf(ctx, fd);
    if (rc < 0)
        return px_error_set_errno(err, PX_E_INTERNAL, -rc, "seccomp_export_bpf");
    struct stat st;
    if (fstat(fd, &st) < 0)
        return px_error_set_errno(err, PX_E_INTERNAL, errno, "fstat");
    _cleanup_free_ uint8_t *buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
    if (!buf)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    ssize_t n = pread(fd, buf, (size_t)st.st_size, 0);
    if (n != st.st_size)
        return px_error_set_errno(err, PX_E_INTERNAL, n < 0 ? errno : EIO, "read the filter");
    *bpf = TAKE_PTR(buf);
    *len = (size_t)n;
    return 0;
}

int px_ns_filter_build(const px_seccomp_profile *profile, uint8_t **bpf, size_t *len,
                       px_error *err) {
    __attribute__((cleanup(ctx_releasep)))
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (!ctx)
        return px_error_set(err, PX_E_INTERNAL, "program filter: seccomp_init failed");
    for (size_t i = 0; i < profile->n_arches; i++) {
        uint32_t arch;
        if (arch_of(profile->arches[i], &arch) < 0)
            return px_error_set(err, PX_E_INVALID, "program filter: unknown architecture '%s'",
                                profile->arches[i]);
        int rc = seccomp_arch_add(ctx, arch);
        if (rc < 0 && rc != -EEXIST)
            return px_error_set_errno(err, PX_E_INTERNAL, -rc, "program filter: add '%s'",
                                      profile->arches[i]);
    }
    for (size_t i = 0; i < profile->n_rules; i++)
        if (add_rule(ctx, &profile->rules[i], err) < 0)
            return px_error_wrap(err, "program filter");
    if (add_policy(ctx, err) < 0 || export_bpf(ctx, bpf, len, err) < 0)
        return px_error_wrap(err, "program filter");
    return 0;
}
