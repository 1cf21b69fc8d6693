//! Tests that create real namespaces and mounts (podctl tests run as root) and check that
//! nothing is left behind.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Pod, VolumeMount};
use nix::sched::CloneFlags;
use serde_json::json;

use super::*;

pub(crate) fn pod(value: serde_json::Value) -> Pod {
    serde_json::from_value(value).expect("test pod")
}

fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    mounts::mount_points()
        .unwrap()
        .into_iter()
        .filter(|p| p.starts_with(&canonical))
        .collect()
}

fn mount_options(path: &Path) -> String {
    let canonical = path.canonicalize().unwrap();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .rev()
        .find(|l| l.split(' ').nth(4) == Some(canonical.to_str().unwrap()))
        .unwrap_or_else(|| panic!("{} not mounted", path.display()))
        .to_owned()
}

/// Runs `f` on a fresh thread that has joined the namespace pinned at `pin`.
fn in_namespace<T: Send + 'static>(
    pin: &Path,
    kind: CloneFlags,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let file = std::fs::File::open(pin).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(&file, kind).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// Checks the sandbox is gone without leaving mounts, whatever the test outcome.
struct Cleanup(PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        Sandbox::destroy(&self.0).expect("destroy in cleanup");
        assert!(mounts_under(&self.0).is_empty(), "leftover mounts");
    }
}

#[test]
fn create_inspect_destroy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("default/pods/web");
    let host_dir = tmp.path().join("host/data");
    let pod = pod(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {
            "hostAliases": [{"ip": "10.0.0.9", "hostnames": ["db"]}],
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                {"name": "data", "hostPath": {"path": host_dir, "type": "DirectoryOrCreate"}},
            ],
        },
    }));
    let sb = Sandbox::create(SandboxConfig {
        dir: &dir,
        pod: &pod,
    })
    .unwrap();
    let _cleanup = Cleanup(dir.clone());

    assert_eq!(sb.hostname_value, "web");
    assert_eq!(std::fs::read_to_string(&sb.hostname).unwrap(), "web\n");
    let hosts = std::fs::read_to_string(&sb.hosts).unwrap();
    assert!(hosts.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
    assert!(hosts.contains("127.0.1.1\tweb\n"));
    assert!(hosts.ends_with("# Entries added by HostAliases.\n10.0.0.9\tdb\n"));
    assert_eq!(
        std::fs::read(&sb.resolv_conf).unwrap(),
        std::fs::read("/etc/resolv.conf").unwrap_or_default()
    );

    // Namespaces: pinned, hostname set, loopback up, and different from ours.
    let netns = sb.netns.clone().unwrap();
    let utsns = sb.utsns.clone().unwrap();
    for pin in [&netns, &utsns, &sb.ipcns] {
        assert!(mounts::is_mount_point(&pin.canonicalize().unwrap()).unwrap());
    }
    let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    assert_ne!(ino(&netns), ino(Path::new("/proc/self/ns/net")));
    assert_ne!(ino(&sb.ipcns), ino(Path::new("/proc/self/ns/ipc")));
    let hostname = in_namespace(&utsns, CloneFlags::CLONE_NEWUTS, || {
        nix::unistd::gethostname().unwrap()
    });
    assert_eq!(hostname, "web");
    let lo_flags = in_namespace(&netns, CloneFlags::CLONE_NEWNET, || {
        namespaces::interface_flags("lo").unwrap()
    });
    assert_ne!(lo_flags & libc::IFF_UP as libc::c_short, 0);

    // /dev/shm and volumes.
    let shm = mount_options(&sb.shm);
    assert!(
        shm.contains(" - tmpfs ") && shm.contains("size=65536k"),
        "{shm}"
    );
    assert!(shm.contains("nosuid") && shm.contains("nodev") && shm.contains("noexec"));
    let scratch = sb.volume_path("scratch", "").unwrap();
    assert_eq!(scratch, dir.join("volumes/scratch"));
    assert_eq!(
        std::fs::metadata(&scratch).unwrap().permissions().mode() & 0o7777,
        0o777
    );
    let mem = mount_options(&sb.volume_path("mem", "").unwrap());
    assert!(
        mem.contains(" - tmpfs ") && mem.contains("size=16384k"),
        "{mem}"
    );
    assert!(host_dir.is_dir());
    assert_eq!(sb.volume_path("data", "").unwrap(), host_dir);

    // mount_source with subPath creates inside the volume.
    let m = VolumeMount {
        name: "scratch".into(),
        mount_path: "/x".into(),
        sub_path: Some("a/b".into()),
        ..Default::default()
    };
    let src = sb.mount_source(&m).unwrap();
    assert_eq!(src, scratch.canonicalize().unwrap().join("a/b"));
    assert!(src.is_dir());
    std::os::unix::fs::symlink("/etc", scratch.join("etc-link")).unwrap();
    let m = VolumeMount {
        sub_path: Some("etc-link".into()),
        ..m
    };
    assert!(matches!(
        sb.mount_source(&m),
        Err(SandboxError::SubPathEscapes { .. })
    ));
    assert!(matches!(
        sb.volume_path("nope", ""),
        Err(SandboxError::UnknownVolume { .. })
    ));

    // A second create of the same pod is refused and leaves the first intact.
    let err = Sandbox::create(SandboxConfig {
        dir: &dir,
        pod: &pod,
    })
    .unwrap_err();
    assert!(
        matches!(&err, SandboxError::AlreadyExists { pod, .. } if pod == "web"),
        "{err}"
    );
    assert!(mounts::is_mount_point(&netns.canonicalize().unwrap()).unwrap());

    // The planned layout is what create made (a restarted podctl relies on it).
    assert_eq!(
        Sandbox::planned(SandboxConfig {
            dir: &dir,
            pod: &pod
        })
        .unwrap(),
        sb
    );

    Sandbox::destroy(&dir).unwrap();
    assert!(!dir.exists());
    assert!(mounts_under(tmp.path()).is_empty());
    assert!(host_dir.is_dir(), "hostPath content must survive destroy");
    Sandbox::destroy(&dir).unwrap();
}

