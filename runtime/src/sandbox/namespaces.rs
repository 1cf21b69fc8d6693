//! Creating and pinning the pod's network, UTS and IPC namespaces.
//!
//! There is no pause process: a short-lived OS thread unshares the namespaces, configures
//! them (hostname, loopback up) and bind-mounts its `/proc/thread-self/ns/*` files onto
//! pin files in the state dir. The bind mounts keep the namespaces alive after the thread
//! exits, and containers join them through those paths in their OCI spec.
//!
//! A dedicated `std::thread` (never a tokio worker, never the caller's thread) is required
//! because `unshare` of these namespaces changes only the calling thread, which must not go
//! on to run anything else afterwards.
//!
//! The same holds for [`tcp_socket_in`], which enters a pod's network namespace to create a
//! socket there (for probes and hooks): a socket stays in the namespace it was created in.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

use super::{mounts, SandboxError};

/// What to create: the network and UTS namespaces are skipped for `hostNetwork` pods (they
/// use the node's network and hostname, as under the kubelet + containerd); IPC is always new.
pub(crate) struct NamespacePlan<'a> {
    pub pod: &'a str,
    pub netns: Option<&'a Path>,
    /// Pin path and the hostname to set in the new UTS namespace.
    pub utsns: Option<(&'a Path, &'a str)>,
    pub ipcns: &'a Path,
}

/// Creates the namespaces and their pins; on error some pins may already exist (the caller
/// cleans up with `destroy`).
pub(crate) fn create(plan: &NamespacePlan<'_>) -> Result<(), SandboxError> {
    let mut pins: Vec<(&'static str, PathBuf)> = Vec::new();
    let mut flags = CloneFlags::CLONE_NEWIPC;
    if let Some(net) = plan.netns {
        flags |= CloneFlags::CLONE_NEWNET;
        pins.push(("net", net.to_owned()));
    }
    if let Some((uts, _)) = plan.utsns {
        flags |= CloneFlags::CLONE_NEWUTS;
        pins.push(("uts", uts.to_owned()));
    }
    pins.push(("ipc", plan.ipcns.to_owned()));
    for (_, pin) in &pins {
        prepare_pin(pin)?;
    }
    let hostname = plan.utsns.map(|(_, h)| h.to_owned());
    let bring_lo_up = plan.netns.is_some();
    std::thread::Builder::new()
        .name("podctl-netns".into())
        .spawn(move || -> Result<(), SandboxError> {
            nix::sched::unshare(flags).map_err(|source| SandboxError::Sys {
                op: "unshare",
                path: PathBuf::from("/proc/thread-self/ns"),
                source,
            })?;
            if let Some(name) = &hostname {
                nix::unistd::sethostname(name).map_err(|source| SandboxError::Sys {
                    op: "sethostname",
                    path: PathBuf::from("/proc/thread-self/ns/uts"),
                    source,
                })?;
            }
            if bring_lo_up {
                set_interface_up("lo")?;
            }
            for (kind, pin) in &pins {
                mounts::bind(&Path::new("/proc/thread-self/ns").join(kind), pin)?;
            }
            Ok(())
        })
        .map_err(|source| SandboxError::Io {
            op: "spawn namespace thread",
            path: plan.ipcns.to_owned(),
            source,
        })?
        .join()
        .map_err(|_| SandboxError::NamespaceThread {
            pod: plan.pod.to_owned(),
        })?
}

/// A new TCP socket (unconnected, non-blocking, close-on-exec) in the network namespace
/// pinned at `netns`, IPv6 if `ipv6`: connecting it reaches the pod's addresses, its
/// `127.0.0.1` included.
///
/// The socket is made on a short-lived dedicated thread that joins the namespace and exits,
/// so no other thread changes namespace. Blocking (a thread is spawned and joined): async
/// callers use `spawn_blocking`.
pub(crate) fn tcp_socket_in(netns: &Path, ipv6: bool) -> Result<OwnedFd, SandboxError> {
    let ns = File::open(netns).map_err(|source| SandboxError::Io {
        op: "open network namespace",
        path: netns.to_owned(),
        source,
    })?;
    let path = netns.to_owned();
    let (family, op) = if ipv6 {
        (AddressFamily::Inet6, "socket(AF_INET6, SOCK_STREAM)")
    } else {
        (AddressFamily::Inet, "socket(AF_INET, SOCK_STREAM)")
    };
    std::thread::Builder::new()
        .name("podctl-netns-socket".into())
        .spawn(move || -> Result<OwnedFd, SandboxError> {
            nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|source| {
                SandboxError::Sys {
                    op: "setns(CLONE_NEWNET)",
                    path: path.clone(),
                    source,
                }
            })?;
            socket(
                family,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
                None,
            )
            .map_err(|source| SandboxError::Sys { op, path, source })
        })
        .map_err(|source| SandboxError::Io {
            op: "spawn namespace thread",
            path: netns.to_owned(),
            source,
        })?
        .join()
        .map_err(|_| SandboxError::Io {
            op: "namespace thread",
            path: netns.to_owned(),
            source: std::io::Error::other("panicked"),
        })?
}

