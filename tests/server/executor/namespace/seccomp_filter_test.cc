// The namespace mode's program filter: built from a profile, installed in a
// forked child (as bubblewrap installs it), it refuses what its policy
// refuses whatever the profile allows, and allows what the profile allows.
#include <errno.h>
#include <linux/filter.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/seccomp.h>

#include <string>

#include <gtest/gtest.h>

#include "server/executor/namespace/seccomp_filter.h"

namespace {

// A profile that allows everything a test child needs and, on purpose,
// everything the policy refuses: the filter must refuse those anyway.
const char *const kAllowed[] = {
    "read",  "write",   "exit",  "exit_group", "getpid", "rt_sigreturn", "brk",   "mmap",  "munmap",
    "clone", "unshare", "setns", "mount",      "ptrace", "wait4",        "futex", "getuid"};
const char *const kArches[] = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"};

struct Filter {
    uint8_t *bpf = nullptr;
    size_t len = 0;
    ~Filter() { free(bpf); }
};

void Build(Filter *f) {
    px_seccomp_rule rule = {
        kAllowed, sizeof kAllowed / sizeof *kAllowed, "SCMP_ACT_ALLOW", 0, nullptr, 0};
    px_seccomp_profile profile = {kArches, 3, &rule, 1};
    px_error err = PX_ERROR_INIT;
    ASSERT_EQ(px_ns_filter_build(&profile, &f->bpf, &f->len, &err), 0) << err.msg;
    ASSERT_GT(f->len, 0u);
    ASSERT_EQ(f->len % sizeof(struct sock_filter), 0u);
}

// Ends the child with a bare exit_group: under a sanitizer, _exit() runs the
// runtime's exit hooks (the leak check stops the world with clone and
// ptrace), which the filter refuses, and the child would hang or crash.
[[noreturn]] void RawExit(int code) {
    syscall(SYS_exit_group, code);
    __builtin_unreachable();
}

// Runs `call` in a child under the filter; returns the errno it failed
// with (0 if it succeeded), or -1 if the child died otherwise.
int ErrnoUnder(const Filter &f, long (*call)()) {
    pid_t pid = fork();
    if (pid == 0) {
        struct sock_fprog prog = {(unsigned short)(f.len / sizeof(struct sock_filter)),
                                  (struct sock_filter *)f.bpf};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
            prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
            RawExit(200);
        long rc = call();
        RawExit(rc == 0 ? 0 : (errno > 0 && errno < 200 ? errno : 201));
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

TEST(NsFilter, AllowsWhatTheProfileAllows) {
    Filter f;
    Build(&f);
    EXPECT_EQ(ErrnoUnder(f, [] { return syscall(SYS_getuid) >= 0 ? 0L : -1L; }), 0);
}

TEST(NsFilter, RefusesWhatTheProfileDoesNotName) {
    Filter f;
    Build(&f);
    EXPECT_EQ(ErrnoUnder(f, [] { return syscall(SYS_getppid) >= 0 ? 0L : -1L; }), EPERM);
}

TEST(NsFilter, RefusesNamespacesMountsAndPtraceThoughTheProfileAllowsThem) {
    Filter f;
    Build(&f);
    EXPECT_EQ(ErrnoUnder(f, [] { return syscall(SYS_unshare, CLONE_NEWUSER); }), EPERM);
    EXPECT_EQ(ErrnoUnder(f, [] { return syscall(SYS_setns, 0, 0); }), EPERM);
    EXPECT_EQ(ErrnoUnder(f, [] { return syscall(SYS_mount, "none", "/", "tmpfs", 0, 0); }), EPERM);
    EXPECT_EQ(ErrnoUnder(f, [] { return syscall(SYS_ptrace, 0 /* TRACEME */, 0, 0, 0); }), EPERM);
    EXPECT_EQ(
        ErrnoUnder(f,
                   [] { return syscall(SYS_clone, (long)(CLONE_NEWUSER | SIGCHLD), 0, 0, 0, 0); }),
        EPERM);
    EXPECT_EQ(ErrnoUnder(f, [] { return syscall(SYS_clone3, nullptr, 0); }), ENOSYS);
}

TEST(NsFilter, AllowsCloneWithoutNamespaceFlags) {
    Filter f;
    Build(&f);
    EXPECT_EQ(ErrnoUnder(f,
                         [] {
                             long pid = syscall(SYS_clone, (long)SIGCHLD, 0, 0, 0, 0);
                             if (pid == 0)
                                 syscall(SYS_exit_group, 0);
                             return pid > 0 ? 0L : -1L;
                         }),
              0);
}

TEST(NsFilter, RefusesAnActionItCannotExpress) {
    const char *names[] = {"getpid"};
    px_seccomp_rule rule = {names, 1, "SCMP_ACT_TRACE", 0, nullptr, 0};
    px_seccomp_profile profile = {kArches, 3, &rule, 1};
    uint8_t *bpf = nullptr;
    size_t len = 0;
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_ns_filter_build(&profile, &bpf, &len, &err), -1);
    EXPECT_EQ(err.code, PX_E_INVALID);
    EXPECT_NE(std::string(err.msg).find("SCMP_ACT_TRACE"), std::string::npos) << err.msg;
}

} // namespace