#[test]
fn failed_create_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pods/bad");
    let pod = pod(json!({
        "metadata": {"name": "bad"},
        "spec": {
            "containers": [{"name": "c"}],
            "volumes": [
                {"name": "mem", "emptyDir": {"medium": "Memory"}},
                {"name": "h", "hostPath": {"path": tmp.path().join("missing"), "type": "Directory"}},
            ],
        },
    }));
    let err = Sandbox::create(SandboxConfig {
        dir: &dir,
        pod: &pod,
    })
    .unwrap_err();
    match &err {
        SandboxError::HostPathType {
            volume, expected, ..
        } => {
            assert_eq!(volume, "h");
            assert_eq!(expected, "Directory");
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("missing"), "{err}");
    assert!(!dir.exists());
    assert!(mounts_under(tmp.path()).is_empty());
}

#[test]
fn host_network_uses_node_namespaces() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hn");
    let pod = pod(json!({
        "metadata": {"name": "hn"},
        "spec": {"hostNetwork": true, "hostname": "ignored", "containers": [{"name": "c"}]},
    }));
    let sb = Sandbox::create(SandboxConfig {
        dir: &dir,
        pod: &pod,
    })
    .unwrap();
    let _cleanup = Cleanup(dir.clone());
    assert_eq!(sb.netns, None);
    assert_eq!(sb.utsns, None);
    let node = nix::unistd::gethostname().unwrap();
    assert_eq!(sb.hostname_value, node.to_str().unwrap());
    assert!(!dir.join("ns/net").exists() && !dir.join("ns/uts").exists());
    assert!(mounts::is_mount_point(&sb.ipcns.canonicalize().unwrap()).unwrap());
    let hosts = std::fs::read_to_string(&sb.hosts).unwrap();
    assert!(hosts.starts_with("# Kubernetes-managed hosts file (host network).\n"));
}

#[test]
fn spec_hostname_overrides_pod_name() {
    let pod = pod(json!({
        "metadata": {"name": "p"},
        "spec": {"hostname": "custom", "containers": [{"name": "c"}]},
    }));
    let sb = Sandbox::planned(SandboxConfig {
        dir: Path::new("/nonexistent/p"),
        pod: &pod,
    })
    .unwrap();
    assert_eq!(sb.hostname_value, "custom");
}

