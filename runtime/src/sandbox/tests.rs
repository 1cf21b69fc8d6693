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
        objects: &Objects::default(),
        live: &LiveFields::default(),
        claims_dir: Path::new("/nonexistent/claims"),
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
        objects: &Objects::default(),
        live: &LiveFields::default(),
        claims_dir: Path::new("/nonexistent/claims"),
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
            pod: &pod,
            objects: &Objects::default(),
            live: &LiveFields::default(),
            claims_dir: Path::new("/nonexistent/claims"),
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
        objects: &Objects::default(),
        live: &LiveFields::default(),
        claims_dir: Path::new("/nonexistent/claims"),
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
        objects: &Objects::default(),
        live: &LiveFields::default(),
        claims_dir: Path::new("/nonexistent/claims"),
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
        objects: &Objects::default(),
        live: &LiveFields::default(),
        claims_dir: Path::new("/nonexistent/claims"),
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
            objects: &Objects::default(),
            live: &LiveFields::default(),
            claims_dir: Path::new("/nonexistent/claims"),
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
        objects: &Objects::default(),
        live: &LiveFields::default(),
        claims_dir: Path::new("/nonexistent/claims"),
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
        objects: &Objects::default(),
        live: &LiveFields::default(),
        claims_dir: Path::new("/nonexistent/claims"),
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
        objects: &Objects::default(),
        live: &LiveFields::default(),
        claims_dir: Path::new("/nonexistent/claims"),
    })
    .unwrap_err();
    assert!(
        matches!(&err, SandboxError::SizeLimit { volume, .. } if volume == "mem"),
        "{err}"
    );
    assert!(!dir.exists());
    assert!(mounts_under(tmp.path()).is_empty());
}

fn objects(value: serde_json::Value) -> Objects {
    let mut objects = Objects::default();
    for item in value.as_array().expect("a list of objects") {
        let name = item["metadata"]["name"].as_str().unwrap().to_owned();
        match item["kind"].as_str() {
            Some("ConfigMap") => {
                objects
                    .config_maps
                    .insert(name, serde_json::from_value(item.clone()).unwrap());
            }
            Some("Secret") => {
                objects
                    .secrets
                    .insert(name, serde_json::from_value(item.clone()).unwrap());
            }
            other => panic!("kind {other:?}"),
        }
    }
    objects
}

fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn gid_of(p: &Path) -> u32 {
    std::os::unix::fs::MetadataExt::gid(&std::fs::symlink_metadata(p).unwrap())
}

/// The entries of a dir, sorted (a version dir `..2…` sorts before `..data`).
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The version dir `..data` names.
fn data_version(volume: &Path) -> String {
    std::fs::read_link(volume.join("..data"))
        .unwrap()
        .into_os_string()
        .into_string()
        .unwrap()
}

fn is_tmpfs(path: &Path) -> bool {
    let canonical = path.canonicalize().unwrap();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines().any(|l| {
        l.split(' ').nth(4) == Some(canonical.to_str().unwrap()) && l.contains(" - tmpfs ")
    })
}

/// A pod with one volume of each API-data kind and an emptyDir.
fn api_data_pod(fs_group: Option<i64>) -> Pod {
    pod(json!({
        "metadata": {"name": "cfg"},
        "spec": {
            "securityContext": {"fsGroup": fs_group},
            "containers": [{"name": "c"}],
            "volumes": [
                {"name": "conf", "configMap": {"name": "app", "defaultMode": 0o440, "items": [
                    {"key": "app.conf", "path": "etc/app.conf"},
                    {"key": "run.sh", "path": "run.sh", "mode": 0o755},
                ]}},
                {"name": "creds", "secret": {"secretName": "db", "defaultMode": 0o400}},
                {"name": "both", "projected": {"sources": [
                    {"configMap": {"name": "app", "items": [{"key": "app.conf", "path": "app.conf"}]}},
                    {"secret": {"name": "db", "items": [{"key": "password", "path": "db/password"}]}},
                ]}},
                {"name": "maybe", "configMap": {"name": "absent", "optional": true}},
                {"name": "scratch", "emptyDir": {}},
            ],
        },
    }))
}

fn api_data_objects(conf: &str) -> Objects {
    objects(json!([
        {"kind": "ConfigMap", "metadata": {"name": "app"},
         "data": {"app.conf": conf, "run.sh": "#!/bin/sh\n"}},
        {"kind": "Secret", "metadata": {"name": "db"},
         "data": {"password": "aHVudGVyMg==", "user": "YWRtaW4="}},
    ]))
}