/// Makes sure `pin` is an empty regular file that is not a mount point: a leftover pin from
/// a crashed run is detached first, since mounting over it would fail or stack.
/// Pins namespace `kind` of process `pid` at `pin` (a bind mount of its `/proc` file).
pub(crate) fn pin_process_namespace(pid: u32, kind: &str, pin: &Path) -> Result<(), SandboxError> {
    prepare_pin(pin)?;
    mounts::bind(
        &Path::new("/proc")
            .join(pid.to_string())
            .join("ns")
            .join(kind),
        pin,
    )
}

fn prepare_pin(pin: &Path) -> Result<(), SandboxError> {
    if pin.exists() {
        let canonical = pin.canonicalize().map_err(|source| SandboxError::Io {
            op: "canonicalize",
            path: pin.to_owned(),
            source,
        })?;
        while mounts::is_mount_point(&canonical)? {
            mounts::detach(&canonical)?;
        }
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o444)
        .open(pin)
        .map(drop)
        .map_err(|source| SandboxError::Io {
            op: "create namespace pin",
            path: pin.to_owned(),
            source,
        })
}

/// Interface flags via `SIOCGIFFLAGS`, from a socket created in the calling thread's
/// network namespace (tests check that loopback is up).
#[cfg(test)]
pub(crate) fn interface_flags(name: &str) -> Result<libc::c_short, SandboxError> {
    let (_sock, req) = query_interface(name)?;
    // SAFETY: SIOCGIFFLAGS succeeded, so the kernel filled the `ifru_flags` member of the
    // union; every bit pattern is a valid c_short.
    Ok(unsafe { req.ifr_ifru.ifru_flags })
}

/// Sets IFF_UP on an interface of the calling thread's network namespace.
fn set_interface_up(name: &str) -> Result<(), SandboxError> {
    let (sock, mut req) = query_interface(name)?;
    // SAFETY: `req` was filled by a successful SIOCGIFFLAGS, which writes `ifru_flags`;
    // reading and updating that member of the union is then well defined.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: `sock` is an open socket fd owned by us, `req` is a valid, initialised
    // `ifreq` that outlives the call, and SIOCSIFFLAGS only reads it.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) };
    if rc < 0 {
        return Err(SandboxError::Sys {
            op: "ioctl(SIOCSIFFLAGS)",
            path: PathBuf::from(format!("interface {name}")),
            source: nix::errno::Errno::last(),
        });
    }
    Ok(())
}

fn query_interface(name: &str) -> Result<(std::os::fd::OwnedFd, libc::ifreq), SandboxError> {
    let iface = PathBuf::from(format!("interface {name}"));
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|source| SandboxError::Sys {
        op: "socket(AF_INET, SOCK_DGRAM)",
        path: iface.clone(),
        source,
    })?;
    // SAFETY: `ifreq` is a plain C struct (char array + union of PODs) for which all-zero
    // bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() || name.as_bytes().contains(&0) {
        return Err(SandboxError::Sys {
            op: "interface name",
            path: iface,
            source: nix::errno::Errno::EINVAL,
        });
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: `sock` is an open socket fd, `req` is a valid `ifreq` with a NUL-terminated
    // name (zeroed tail) that outlives the call; SIOCGIFFLAGS writes only inside it.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
    if rc < 0 {
        return Err(SandboxError::Sys {
            op: "ioctl(SIOCGIFFLAGS)",
            path: iface,
            source: nix::errno::Errno::last(),
        });
    }
    Ok((sock, req))
}
