//! Seccomp profiles for `securityContext.seccompProfile`, as OCI `linux.seccomp`.
//!
//! - `RuntimeDefault`: [`runtime_default`], the profile containerd 1.6 gives a container
//!   (`contrib/seccomp` in containerd): every syscall is refused with `EPERM` except a large
//!   allow-list; `personality` only with the usual personas; syscalls that need a capability
//!   (`mount`, `unshare`, `setns`, `bpf`, `ptrace` ...) only when the container's bounding
//!   set holds it; without `CAP_SYS_ADMIN`, `clone` may not create namespaces and `clone3`
//!   fails with `ENOSYS` so that libcs fall back to `clone`.
//! - `Unconfined`: no filter.
//! - `Localhost`: a JSON profile file (OCI `LinuxSeccomp`, or Docker's format with `archMap`,
//!   `includes` and `excludes`) at `localhostProfile` under podctl's seccomp root,
//!   `/etc/podctl/seccomp` or `$PODCTL_SECCOMP_ROOT` ([`root`]), as the kubelet reads
//!   `<seccompProfileRoot>/<localhostProfile>`.
//!
//! **podctl's default is `RuntimeDefault`**: a container whose pod and container set no
//! `seccompProfile` is filtered, as with the kubelet's `--seccomp-default`. A container that
//! needs no filter says `type: Unconfined`. A privileged container is never filtered
//! (containerd does the same).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::SeccompProfile;
use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall,
};
use serde::Deserialize;

/// Where `Localhost` profiles live unless [`ROOT_ENV`] says otherwise.
pub const DEFAULT_ROOT: &str = "/etc/podctl/seccomp";

/// Environment variable naming another seccomp root (tests, packaging); read by [`root`] only.
pub const ROOT_ENV: &str = "PODCTL_SECCOMP_ROOT";

/// The directory `localhostProfile` paths are relative to.
pub fn root() -> PathBuf {
    std::env::var_os(ROOT_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT))
}

/// The profile a container runs under, after Kubernetes' precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile<'a> {
    RuntimeDefault,
    Unconfined,
    /// `localhostProfile`, relative to [`root`].
    Localhost(&'a str),
}

/// The container's `seccompProfile` if set, else the pod's, else `RuntimeDefault`; with
/// the manifest path of the field that decided (`None` for the default). Validation has
/// refused unknown types and a `Localhost` without `localhostProfile`.
pub fn effective<'a>(
    pod: Option<&'a SeccompProfile>,
    pod_path: &str,
    container: Option<&'a SeccompProfile>,
    container_path: &str,
) -> (Profile<'a>, Option<String>) {
    let (chosen, path) = match (container, pod) {
        (Some(c), _) => (c, container_path),
        (None, Some(p)) => (p, pod_path),
        (None, None) => return (Profile::RuntimeDefault, None),
    };
    let profile = match chosen.type_.as_str() {
        "Unconfined" => Profile::Unconfined,
        "Localhost" => Profile::Localhost(chosen.localhost_profile.as_deref().unwrap_or("")),
        _ => Profile::RuntimeDefault,
    };
    (profile, Some(format!("{path}.seccompProfile")))
}