#[test]
fn set_hostname_as_fqdn_puts_the_fqdn_in_the_kernel_hostname() {
    let planned = |hostname: &str, subdomain: Option<&str>| {
        let pod = pod(json!({
            "metadata": {"name": "p", "namespace": "team"},
            "spec": {"hostname": hostname, "subdomain": subdomain, "setHostnameAsFQDN": true,
                     "containers": [{"name": "c"}]},
        }));
        Sandbox::planned(SandboxConfig {
            dir: Path::new("/nonexistent/p"),
            pod: &pod,
        })
    };
    let sb = planned("web", Some("db")).unwrap();
    assert_eq!(sb.hostname_value, "web.db.team.svc.cluster.local");
    // /etc/hosts still maps the short name after the FQDN.
    assert_eq!(sb.host_name, "web");
    // Without a subdomain the FQDN is the hostname.
    assert_eq!(planned("web", None).unwrap().hostname_value, "web");
    let long = "a".repeat(40);
    assert_eq!(
        planned(&long, Some("db")).unwrap_err().to_string(),
        format!(
            "failed to construct FQDN from pod hostname and cluster domain, FQDN {long}.db.team.svc.cluster.local is too long (64 characters is the max, 66 characters requested)"
        )
    );
}

#[test]
fn destroy_recovers_from_crash_leftovers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("crashed");
    // What a crashed run leaves: a pin mounted twice (stacked), a tmpfs with a mount below
    // it, and a symlink pointing outside that must not be followed.
    std::fs::create_dir_all(dir.join("ns")).unwrap();
    std::fs::create_dir_all(dir.join("shm")).unwrap();
    let pin = dir.join("ns/ipc");
    std::fs::write(&pin, "").unwrap();
    mounts::bind(Path::new("/proc/self/ns/ipc"), &pin).unwrap();
    mounts::bind(Path::new("/proc/self/ns/ipc"), &pin).unwrap();
    mounts::mount_tmpfs(&dir.join("shm"), MsFlags::empty(), "size=1m").unwrap();
    std::fs::create_dir(dir.join("shm/inner")).unwrap();
    mounts::mount_tmpfs(&dir.join("shm/inner"), MsFlags::empty(), "size=1m").unwrap();
    let outside = tmp.path().join("keep");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("file"), "x").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();

    // Re-pinning over a stale pin works (the old mount is detached first).
    namespaces::create(&namespaces::NamespacePlan {
        pod: "crashed",
        netns: None,
        utsns: None,
        ipcns: &pin,
    })
    .unwrap();
    let canonical_pin = pin.canonicalize().unwrap();
    let stacked = mounts::mount_points()
        .unwrap()
        .into_iter()
        .filter(|p| *p == canonical_pin)
        .count();
    assert_eq!(stacked, 1);

    Sandbox::destroy(&dir).unwrap();
    assert!(!dir.exists());
    assert!(mounts_under(tmp.path()).is_empty());
    assert_eq!(std::fs::read_to_string(outside.join("file")).unwrap(), "x");
}

#[test]
fn host_ipc_is_refused() {
    let pod = pod(json!({
        "metadata": {"name": "p"},
        "spec": {"hostIPC": true, "containers": [{"name": "c"}]},
    }));
    let err = Sandbox::planned(SandboxConfig {
        dir: Path::new("/nonexistent/p"),
        pod: &pod,
    })
    .unwrap_err();
    assert!(err.to_string().contains("spec.hostIPC"), "{err}");
}

#[test]
fn release_keeps_files_but_drops_mounts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rel");
    let pod = pod(json!({
        "metadata": {"name": "rel"},
        "spec": {
            "containers": [{"name": "c"}],
            "volumes": [
                {"name": "disk", "emptyDir": {}},
                {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            ],
        },
    }));
    let sb = Sandbox::create(SandboxConfig {
        dir: &dir,
        pod: &pod,
    })
    .unwrap();
    let _cleanup = Cleanup(dir.clone());
    std::fs::write(sb.volume_path("disk", "").unwrap().join("kept"), "k").unwrap();
    Sandbox::release(&dir).unwrap();
    Sandbox::release(&dir).unwrap();
    assert!(mounts_under(&dir).is_empty());
    assert_eq!(
        std::fs::read_to_string(dir.join("volumes/disk/kept")).unwrap(),
        "k"
    );
    assert!(sb.hosts.exists());
    Sandbox::release(&tmp.path().join("missing")).unwrap();
}

#[test]
fn bad_size_limit_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sz");
    let pod = pod(json!({
        "metadata": {"name": "sz"},
        "spec": {
            "containers": [{"name": "c"}],
            "volumes": [{"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "-1Gi"}}],
        },
    }));
    let err = Sandbox::create(SandboxConfig {
        dir: &dir,
        pod: &pod,
    })
    .unwrap_err();
    assert!(
        matches!(&err, SandboxError::SizeLimit { volume, .. } if volume == "mem"),
        "{err}"
    );
    assert!(!dir.exists());
    assert!(mounts_under(tmp.path()).is_empty());
}