#[test]
fn api_data_volumes_are_laid_out_like_the_kubelet() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cfg");
    let pod = api_data_pod(None);
    let objects = api_data_objects("a=1\n");
    let config = SandboxConfig {
        dir: &dir,
        pod: &pod,
        objects: &objects,
        live: &LiveFields::default(),
        claims_dir: Path::new("/nonexistent/claims"),
    };
    let sb = Sandbox::create(config).unwrap();
    let _cleanup = Cleanup(dir.clone());

    let conf = sb.volume_path("conf", "").unwrap();
    assert_eq!(conf, dir.join("volumes/conf"));
    let version = data_version(&conf);
    assert!(version.starts_with("..") && version.len() > 22, "{version}");
    assert_eq!(names(&conf), [&version, "..data", "etc", "run.sh"]);
    assert_eq!(
        std::fs::read_link(conf.join("etc")).unwrap(),
        Path::new("..data/etc")
    );
    assert_eq!(
        std::fs::read_to_string(conf.join("etc/app.conf")).unwrap(),
        "a=1\n"
    );
    assert_eq!(mode_of(&conf.join("..data/etc/app.conf")), 0o440);
    assert_eq!(mode_of(&conf.join("..data/run.sh")), 0o755);
    assert_eq!(mode_of(&conf.join(&version)), 0o755);
    // configMap volumes are on disk, like the kubelet's; the others are tmpfs.
    assert!(!mounts::is_mount_point(&conf.canonicalize().unwrap()).unwrap());
    let creds = sb.volume_path("creds", "").unwrap();
    assert!(is_tmpfs(&creds));
    assert!(is_tmpfs(&sb.volume_path("both", "").unwrap()));
    assert_eq!(
        std::fs::read_to_string(creds.join("password")).unwrap(),
        "hunter2"
    );
    assert_eq!(mode_of(&creds.join("..data/user")), 0o400);

    let both = sb.volume_path("both", "").unwrap();
    assert_eq!(
        std::fs::read_to_string(both.join("app.conf")).unwrap(),
        "a=1\n"
    );
    assert_eq!(
        std::fs::read_to_string(both.join("db/password")).unwrap(),
        "hunter2"
    );
    assert_eq!(mode_of(&both.join("..data/db/password")), 0o644);

    // An optional ConfigMap that is not given: an empty volume.
    let maybe = sb.volume_path("maybe", "").unwrap();
    assert_eq!(names(&maybe), [&data_version(&maybe), "..data"]);

    for name in ["conf", "creds", "both", "maybe"] {
        assert!(sb.is_read_only_volume(name), "{name}");
    }
    assert!(!sb.is_read_only_volume("scratch"));
    assert!(!sb.is_read_only_volume("nope"));

    // A subPath of a key resolves through the links into the current version.
    let m = VolumeMount {
        name: "conf".into(),
        mount_path: "/etc/app.conf".into(),
        sub_path: Some("etc/app.conf".into()),
        ..Default::default()
    };
    assert_eq!(
        sb.mount_source(&m).unwrap(),
        conf.canonicalize()
            .unwrap()
            .join(&version)
            .join("etc/app.conf")
    );

    // Planning reads no objects: an adopted pod is addressed without them.
    let replanned = Sandbox::planned(SandboxConfig {
        objects: &Objects::default(),
        ..config
    })
    .unwrap();
    assert_eq!(replanned, sb);

    Sandbox::destroy(&dir).unwrap();
    assert!(mounts_under(tmp.path()).is_empty());
}

#[test]
fn update_projected_rewrites_changed_volumes_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cfg");
    let pod = api_data_pod(None);
    let live = LiveFields::default();
    let sb = Sandbox::create(SandboxConfig {
        dir: &dir,
        pod: &pod,
        objects: &api_data_objects("a=1\n"),
        live: &live,
        claims_dir: Path::new("/nonexistent/claims"),
    })
    .unwrap();
    let _cleanup = Cleanup(dir.clone());
    let conf = sb.volume_path("conf", "").unwrap();
    let creds = sb.volume_path("creds", "").unwrap();
    let (conf_v1, creds_v1) = (data_version(&conf), data_version(&creds));

    let same = sb
        .update_projected(&pod, &api_data_objects("a=1\n"), &live)
        .unwrap();
    assert!(same.is_empty(), "{same:?}");
    assert_eq!(data_version(&conf), conf_v1);

    let changed = sb
        .update_projected(&pod, &api_data_objects("a=2\n"), &live)
        .unwrap();
    assert_eq!(changed, ["conf", "both"]);
    let conf_v2 = data_version(&conf);
    assert_ne!(conf_v2, conf_v1);
    assert_eq!(
        std::fs::read_to_string(conf.join("etc/app.conf")).unwrap(),
        "a=2\n"
    );
    assert!(!conf.join(&conf_v1).exists(), "the old version is removed");
    assert_eq!(names(&conf), [&conf_v2, "..data", "etc", "run.sh"]);
    assert_eq!(data_version(&creds), creds_v1);

    // The optional ConfigMap appears: its volume fills.
    let mut objects = api_data_objects("a=2\n");
    objects.config_maps.insert(
        "absent".into(),
        serde_json::from_value(json!({"metadata": {"name": "absent"}, "data": {"k": "v"}}))
            .unwrap(),
    );
    let changed = sb.update_projected(&pod, &objects, &live).unwrap();
    assert_eq!(changed, ["maybe"]);
    let maybe = sb.volume_path("maybe", "").unwrap();
    assert_eq!(std::fs::read_to_string(maybe.join("k")).unwrap(), "v");

    // The Secret goes away: its volumes fail and keep their files, the others still
    // update.
    objects.secrets.clear();
    objects.config_maps.remove("absent");
    let err = sb.update_projected(&pod, &objects, &live).unwrap_err();
    assert!(
        matches!(&err, SandboxError::SecretNotFound { volume, secret } if volume == "creds" && secret == "db"),
        "{err}"
    );
    assert_eq!(data_version(&creds), creds_v1);
    assert_eq!(
        std::fs::read_to_string(creds.join("password")).unwrap(),
        "hunter2"
    );
    assert_eq!(names(&maybe), [&data_version(&maybe), "..data"]);
}

