//! `spec.securityContext.sysctls`: the API server's name rules and the kubelet's safe set.
//!
//! The kubelet admits a pod only if every sysctl is on its allowlist, by default the *safe*
//! sysctls: namespaced by the kernel and without effect on other pods
//! (`pkg/kubelet/sysctl/safe_sysctls.go`). podctl has no `--allowed-unsafe-sysctls`: the
//! safe set is all it accepts, refused before anything is created. Which sysctls are safe
//! depends on the kernel, so a pod with sysctls has `/proc/sys/kernel/osrelease` read: the
//! one thing manifest validation reads from the host.

/// The kubelet's safe sysctls as of Kubernetes 1.37, each with the kernel (`major.minor`)
/// that namespaced it; on an older kernel the kubelet drops it from the set.
const SAFE: &[(&str, Option<(u32, u32)>)] = &[
    ("kernel.shm_rmid_forced", None),
    ("net.ipv4.ip_local_port_range", None),
    ("net.ipv4.tcp_syncookies", None),
    ("net.ipv4.ping_group_range", None),
    ("net.ipv4.ip_unprivileged_port_start", None),
    ("net.ipv4.ip_local_reserved_ports", Some((3, 16))),
    ("net.ipv4.tcp_keepalive_time", Some((4, 5))),
    ("net.ipv4.tcp_fin_timeout", Some((4, 6))),
    ("net.ipv4.tcp_keepalive_intvl", Some((4, 5))),
    ("net.ipv4.tcp_keepalive_probes", Some((4, 5))),
    ("net.ipv4.tcp_rmem", Some((4, 15))),
    ("net.ipv4.tcp_wmem", Some((4, 15))),
    ("net.ipv4.tcp_slow_start_after_idle", Some((4, 15))),
    ("net.ipv4.tcp_notsent_lowat", Some((4, 6))),
];

/// The longest sysctl name the API server accepts (`SysctlMaxLength`).
pub(super) const MAX_LENGTH: usize = 253;

/// `SysctlContainSlashFmt`, as the API server's message quotes it.
pub(super) const NAME_FMT: &str =
    r"([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?";

/// The namespace a sysctl lives in, for the host-namespace rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Namespace {
    Net,
    Ipc,
}

/// Whether `name` matches [`NAME_FMT`] (segments separated by `.` or `/`) and fits.
pub(super) fn is_valid_name(name: &str) -> bool {
    let segment = |s: &str| {
        let b = s.as_bytes();
        let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        !b.is_empty()
            && b.first().is_some_and(edge)
            && b.last().is_some_and(edge)
            && b.iter().all(|c| edge(c) || *c == b'-' || *c == b'_')
    };
    name.len() <= MAX_LENGTH && name.split(['.', '/']).all(segment)
}

/// The name with `.` separators: a name whose first separator is `/` has its `/` and `.`
/// swapped (`net/ipv4/conf/eth0.100/rp_filter` is `net.ipv4.conf.eth0/100.rp_filter`), as
/// the kubelet reads it; runc takes the dotted form.
pub fn with_dots(name: &str) -> String {
    match name.find(['.', '/']) {
        Some(i) if name.as_bytes()[i] == b'/' => name
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect(),
        _ => name.to_owned(),
    }
}

/// The namespace of a (dotted) sysctl, when the kubelet knows it (`utilsysctl.GetNamespace`).
pub(super) fn namespace(dotted: &str) -> Option<Namespace> {
    if dotted == "kernel.sem"
        || ["kernel.shm", "kernel.msg", "fs.mqueue."]
            .iter()
            .any(|p| dotted.starts_with(p))
    {
        Some(Namespace::Ipc)
    } else if dotted.starts_with("net.") {
        Some(Namespace::Net)
    } else {
        None
    }
}

/// The safe sysctls on a kernel of `kernel` (`None`: unknown, only those safe on any).
pub(super) fn safe_set(kernel: Option<(u32, u32)>) -> Vec<&'static str> {
    SAFE.iter()
        .filter(|(_, min)| min.is_none_or(|m| kernel.is_some_and(|k| k >= m)))
        .map(|(name, _)| *name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "kernel.shm_rmid_forced",
            "net/ipv4/ip_local_port_range",
            "net.ipv4.conf.eth0/100.rp_filter",
            "a",
        ] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "Kernel.shm",
            "net..ipv4",
            "net.ipv4.",
            "-net",
            "net.ipv4.tcp_",
            &"a".repeat(254),
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        assert_eq!(
            with_dots("net/ipv4/conf/eth0.100/rp_filter"),
            "net.ipv4.conf.eth0/100.rp_filter"
        );
        assert_eq!(
            with_dots("net.ipv4.conf.eth0/100.rp_filter"),
            "net.ipv4.conf.eth0/100.rp_filter"
        );
        assert_eq!(namespace("net.ipv4.tcp_syncookies"), Some(Namespace::Net));
        assert_eq!(namespace("kernel.shm_rmid_forced"), Some(Namespace::Ipc));
        assert_eq!(namespace("kernel.sem"), Some(Namespace::Ipc));
        assert_eq!(namespace("vm.swappiness"), None);
    }

    #[test]
    fn the_safe_set_follows_the_kernel() {
        assert_eq!(safe_set(Some((6, 8))).len(), 14);
        let old = safe_set(Some((4, 5)));
        assert!(old.contains(&"net.ipv4.tcp_keepalive_time"));
        assert!(!old.contains(&"net.ipv4.tcp_fin_timeout"));
        assert!(!old.contains(&"net.ipv4.tcp_rmem"));
        assert_eq!(safe_set(None).len(), 5);
    }
}