/// Why a `Localhost` profile file cannot be used; the caller names the field and the file.
#[derive(Debug, thiserror::Error)]
pub enum ProfileFileError {
    #[error("cannot read it")]
    Read(#[source] std::io::Error),
    #[error("not a seccomp profile")]
    Parse(#[source] serde_json::Error),
    #[error("{0}")]
    Invalid(String),
}

/// Reads the `Localhost` profile `root/relative` and resolves it for a container whose
/// bounding set is `caps` (Docker's `includes`/`excludes` depend on it).
pub fn localhost(
    root: &Path,
    relative: &str,
    caps: &HashSet<Capability>,
) -> Result<(PathBuf, LinuxSeccomp), (PathBuf, ProfileFileError)> {
    let path = root.join(relative);
    let fail = |e| (path.clone(), e);
    let text = std::fs::read(&path).map_err(|e| fail(ProfileFileError::Read(e)))?;
    let file: ProfileFile =
        serde_json::from_slice(&text).map_err(|e| fail(ProfileFileError::Parse(e)))?;
    let seccomp = file
        .resolve(&Host::current(), caps)
        .map_err(|e| fail(ProfileFileError::Invalid(e)))?;
    Ok((path, seccomp))
}

/// A profile file: the OCI `LinuxSeccomp` fields plus Docker's extensions. Unknown fields
/// are refused: a misspelt field would otherwise silently weaken the filter.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProfileFile {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Option<Vec<Arch>>,
    /// Docker: the architectures to filter, chosen by the native one.
    #[serde(default)]
    arch_map: Option<Vec<ArchMapEntry>>,
    #[serde(default)]
    flags: Option<Vec<LinuxSeccompFilterFlag>>,
    #[serde(default)]
    listener_path: Option<PathBuf>,
    #[serde(default)]
    listener_metadata: Option<String>,
    #[serde(default)]
    syscalls: Option<Vec<SyscallRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ArchMapEntry {
    architecture: Arch,
    #[serde(default)]
    sub_architectures: Option<Vec<Arch>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SyscallRule {
    #[serde(default)]
    names: Vec<String>,
    /// Docker's older single-name form.
    #[serde(default)]
    name: Option<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<LinuxSeccompArg>>,
    #[serde(default)]
    #[allow(dead_code)] // documentation inside the file
    comment: Option<String>,
    #[serde(default)]
    includes: Option<Filter>,
    #[serde(default)]
    excludes: Option<Filter>,
}

/// Docker's conditions on a rule: architectures (Go's names: `amd64`, `arm64` ...),
/// capabilities (`CAP_SYS_ADMIN`), a minimum kernel (`4.8`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Filter {
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// What a profile depends on besides the container: the machine podctl runs on.
#[derive(Debug, Clone)]
struct Host {
    /// Go's name of the native architecture, which Docker profiles use.
    go_arch: &'static str,
    /// `major.minor` of the running kernel, when known.
    kernel: Option<(u32, u32)>,
}

impl Host {
    fn current() -> Host {
        Host {
            go_arch: go_arch(std::env::consts::ARCH),
            kernel: kernel_version(),
        }
    }

    fn kernel_at_least(&self, min: &str) -> Result<bool, String> {
        let want = parse_kernel(min).ok_or_else(|| format!("invalid minKernel {min:?}"))?;
        Ok(self.kernel.is_some_and(|k| k >= want))
    }
}

impl ProfileFile {
    /// The OCI form of the file for this host and bounding set, as Docker resolves it.
    fn resolve(self, host: &Host, caps: &HashSet<Capability>) -> Result<LinuxSeccomp, String> {
        let has_cap = |name: &String| parse_capability(name).is_some_and(|c| caps.contains(&c));
        let architectures = match (self.architectures, self.arch_map) {
            (Some(a), Some(m)) if !a.is_empty() && !m.is_empty() => {
                return Err("both 'architectures' and 'archMap' are set; use one".to_owned())
            }
            (_, Some(map)) if !map.is_empty() => {
                let native = native_arches(host.go_arch).first().copied();
                let mut out = Vec::new();
                for entry in map.into_iter().filter(|e| Some(e.architecture) == native) {
                    out.push(entry.architecture);
                    out.extend(entry.sub_architectures.unwrap_or_default());
                }
                Some(out)
            }
            (a, _) => a,
        };
        let mut syscalls = Vec::new();
        for rule in self.syscalls.unwrap_or_default() {
            let names = match rule.name {
                Some(_) if !rule.names.is_empty() => {
                    return Err("a syscall rule sets both 'name' and 'names'; use one".to_owned())
                }
                Some(name) => vec![name],
                None => rule.names,
            };
            if let Some(ex) = &rule.excludes {
                if ex.arches.iter().any(|a| a == host.go_arch) || ex.caps.iter().any(has_cap) {
                    continue;
                }
                if let Some(min) = &ex.min_kernel {
                    if host.kernel_at_least(min)? {
                        continue;
                    }
                }
            }
            if let Some(inc) = &rule.includes {
                if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == host.go_arch) {
                    continue;
                }
                if !inc.caps.iter().all(has_cap) {
                    continue;
                }
                if let Some(min) = &inc.min_kernel {
                    if !host.kernel_at_least(min)? {
                        continue;
                    }
                }
            }
            let mut call = rule_of(&names, rule.action);
            call.set_errno_ret(rule.errno_ret);
            call.set_args(rule.args);
            syscalls.push(call);
        }
        let mut seccomp = LinuxSeccomp::default();
        seccomp.set_default_action(self.default_action);
        seccomp.set_default_errno_ret(self.default_errno_ret);
        seccomp.set_architectures(architectures);
        seccomp.set_flags(self.flags);
        seccomp.set_listener_path(self.listener_path);
        seccomp.set_listener_metadata(self.listener_metadata);
        seccomp.set_syscalls(Some(syscalls));
        Ok(seccomp)
    }
}

/// `CAP_SYS_ADMIN` or `SYS_ADMIN`, any case.
fn parse_capability(name: &str) -> Option<Capability> {
    let upper = name.to_ascii_uppercase();
    upper
        .strip_prefix("CAP_")
        .unwrap_or(&upper)
        .parse::<Capability>()
        .ok()
}

/// Rust's name of an architecture as Go (and so Docker's profiles) spells it.
fn go_arch(rust_arch: &'static str) -> &'static str {
    match rust_arch {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The architectures containerd's default profile filters on a host of `go_arch`, native
/// first (containerd's `arches()`; a 64-bit kernel also runs the 32-bit ABIs).
fn native_arches(go_arch: &str) -> &'static [Arch] {
    match go_arch {
        "amd64" => &[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        "arm64" => &[Arch::ScmpArchAarch64, Arch::ScmpArchArm],
        "s390x" => &[Arch::ScmpArchS390x, Arch::ScmpArchS390],
        "riscv64" => &[Arch::ScmpArchRiscv64],
        _ => &[],
    }
}

/// `major.minor` of the running kernel (`/proc/sys/kernel/osrelease`, e.g. `6.8.0-45-generic`).
pub(crate) fn kernel_version() -> Option<(u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    parse_kernel(release.trim())
}

/// `major.minor` from a release string such as `6.8.0-45-generic` or `4.8`.
pub(crate) fn parse_kernel(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

fn rule_of(names: &[impl AsRef<str>], action: LinuxSeccompAction) -> LinuxSyscall {
    let mut call = LinuxSyscall::default();
    call.set_names(names.iter().map(|n| n.as_ref().to_owned()).collect());
    call.set_action(action);
    call.set_errno_ret(None);
    call.set_args(None);
    call
}

fn arg(
    index: usize,
    value: u64,
    value_two: Option<u64>,
    op: LinuxSeccompOperator,
) -> LinuxSeccompArg {
    let builder = LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .op(op);
    match value_two {
        Some(v) => builder.value_two(v),
        None => builder,
    }
    .build()
    .expect("every field of a seccomp arg is set")
}

/// Syscalls containerd's default profile allows every container.
#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat", "capget",
    "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64",
    "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64",
    "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range", "connect",
    "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1",
    "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old",
    "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat",
    "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod",
    "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync",
    "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64",
    "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex",
    "futex_requeue", "futex_time64", "futex_wait", "futex_waitv", "futex_wake", "futimesat",
    "getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32", "geteuid",
    "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer", "getpeername",
    "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid",
    "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage",
    "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday",
    "getuid", "getuid32", "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
    "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit",
    "io_uring_enter", "io_uring_register", "io_uring_setup", "ipc", "kill",
    "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown",
    "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr", "_llseek",
    "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise", "membarrier",
    "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock",
    "mlock2", "mlockall", "map_shadow_stack", "mmap", "mmap2", "mprotect", "mq_getsetattr",
    "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
    "mq_timedsend_time64", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd",
    "msync", "munlock", "munlockall", "munmap", "name_to_handle_at", "nanosleep",
    "newfstatat", "_newselect", "open", "openat", "openat2", "pause", "pidfd_open",
    "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll",
    "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
    "process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev", "pwritev2",
    "read", "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg",
    "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat",
    "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
    "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler",
    "sched_yield", "seccomp", "select", "semctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto",
    "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups",
    "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
    "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32",
    "setrlimit", "set_robust_list", "setsid", "setsockopt", "set_thread_area",
    "set_tid_address", "setuid", "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget",
    "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socket",
    "socketcall", "socketpair", "splice", "stat", "stat64", "statfs", "statfs64", "statx",
    "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill",
    "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
    "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime",
    "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate",
    "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "utime", "utimensat",
    "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write",
    "writev",
];

/// `personality(2)` personas the default profile allows: `PER_LINUX`, `PER_LINUX32`,
/// `UNAME26`, `PER_LINUX32|UNAME26`, and the query `0xffffffff`.
const PERSONAS: [u64; 5] = [0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// Extra syscalls per native architecture (Go's names).
fn arch_syscalls(go_arch: &str) -> &'static [&'static str] {
    match go_arch {
        "ppc64le" => &["sync_file_range2", "swapcontext"],
        "arm" | "arm64" => &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
        "amd64" => &["arch_prctl", "modify_ldt"],
        "386" => &["modify_ldt"],
        "s390" | "s390x" => &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
        "riscv64" => &["riscv_flush_icache"],
        _ => &[],
    }
}

/// Syscalls the default profile allows only with a capability in the bounding set.
const BY_CAPABILITY: &[(Capability, &[&str])] = &[
    (Capability::DacReadSearch, &["open_by_handle_at"]),
    (
        Capability::SysAdmin,
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    (Capability::SysBoot, &["reboot"]),
    (Capability::SysChroot, &["chroot"]),
    (
        Capability::SysModule,
        &["delete_module", "init_module", "finit_module"],
    ),
    (Capability::SysPacct, &["acct"]),
    (
        Capability::SysPtrace,
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    (Capability::SysRawio, &["iopl", "ioperm"]),
    (
        Capability::SysTime,
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    (Capability::SysTtyConfig, &["vhangup"]),
    (
        Capability::SysNice,
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    (Capability::Syslog, &["syslog"]),
    (Capability::Bpf, &["bpf"]),
    (Capability::Perfmon, &["perf_event_open"]),
];

/// The namespace flags of `clone(2)` a container without `CAP_SYS_ADMIN` may not pass:
/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
/// CLONE_NEWPID | CLONE_NEWNET`.
const CLONE_NAMESPACE_FLAGS: u64 =
    0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000;

/// What `clone3` returns without `CAP_SYS_ADMIN`, so that libcs fall back to `clone`, whose
/// flags the filter can see (`clone3` passes them in memory).
const ENOSYS: u32 = libc::ENOSYS as u32;

/// containerd's default profile for a container whose bounding set is `caps`, on this host.
pub fn runtime_default(caps: &HashSet<Capability>) -> LinuxSeccomp {
    default_for(&Host::current(), caps)
}

fn default_for(host: &Host, caps: &HashSet<Capability>) -> LinuxSeccomp {
    let allow = LinuxSeccompAction::ScmpActAllow;
    let mut syscalls = vec![rule_of(ALLOWED, allow)];
    for persona in PERSONAS {
        let mut rule = rule_of(&["personality"], allow);
        rule.set_args(Some(vec![arg(
            0,
            persona,
            None,
            LinuxSeccompOperator::ScmpCmpEq,
        )]));
        syscalls.push(rule);
    }
    // ptrace became safe to allow with 4.8, which stopped it bypassing seccomp.
    if host.kernel.is_some_and(|k| k >= (4, 8)) {
        syscalls.push(rule_of(&["ptrace"], allow));
    }
    let by_arch = arch_syscalls(host.go_arch);
    if !by_arch.is_empty() {
        syscalls.push(rule_of(by_arch, allow));
    }
    for (cap, names) in BY_CAPABILITY {
        if caps.contains(cap) {
            syscalls.push(rule_of(names, allow));
        }
    }
    if !caps.contains(&Capability::SysAdmin) {
        // s390's clone takes the flags as its second argument.
        let flags_arg = if host.go_arch.starts_with("s390") {
            1
        } else {
            0
        };
        let mut clone = rule_of(&["clone"], allow);
        clone.set_args(Some(vec![arg(
            flags_arg,
            CLONE_NAMESPACE_FLAGS,
            Some(0),
            LinuxSeccompOperator::ScmpCmpMaskedEq,
        )]));
        syscalls.push(clone);
        let mut clone3 = rule_of(&["clone3"], LinuxSeccompAction::ScmpActErrno);
        clone3.set_errno_ret(Some(ENOSYS));
        syscalls.push(clone3);
    }
    let mut seccomp = LinuxSeccomp::default();
    seccomp.set_default_action(LinuxSeccompAction::ScmpActErrno);
    seccomp.set_default_errno_ret(None);
    seccomp.set_architectures(Some(native_arches(host.go_arch).to_vec()));
    seccomp.set_flags(None);
    seccomp.set_listener_path(None);
    seccomp.set_listener_metadata(None);
    seccomp.set_syscalls(Some(syscalls));
    seccomp
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn amd64() -> Host {
        Host {
            go_arch: "amd64",
            kernel: Some((6, 8)),
        }
    }

    fn caps(list: &[Capability]) -> HashSet<Capability> {
        list.iter().copied().collect()
    }

    fn allowed(s: &LinuxSeccomp, name: &str) -> Vec<LinuxSyscall> {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|c| c.names().iter().any(|n| n == name))
            .cloned()
            .collect()
    }

    #[test]
    fn default_profile_is_containerds() {
        let s = default_for(&amd64(), &caps(&crate::oci::DEFAULT_CAPABILITIES));
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
        let everyday = &s.syscalls().as_ref().unwrap()[0];
        assert_eq!(everyday.names().len(), ALLOWED.len());
        assert!(everyday.args().is_none());
        for name in ["read", "execve", "socket", "setns", "unshare", "mount"] {
            let rules = allowed(&s, name);
            let plain = rules
                .iter()
                .any(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none());
            let want = matches!(name, "read" | "execve" | "socket");
            assert_eq!(plain, want, "{name}");
        }
        // CAP_SYS_CHROOT is a default capability: chroot is allowed; arch_prctl on amd64.
        assert_eq!(allowed(&s, "chroot").len(), 1);
        assert_eq!(allowed(&s, "arch_prctl").len(), 1);
        assert_eq!(allowed(&s, "ptrace").len(), 1);
        assert_eq!(allowed(&s, "personality").len(), 5);

        // No CAP_SYS_ADMIN: clone without namespace flags only, clone3 gets ENOSYS.
        let clone = allowed(&s, "clone");
        assert_eq!(clone.len(), 1);
        let a = clone[0].args().as_ref().unwrap()[0];
        assert_eq!(
            (a.index(), a.value(), a.value_two(), a.op()),
            (
                0,
                0x7E02_0000,
                Some(0),
                LinuxSeccompOperator::ScmpCmpMaskedEq
            )
        );
        let clone3 = allowed(&s, "clone3");
        assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3[0].errno_ret(), Some(libc::ENOSYS as u32));

        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(json["architectures"][0], "SCMP_ARCH_X86_64");
        assert_eq!(json["syscalls"][1]["args"][0]["op"], "SCMP_CMP_EQ");
    }

    #[test]
    fn capabilities_open_their_syscalls() {
        let s = default_for(
            &amd64(),
            &caps(&[Capability::SysAdmin, Capability::SysPtrace, Capability::Bpf]),
        );
        for name in [
            "unshare", "setns", "mount", "clone", "clone3", "kcmp", "bpf",
        ] {
            assert!(
                allowed(&s, name)
                    .iter()
                    .any(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none()),
                "{name}"
            );
        }
        // With CAP_SYS_ADMIN, neither the clone filter nor the clone3 errno is added.
        assert!(allowed(&s, "clone").iter().all(|r| r.args().is_none()));
        assert!(allowed(&s, "clone3")
            .iter()
            .all(|r| r.action() == LinuxSeccompAction::ScmpActAllow));
        assert!(allowed(&s, "chroot").is_empty());
        assert!(allowed(&s, "reboot").is_empty());
    }

    #[test]
    fn arch_and_kernel_variants() {
        let arm = Host {
            go_arch: "arm64",
            kernel: Some((4, 4)),
        };
        let s = default_for(&arm, &HashSet::new());
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
        );
        assert_eq!(allowed(&s, "cacheflush").len(), 1);
        assert!(allowed(&s, "arch_prctl").is_empty());
        // Before 4.8 ptrace could bypass seccomp: not allowed.
        assert!(allowed(&s, "ptrace").is_empty());
        let s390 = Host {
            go_arch: "s390x",
            kernel: None,
        };
        let s = default_for(&s390, &HashSet::new());
        assert_eq!(
            allowed(&s, "clone")[0].args().as_ref().unwrap()[0].index(),
            1
        );
    }

    fn resolve(v: serde_json::Value, caps: &HashSet<Capability>) -> Result<LinuxSeccomp, String> {
        let file: ProfileFile = serde_json::from_value(v).map_err(|e| e.to_string())?;
        file.resolve(&amd64(), caps)
    }

    #[test]
    fn oci_profile_files_are_taken_as_written() {
        let s = resolve(
            json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "defaultErrnoRet": 1,
                "architectures": ["SCMP_ARCH_X86_64"],
                "flags": ["SECCOMP_FILTER_FLAG_LOG"],
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                              "args": [{"index": 1, "value": 448, "op": "SCMP_CMP_EQ"}]}],
            }),
            &HashSet::new(),
        )
        .unwrap();
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActAllow);
        assert_eq!(s.default_errno_ret(), Some(1));
        assert_eq!(
            s.flags().as_deref(),
            Some(&[LinuxSeccompFilterFlag::SeccompFilterFlagLog][..])
        );
        let mkdir = &s.syscalls().as_ref().unwrap()[0];
        assert_eq!(mkdir.names(), &["mkdir", "mkdirat"]);
        assert_eq!(mkdir.errno_ret(), Some(13));
        assert_eq!(mkdir.args().as_ref().unwrap()[0].value(), 448);
        // The smallest profile Kubernetes' docs show.
        let s = resolve(json!({"defaultAction": "SCMP_ACT_LOG"}), &HashSet::new()).unwrap();
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActLog);
        assert_eq!(s.syscalls().as_deref(), Some(&[][..]));
    }