#[test]
fn a_released_tmpfs_volume_is_not_written_to_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cfg");
    let pod = api_data_pod(None);
    let live = LiveFields::default();
    let sb = Sandbox::create(SandboxConfig {
        dir: &dir,
        pod: &pod,
        objects: &api_data_objects("a=1\n"),
        live: &live,
        claims_dir: Path::new("/nonexistent/claims"),
    })
    .unwrap();
    let _cleanup = Cleanup(dir.clone());
    Sandbox::release(&dir).unwrap();
    let creds = sb.volume_path("creds", "").unwrap();
    // The tmpfs took the secret with it.
    assert!(names(&creds).is_empty());
    let err = sb
        .update_projected(&pod, &api_data_objects("a=2\n"), &live)
        .unwrap_err();
    assert!(
        matches!(&err, SandboxError::VolumeNotMounted { volume, .. } if volume == "creds"),
        "{err}"
    );
    assert!(names(&creds).is_empty());
    assert!(names(&sb.volume_path("both", "").unwrap()).is_empty());
}

#[test]
fn fs_group_owns_api_data_volumes_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cfg");
    let pod = api_data_pod(Some(2000));
    let sb = Sandbox::create(SandboxConfig {
        dir: &dir,
        pod: &pod,
        objects: &api_data_objects("a=1\n"),
        live: &LiveFields::default(),
        claims_dir: Path::new("/nonexistent/claims"),
    })
    .unwrap();
    let _cleanup = Cleanup(dir.clone());
    let conf = sb.volume_path("conf", "").unwrap();
    let version = conf.join(data_version(&conf));
    // Disk root 0777 and tmpfs root 1777, each with setgid.
    assert_eq!((gid_of(&conf), mode_of(&conf)), (2000, 0o2777));
    assert_eq!((gid_of(&version), mode_of(&version)), (2000, 0o2755));
    assert_eq!(mode_of(&version.join("etc")), 0o2755);
    assert_eq!(
        (
            gid_of(&version.join("etc/app.conf")),
            mode_of(&version.join("etc/app.conf"))
        ),
        (2000, 0o440)
    );
    assert_eq!(mode_of(&version.join("run.sh")), 0o755);
    let creds = sb.volume_path("creds", "").unwrap();
    assert_eq!((gid_of(&creds), mode_of(&creds)), (2000, 0o3777));
    // 0400 | the read-only mask 0440.
    assert_eq!(mode_of(&creds.join("..data/password")), 0o440);
    assert_eq!(gid_of(&creds.join("..data/password")), 2000);
    // emptyDirs keep the read-write mask.
    let scratch = sb.volume_path("scratch", "").unwrap();
    assert_eq!((gid_of(&scratch), mode_of(&scratch)), (2000, 0o2777));
}