    #[test]
    fn docker_profile_files_are_resolved_for_this_container() {
        let profile = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "archMap": [
                {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
            ],
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW", "comment": "always"},
                {"name": "arch_prctl", "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
                {"names": ["cacheflush"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
                {"names": ["old"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.0"}},
                {"names": ["chroot"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}},
            ],
        });
        let names = |s: &LinuxSeccomp| -> Vec<String> {
            s.syscalls()
                .iter()
                .flatten()
                .flat_map(|c| c.names().clone())
                .collect()
        };
        let s = resolve(profile.clone(), &HashSet::new()).unwrap();
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
        assert_eq!(names(&s), ["read", "arch_prctl", "clone", "ptrace"]);
        let s = resolve(profile, &caps(&[Capability::SysAdmin])).unwrap();
        assert_eq!(names(&s), ["read", "arch_prctl", "mount", "ptrace"]);
    }

    #[test]
    fn bad_profile_files_are_refused() {
        let none = HashSet::new();
        for (v, want) in [
            (json!({"defaultAction": "SCMP_ACT_NOPE"}), "unknown variant"),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "sycalls": []}),
                "unknown field `sycalls`",
            ),
            (json!({"syscalls": []}), "missing field `defaultAction`"),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                       "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}),
                "both 'architectures' and 'archMap'",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW",
                       "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}),
                "both 'name' and 'names'",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW",
                       "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "new"}}]}),
                "invalid minKernel",
            ),
        ] {
            let err = resolve(v.clone(), &none).unwrap_err();
            assert!(err.contains(want), "{v}: {err}");
        }
    }

    #[test]
    fn localhost_reads_under_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("profiles")).unwrap();
        std::fs::write(
            tmp.path().join("profiles/audit.json"),
            r#"{"defaultAction": "SCMP_ACT_LOG"}"#,
        )
        .unwrap();
        std::fs::write(tmp.path().join("broken.json"), "{").unwrap();
        let none = HashSet::new();
        let (path, s) = localhost(tmp.path(), "profiles/audit.json", &none).unwrap();
        assert_eq!(path, tmp.path().join("profiles/audit.json"));
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActLog);
        let (path, err) = localhost(tmp.path(), "missing.json", &none).unwrap_err();
        assert_eq!(path, tmp.path().join("missing.json"));
        assert!(matches!(err, ProfileFileError::Read(_)), "{err}");
        let (_, err) = localhost(tmp.path(), "broken.json", &none).unwrap_err();
        assert!(matches!(err, ProfileFileError::Parse(_)), "{err}");
    }

    #[test]
    fn precedence_container_over_pod_over_default() {
        let sp = |t: &str, l: Option<&str>| SeccompProfile {
            type_: t.to_owned(),
            localhost_profile: l.map(str::to_owned),
        };
        let pod = sp("Localhost", Some("pod.json"));
        let unconfined = sp("Unconfined", None);
        let (p, path) = effective(Some(&pod), "spec.securityContext", None, "c");
        assert_eq!(p, Profile::Localhost("pod.json"));
        assert_eq!(path.as_deref(), Some("spec.securityContext.seccompProfile"));
        let (p, path) = effective(
            Some(&pod),
            "spec.securityContext",
            Some(&unconfined),
            "spec.containers[0].securityContext",
        );
        assert_eq!(p, Profile::Unconfined);
        assert_eq!(
            path.as_deref(),
            Some("spec.containers[0].securityContext.seccompProfile")
        );
        assert_eq!(
            effective(None, "", None, ""),
            (Profile::RuntimeDefault, None)
        );
    }

    #[test]
    fn kernel_releases() {
        assert_eq!(parse_kernel("6.8.0-45-generic"), Some((6, 8)));
        assert_eq!(parse_kernel("4.8"), Some((4, 8)));
        assert_eq!(parse_kernel("5"), Some((5, 0)));
        assert_eq!(parse_kernel("new"), None);
        assert!(kernel_version().is_some());
    }
}