#[test]
fn missing_objects_and_bad_paths_fail_create_and_clean_up() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            json!({"name": "conf", "configMap": {"name": "nope"}}),
            "volume \"conf\": configmap \"nope\" not found",
        ),
        (
            json!({"name": "creds", "secret": {"secretName": "db",
                "items": [{"key": "token", "path": "t"}]}}),
            "volume \"creds\": secret \"db\": references non-existent secret key: token",
        ),
        (
            json!({"name": "conf", "configMap": {"name": "app",
                "items": [{"key": "app.conf", "path": "../escape"}]}}),
            "volume \"conf\": invalid path \"../escape\": must not contain '..'",
        ),
        (
            json!({"name": "conf", "configMap": {"name": "app",
                "items": [{"key": "app.conf", "path": "..data"}]}}),
            "volume \"conf\": invalid path \"..data\": must not start with '..'",
        ),
    ];
    for (i, (volume, message)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("p{i}"));
        let pod = pod(json!({
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{"name": "c"}],
                // A tmpfs volume first: it must be unmounted by the cleanup.
                "volumes": [{"name": "mem", "secret": {"secretName": "db"}}, volume],
            },
        }));
        let err = Sandbox::create(SandboxConfig {
            dir: &dir,
            pod: &pod,
            objects: &api_data_objects("a=1\n"),
            live: &LiveFields::default(),
            claims_dir: Path::new("/nonexistent/claims"),
        })
        .unwrap_err();
        assert_eq!(err.to_string(), message);
        assert!(!dir.exists());
        assert!(mounts_under(tmp.path()).is_empty());
    }
}

#[test]
fn unsupported_projected_sources_are_refused_when_planning() {
    let pod = pod(json!({
        "metadata": {"name": "p"},
        "spec": {
            "containers": [{"name": "c"}],
            "volumes": [{"name": "token", "projected": {"sources": [
                {"serviceAccountToken": {"path": "token"}},
            ]}}],
        },
    }));
    let err = Sandbox::planned(SandboxConfig {
        dir: Path::new("/nonexistent/p"),
        pod: &pod,
        objects: &Objects::default(),
        live: &LiveFields::default(),
        claims_dir: Path::new("/nonexistent/claims"),
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "volume \"token\": projected source serviceAccountToken is not supported"
    );
}

#[test]
fn claim_volumes_are_the_claims_data_and_outlive_the_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ns/pods/db");
    let claims_dir = tmp.path().join("ns/claims");
    let data = crate::claims::data_dir(&claims_dir, "data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(data.join("kept"), "from an earlier pod").unwrap();
    let pod_with = |policy: Option<&str>| {
        pod(json!({
            "metadata": {"name": "db"},
            "spec": {
                "securityContext": {"fsGroup": 3000, "fsGroupChangePolicy": policy},
                "containers": [{"name": "c", "image": "busybox"}],
                "volumes": [
                    {"name": "rw", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "ro", "persistentVolumeClaim": {"claimName": "data", "readOnly": true}},
                ],
            },
        }))
    };
    let always = pod_with(None);
    let config = SandboxConfig {
        dir: &dir,
        pod: &always,
        objects: &Objects::default(),
        live: &LiveFields::default(),
        claims_dir: &claims_dir,
    };
    let sb = Sandbox::create(config).unwrap();
    let cleanup = Cleanup(dir.clone());
    assert_eq!(sb.volume_path("rw", "").unwrap(), data);
    assert_eq!(sb.volume_path("ro", "").unwrap(), data);
    assert!(!sb.is_read_only_volume("rw"));
    assert!(sb.is_read_only_volume("ro"));
    assert!(
        !dir.join("volumes/rw").exists(),
        "nothing of it in the pod dir"
    );
    // fsGroup as on an emptyDir, over what earlier pods left too.
    assert_eq!((gid_of(&data), mode_of(&data)), (3000, 0o2777));
    assert_eq!(gid_of(&data.join("kept")), 3000);
    drop(cleanup);
    assert!(!dir.exists());
    assert_eq!(
        std::fs::read_to_string(data.join("kept")).unwrap(),
        "from an earlier pod"
    );

    // OnRootMismatch: a root that matches already is not walked.
    std::os::unix::fs::chown(data.join("kept"), None, Some(0)).unwrap();
    let on_mismatch = pod_with(Some("OnRootMismatch"));
    let sb = Sandbox::create(SandboxConfig {
        pod: &on_mismatch,
        ..config
    })
    .unwrap();
    let _cleanup = Cleanup(dir.clone());
    assert_eq!(gid_of(&data.join("kept")), 0);
    drop(sb);

    // A claim without data (removed), or a name no claim can have, fails the sandbox.
    let missing = pod(json!({
        "metadata": {"name": "db2"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "gone"}}],
        },
    }));
    let dir2 = tmp.path().join("ns/pods/db2");
    let err = Sandbox::create(SandboxConfig {
        dir: &dir2,
        pod: &missing,
        ..config
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "volume \"v\": persistentvolumeclaim \"gone\" not found"
    );
    assert!(!dir2.exists());
    let escaping = pod(json!({
        "metadata": {"name": "db3"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "../../pods"}}],
        },
    }));
    let err = Sandbox::planned(SandboxConfig {
        pod: &escaping,
        ..config
    })
    .unwrap_err();
    assert!(matches!(err, SandboxError::ClaimNotFound { .. }), "{err}");
}
