//! The pod sandbox: the namespaces, files and volumes every container of a pod shares.
//!
//! podctl has no pause container. [`Sandbox::create`] makes the pod's network, UTS and IPC
//! namespaces and pins them as bind-mounted files in the pod state dir; containers join them
//! by path from their OCI spec (see `oci.rs`). The same dir holds the pod's `/etc/hosts`,
//! `/etc/hostname`, `/etc/resolv.conf`, its `/dev/shm` tmpfs and its volumes:
//!
//! ```text
//! <dir>/ns/{net,uts,ipc}        namespace pins (bind mounts of nsfs files)
//! <dir>/etc/{hosts,hostname,resolv.conf}
//! <dir>/shm                     64 MiB tmpfs shared as /dev/shm
//! <dir>/volumes/<name>          emptyDir (a tmpfs mount for medium: Memory)
//! <dir>/volumes/<name>          configMap (disk), secret, downwardAPI, projected (tmpfs):
//!                               `..data` and links laid out by `projection`
//! ```
//!
//! A persistentVolumeClaim volume is its claim's data dir (see [`crate::claims`]), outside
//! the pod dir: containers bind it, the sandbox never creates or removes it.
//!
//! Nothing else is recorded: the kernel's mount table and the directory tree are the state,
//! so [`Sandbox::destroy`] works after a crash from the path alone.
//!
//! This module is the only place in podctl that makes raw namespace/mount syscalls.

pub mod dns;
mod files;
mod mounts;
mod namespaces;
mod ownership;
mod payload;
mod projection;
mod volumes;

pub(crate) use namespaces::tcp_socket_in;

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Pod, Volume, VolumeMount};
use nix::mount::MsFlags;

use crate::downward::{DownwardError, LiveFields};
use crate::manifest::Objects;
use projection::Written;
use volumes::VolumeRoot;

/// Longest kernel hostname (the kubelet's limit for `setHostnameAsFQDN`).
const MAX_HOSTNAME: usize = 64;

/// The tmpfs below the pod dir holding the pod's ConfigMaps and Secrets, and its file.
const OBJECTS_DIR: &str = "objects";
const OBJECTS_FILE: &str = "objects.json";

/// Options of the pod's `/dev/shm`: containerd CRI's sandbox shm (`mode=1777,size=65536k`).
const SHM_OPTIONS: &str = "mode=1777,size=65536k";

/// What [`Sandbox::create`] needs: where the pod's state lives, the (validated) pod, and
/// what its configMap, secret and downwardAPI volumes draw on.
#[derive(Debug, Clone, Copy)]
pub struct SandboxConfig<'a> {
    /// Pod state dir, e.g. `<root>/<ns>/pods/<pod>`; owned entirely by the sandbox.
    pub dir: &'a Path,
    pub pod: &'a Pod,
    /// The ConfigMaps and Secrets the pod's volumes name (not read by `planned`).
    pub objects: &'a Objects,
    /// The pod's host-side fields for downwardAPI volumes (not read by `planned`).
    pub live: &'a LiveFields,
    /// Where the claims of the pod's persistentVolumeClaim volumes live
    /// (`<root>/<ns>/claims`, see [`crate::claims`]); never written by the sandbox.
    pub claims_dir: &'a Path,
}

/// Host paths of a pod's shared resources, as containers must reference them.
///
/// A `Sandbox` is plain data: it does not own the mounts (dropping it changes nothing) so
/// that a restarted podctl can rebuild it with [`Sandbox::planned`] for an existing pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// The pod state dir.
    pub dir: PathBuf,
    /// Network namespace pin; `None` for `hostNetwork` pods, which use the node's.
    pub netns: Option<PathBuf>,
    /// UTS namespace pin; `None` for `hostNetwork` pods, which (as in Kubernetes) also use
    /// the node's UTS namespace and therefore its hostname.
    pub utsns: Option<PathBuf>,
    /// IPC namespace pin (always private: podctl does not support `hostIPC`).
    pub ipcns: PathBuf,
    /// PID namespace pin of a `shareProcessNamespace` pod: the namespace of its pause
    /// process (see [`Sandbox::pin_pid_namespace`]); `None`: each container has its own.
    pub pidns: Option<PathBuf>,
    /// File to bind at `/etc/hosts`.
    pub hosts: PathBuf,
    /// File to bind at `/etc/hostname`.
    pub hostname: PathBuf,
    /// File to bind at `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
    /// Directory (a tmpfs) to bind at `/dev/shm`.
    pub shm: PathBuf,
    /// The hostname containers see: `spec.hostname`, else the pod name (its FQDN with
    /// `setHostnameAsFQDN` and a `subdomain`); the node's hostname
    /// for `hostNetwork` pods.
    pub hostname_value: String,
    /// The short name `/etc/hosts` maps the pod's address to (its FQDN leads the line).
    host_name: String,
    /// What the kubelet reports as `DNSConfigForming` warnings: resolver lines cut to
    /// libc's limits when the sandbox was created.
    pub dns_warnings: Vec<String>,
    volumes: BTreeMap<String, VolumeRoot>,
}

/// Why a sandbox could not be created, used or removed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The state dir already exists: the pod is running, or a crashed run left it behind
    /// (then `destroy` it first).
    #[error("pod {pod:?} already has a sandbox at {}", dir.display())]
    AlreadyExists { pod: String, dir: PathBuf },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{op} {}: {source}", path.display())]
    Sys {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("the namespace thread of pod {pod:?} panicked")]
    NamespaceThread { pod: String },
    #[error("pod {pod:?}: {field} is not supported")]
    Unsupported { pod: String, field: &'static str },
    #[error("volume {volume:?}: {reason}")]
    UnsupportedVolume { volume: String, reason: String },
    /// A hostPath `type` check failed (the kubelet's "hostPath type check failed").
    #[error("volume {volume:?}: hostPath type check failed: {} is not a {expected}", path.display())]
    HostPathType {
        volume: String,
        path: PathBuf,
        expected: String,
    },
    #[error("volume {volume:?}: invalid emptyDir sizeLimit {quantity:?}")]
    SizeLimit {
        volume: String,
        quantity: String,
        #[source]
        source: crate::manifest::QuantityError,
    },
    /// `setHostnameAsFQDN` with an FQDN the kernel cannot hold: the kubelet's message.
    #[error("failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} is too long (64 characters is the max, {} characters requested)", fqdn.len())]
    FqdnTooLong { fqdn: String },
    /// A persistentVolumeClaim volume whose claim has no data dir (admission checks that
    /// it exists; this is the sandbox's own guard).
    #[error("volume {volume:?}: persistentvolumeclaim {claim:?} not found")]
    ClaimNotFound { volume: String, claim: String },
    #[error("volume {volume:?} is not a volume of this pod")]
    UnknownVolume { volume: String },
    /// A configMap volume (or projected source) names a ConfigMap that is not given and
    /// not `optional`: the kubelet's message.
    #[error("volume {volume:?}: configmap {config_map:?} not found")]
    ConfigMapNotFound { volume: String, config_map: String },
    #[error("volume {volume:?}: secret {secret:?} not found")]
    SecretNotFound { volume: String, secret: String },
    /// An `items[].key` the ConfigMap lacks, the volume not being `optional`.
    #[error("volume {volume:?}: configmap {config_map:?}: configmap references non-existent config key: {key}")]
    ConfigMapKeyNotFound {
        volume: String,
        config_map: String,
        key: String,
    },
    #[error("volume {volume:?}: secret {secret:?}: references non-existent secret key: {key}")]
    SecretKeyNotFound {
        volume: String,
        secret: String,
        key: String,
    },
    /// A downwardAPI `fieldRef` the downward API does not offer.
    #[error("volume {volume:?}: item {path:?}: unsupported fieldPath: {field_path}")]
    DownwardField {
        volume: String,
        path: String,
        field_path: String,
    },
    /// A `resourceFieldRef.containerName` naming no container or init container.
    #[error("volume {volume:?}: item {path:?}: container {container:?} not found")]
    DownwardContainer {
        volume: String,
        path: String,
        container: String,
    },
    #[error("volume {volume:?}: item {path:?}: resourceFieldRef cannot be resolved")]
    DownwardResource {
        volume: String,
        path: String,
        #[source]
        source: DownwardError,
    },
    /// A file path of a configMap, secret, downwardAPI or projected volume that the
    /// kubelet's `validatePath` refuses (`reason` is its wording).
    #[error("volume {volume:?}: invalid path {path:?}: {reason}")]
    InvalidProjectionPath {
        volume: String,
        path: String,
        reason: &'static str,
    },
    /// A secret, downwardAPI or projected volume's tmpfs is gone (the sandbox was
    /// released): its files are not written to the disk below.
    #[error("volume {volume:?}: its tmpfs at {} is not mounted", dir.display())]
    VolumeNotMounted { volume: String, dir: PathBuf },
    /// The subPath resolves (through a symlink) to somewhere outside the volume.
    #[error("volume {volume:?}: subPath {sub_path:?} escapes the volume")]
    SubPathEscapes { volume: String, sub_path: String },
    #[error("volume {volume:?}: subPath {sub_path:?} must be relative and must not contain '..'")]
    InvalidSubPath { volume: String, sub_path: String },
    /// `subPathExpr` needs the container's environment: expand it with `expand::expand`
    /// and call [`Sandbox::volume_path`].
    #[error("volume {volume:?}: subPathExpr must be expanded by the caller")]
    SubPathExprNotExpanded { volume: String },
    /// `destroy` refuses to delete files while something is still mounted below the dir
    /// (deleting would reach into the mounted filesystem).
    #[error("{} still has mounts after unmounting: {mounts:?}", dir.display())]
    MountsRemain { dir: PathBuf, mounts: Vec<PathBuf> },
    /// Creation failed and so did the cleanup after it: both are reported.
    #[error("{error}; cleaning up the half-created sandbox also failed: {cleanup}")]
    CleanupFailed {
        error: Box<SandboxError>,
        cleanup: Box<SandboxError>,
    },
}

impl Sandbox {
    /// The layout `create` makes for this pod, without touching the filesystem.
    ///
    /// Used by `create` itself, by a restarted podctl to address an existing pod's sandbox,
    /// and by tests of spec generation.
    pub fn planned(cfg: SandboxConfig<'_>) -> Result<Sandbox, SandboxError> {
        let dir = cfg.dir.to_owned();
        let spec = cfg.pod.spec.as_ref();
        let pod_name = pod_name(cfg.pod);
        if spec.and_then(|s| s.host_ipc).unwrap_or(false) {
            return Err(SandboxError::Unsupported {
                pod: pod_name,
                field: "spec.hostIPC",
            });
        }
        let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
        let hostname_value = if host_network {
            nix::unistd::gethostname()
                .map_err(|source| SandboxError::Sys {
                    op: "gethostname",
                    path: PathBuf::from("/proc/sys/kernel/hostname"),
                    source,
                })?
                .to_string_lossy()
                .into_owned()
        } else {
            spec.and_then(|s| s.hostname.clone())
                .filter(|h| !h.is_empty())
                .unwrap_or(pod_name)
        };
        let host_name = hostname_value.clone();
        let fqdn = files::pod_fqdn(cfg.pod, &host_name);
        let hostname_value = match fqdn {
            // The kubelet's rule: the kernel's hostname is at most 64 characters.
            Some(fqdn)
                if !host_network && spec.and_then(|s| s.set_hostname_as_fqdn) == Some(true) =>
            {
                if fqdn.len() > MAX_HOSTNAME {
                    return Err(SandboxError::FqdnTooLong { fqdn });
                }
                fqdn
            }
            _ => hostname_value,
        };
        let volumes_dir = dir.join("volumes");
        let volumes = spec
            .and_then(|s| s.volumes.as_deref())
            .unwrap_or_default()
            .iter()
            .map(|v| {
                Ok((
                    v.name.clone(),
                    volumes::plan(&volumes_dir, cfg.claims_dir, v)?,
                ))
            })
            .collect::<Result<_, SandboxError>>()?;
        let ns = dir.join("ns");
        let etc = dir.join("etc");
        let share_pids = spec
            .and_then(|s| s.share_process_namespace)
            .unwrap_or(false)
            && !spec.and_then(|s| s.host_pid).unwrap_or(false);
        Ok(Sandbox {
            pidns: share_pids.then(|| ns.join("pid")),
            netns: (!host_network).then(|| ns.join("net")),
            utsns: (!host_network).then(|| ns.join("uts")),
            ipcns: ns.join("ipc"),
            hosts: etc.join("hosts"),
            hostname: etc.join("hostname"),
            resolv_conf: etc.join("resolv.conf"),
            shm: dir.join("shm"),
            hostname_value,
            host_name,
            dns_warnings: Vec::new(),
            volumes,
            dir,
        })
    }

    /// Creates the state dir (which must not exist: error `AlreadyExists` naming the pod),
    /// namespaces, files and volumes. On any failure it undoes what it did (calls
    /// [`Sandbox::destroy`]) before returning the error.
    ///
    /// Blocking (syscalls, a helper thread): async callers use `spawn_blocking`.
    pub fn create(cfg: SandboxConfig<'_>) -> Result<Sandbox, SandboxError> {
        let sandbox = Sandbox::planned(cfg)?;
        if let Some(parent) = sandbox.dir.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o711)
                .create(parent)
                .map_err(|source| SandboxError::Io {
                    op: "create",
                    path: parent.to_owned(),
                    source,
                })?;
        }
        // 0711: the state is root's; containers reach volumes through bind mounts, and
        // runc (root) resolves every path.
        match std::fs::DirBuilder::new().mode(0o711).create(&sandbox.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(SandboxError::AlreadyExists {
                    pod: pod_name(cfg.pod),
                    dir: sandbox.dir,
                })
            }
            Err(source) => {
                return Err(SandboxError::Io {
                    op: "create",
                    path: sandbox.dir,
                    source,
                })
            }
        }
        let mut sandbox = sandbox;
        match sandbox.populate(cfg) {
            Ok(warnings) => {
                sandbox.dns_warnings = warnings;
                tracing::debug!(pod = %pod_name(cfg.pod), dir = %sandbox.dir.display(), "sandbox created");
                Ok(sandbox)
            }
            Err(error) => match Sandbox::destroy(&sandbox.dir) {
                Ok(()) => Err(error),
                Err(cleanup) => Err(SandboxError::CleanupFailed {
                    error: Box::new(error),
                    cleanup: Box::new(cleanup),
                }),
            },
        }
    }

    /// Makes the sandbox's dirs, files, namespaces and volumes; returns the warnings forming
    /// its resolv.conf gave.
    fn populate(&self, cfg: SandboxConfig<'_>) -> Result<Vec<String>, SandboxError> {
        let pod = cfg.pod;
        let mkdir = |path: PathBuf, mode: u32| {
            std::fs::DirBuilder::new()
                .mode(mode)
                .create(&path)
                .map_err(|source| SandboxError::Io {
                    op: "create",
                    path,
                    source,
                })
        };
        mkdir(self.dir.join("ns"), 0o711)?;
        mkdir(self.dir.join("etc"), 0o755)?;
        mkdir(self.dir.join("volumes"), 0o711)?;
        mkdir(self.shm.clone(), 0o755)?;

        files::write_file(&self.hostname, &format!("{}\n", self.hostname_value))?;
        files::write_file(&self.hosts, &files::hosts_for(pod, &self.host_name, &[])?)?;
        let (resolv_conf, dns_warnings) = files::resolv_conf_for(pod)?;
        files::write_file(&self.resolv_conf, &resolv_conf)?;

        namespaces::create(&namespaces::NamespacePlan {
            pod: &pod_name(pod),
            netns: self.netns.as_deref(),
            utsns: self
                .utsns
                .as_deref()
                .map(|p| (p, self.hostname_value.as_str())),
            ipcns: &self.ipcns,
        })?;

        mounts::mount_tmpfs(
            &self.shm,
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            SHM_OPTIONS,
        )?;

        if !cfg.objects.is_empty() {
            self.keep_objects(cfg.objects)?;
        }

        // The kubelet gives `fsGroup` the pod's emptyDirs, writable claims and (with the
        // read-only mask) its configMap, secret, downwardAPI and projected volumes; hostPaths
        // stay as they are.
        let fs_group = fs_group(pod);
        for volume in spec_volumes(pod) {
            let Some(root) = self.volumes.get(&volume.name) else {
                continue;
            };
            match root {
                VolumeRoot::Projected { dir, .. } => {
                    // Like the kubelet: the objects are read before the volume is made, and
                    // the tmpfs is mounted before any file is written into it.
                    let files = payload::payload(volume, pod, cfg.objects, cfg.live)?;
                    volumes::set_up(volume, root)?;
                    projection::write(&volume.name, dir, &files, fs_group)?;
                }
                VolumeRoot::EmptyDir(dir) => {
                    volumes::set_up(volume, root)?;
                    if let Some(gid) = fs_group {
                        ownership::set_volume_ownership(dir, gid, ownership::Access::ReadWrite)?;
                    }
                }
                VolumeRoot::HostPath(_) => volumes::set_up(volume, root)?,
                VolumeRoot::Claim { dir, read_only } => {
                    volumes::set_up(volume, root)?;
                    // As the kubelet's local volumes: a read-only mount's files are left
                    // as they are.
                    if let (Some(gid), false) = (fs_group, *read_only) {
                        if !(fs_group_on_root_mismatch(pod)
                            && ownership::root_matches(dir, gid, ownership::Access::ReadWrite))
                        {
                            ownership::set_volume_ownership(
                                dir,
                                gid,
                                ownership::Access::ReadWrite,
                            )?;
                        }
                    }
                }
            }
        }
        Ok(dns_warnings)
    }

    /// Keeps the pod's ConfigMaps and Secrets for a supervisor that adopts the pod (its
    /// containers' env is built from them at every restart): on a tmpfs of root's alone,
    /// since Secrets must never reach the disk; gone after a reboot, as the pins are.
    fn keep_objects(&self, objects: &crate::manifest::Objects) -> Result<(), SandboxError> {
        let dir = self.dir.join(OBJECTS_DIR);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|source| SandboxError::Io {
                op: "create",
                path: dir.clone(),
                source,
            })?;
        mounts::mount_tmpfs(
            &dir,
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            "mode=0700",
        )?;
        let json = objects.to_json().map_err(|e| SandboxError::Io {
            op: "encode objects",
            path: dir.clone(),
            source: e.into(),
        })?;
        files::write_private(&dir.join(OBJECTS_FILE), &json)
    }

    /// Replaces the kept ConfigMaps and Secrets with `objects` (their content changed in
    /// the daemon's manifests dir), so that restarted containers read the new values.
    pub fn keep_objects_again(
        &self,
        objects: &crate::manifest::Objects,
    ) -> Result<(), SandboxError> {
        // A pod given no objects has no tmpfs for them, and can gain none without a new
        // manifest (which replaces the pod).
        let Ok(dir) = self.dir.join(OBJECTS_DIR).canonicalize() else {
            return Ok(());
        };
        if !mounts::is_mount_point(&dir)? {
            return Ok(());
        }
        let json = objects.to_json().map_err(|e| SandboxError::Io {
            op: "encode objects",
            path: dir.clone(),
            source: e.into(),
        })?;
        let next = dir.join(format!("{OBJECTS_FILE}.new"));
        let _ = std::fs::remove_file(&next);
        files::write_private(&next, &json)?;
        std::fs::rename(&next, dir.join(OBJECTS_FILE)).map_err(|source| SandboxError::Io {
            op: "rename",
            path: next,
            source,
        })
    }

    /// The ConfigMaps and Secrets kept for the pod in `dir` (none when it was given none).
    pub fn kept_objects(dir: &Path) -> Result<crate::manifest::Objects, SandboxError> {
        let path = dir.join(OBJECTS_DIR).join(OBJECTS_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                crate::manifest::Objects::from_json(&bytes).map_err(|e| SandboxError::Io {
                    op: "decode objects",
                    path,
                    source: e.into(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
            Err(source) => Err(SandboxError::Io {
                op: "read",
                path,
                source,
            }),
        }
    }

    /// Whether containers must mount `volume` read-only whatever their `readOnly` says:
    /// configMap, secret, downwardAPI and projected volumes (the kubelet's read-only
    /// plugins), and a persistentVolumeClaim volume with `readOnly: true`. `false` for a
    /// volume the pod does not have.
    pub fn is_read_only_volume(&self, volume: &str) -> bool {
        matches!(
            self.volumes.get(volume),
            Some(
                VolumeRoot::Projected { .. }
                    | VolumeRoot::Claim {
                        read_only: true,
                        ..
                    }
            )
        )
    }

    /// Recomputes every configMap, secret, downwardAPI and projected volume of `pod` (the
    /// pod this sandbox was made for) from `objects` and `live`, and publishes each changed
    /// one atomically (containers see the old files or the new ones, never a mix). Returns
    /// the names of the volumes that changed.
    ///
    /// Every volume is tried; if some failed, the first error is returned (the others'
    /// updates stand, and a failed one keeps its previous files). Calls for one sandbox
    /// must not overlap. Blocking.
    pub fn update_projected(
        &self,
        pod: &Pod,
        objects: &Objects,
        live: &LiveFields,
    ) -> Result<Vec<String>, SandboxError> {
        let fs_group = fs_group(pod);
        let mut changed = Vec::new();
        let mut first_error = None;
        for volume in spec_volumes(pod) {
            let Some(VolumeRoot::Projected { dir, tmpfs }) = self.volumes.get(&volume.name) else {
                continue;
            };
            match update_volume(volume, dir, *tmpfs, pod, objects, live, fs_group) {
                Ok(Written::Updated) => changed.push(volume.name.clone()),
                Ok(Written::Unchanged) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(changed),
        }
    }

    /// The root of the pause process of a `shareProcessNamespace` pod: an empty dir holding
    /// the host's top-level links into `/usr` (`lib -> usr/lib` ...), made now. Returns the
    /// host dirs to bind read-only at the same place (`/usr`, and `/lib*` where the host has
    /// them as real dirs), so that podctl's own binary runs there.
    pub fn pause_rootfs(&self) -> Result<(PathBuf, Vec<PathBuf>), SandboxError> {
        let root = self.dir.join("pause");
        let io = |op, path: &Path| {
            let path = path.to_owned();
            move |source| SandboxError::Io { op, path, source }
        };
        match std::fs::DirBuilder::new().mode(0o755).create(&root) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("create", &root)(e)),
        }
        let mut binds = vec![PathBuf::from("/usr")];
        for name in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
            let host = Path::new("/").join(name);
            let Ok(meta) = std::fs::symlink_metadata(&host) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&host).map_err(io("readlink", &host))?;
                let link = root.join(name);
                if std::fs::symlink_metadata(&link).is_err() {
                    std::os::unix::fs::symlink(&target, &link).map_err(io("symlink", &link))?;
                }
            } else if meta.is_dir() {
                binds.push(host);
            }
        }
        Ok((root, binds))
    }

    /// Pins the PID namespace of the pod's pause process (`pid`), which the containers of a
    /// `shareProcessNamespace` pod then join by path.
    pub fn pin_pid_namespace(&self, pid: u32) -> Result<(), SandboxError> {
        let Some(pin) = &self.pidns else {
            return Ok(());
        };
        namespaces::pin_process_namespace(pid, "pid", pin)
    }

    /// Rewrites the pod's `/etc/hosts` with its addresses (once its network is attached),
    /// in place, so that containers created already see it.
    pub fn write_hosts(&self, pod: &Pod, pod_ips: &[std::net::IpAddr]) -> Result<(), SandboxError> {
        let content = files::hosts_for(pod, &self.host_name, pod_ips)?;
        // An adopted pod's file is already right; rewriting it would race its readers and
        // drop what its containers wrote there.
        if std::fs::read_to_string(&self.hosts).is_ok_and(|c| c == content) {
            return Ok(());
        }
        files::overwrite_file(&self.hosts, &content)
    }

    /// Whether the pod's namespace pins still hold namespaces (they are gone after a reboot,
    /// or once the sandbox was released): a pod can only be adopted while they do.
    pub fn is_intact(&self) -> bool {
        /// `NSFS_MAGIC`: a pinned namespace file lives on nsfs.
        const NSFS_MAGIC: i64 = 0x6e73_6673;
        let pinned = |p: &Path| {
            nix::sys::statfs::statfs(p).is_ok_and(|s| s.filesystem_type().0 == NSFS_MAGIC)
        };
        self.netns.as_deref().is_none_or(pinned)
            && self.utsns.as_deref().is_none_or(pinned)
            && self.pidns.as_deref().is_none_or(pinned)
            && pinned(&self.ipcns)
    }

    /// Releases the kernel resources of a finished pod but keeps its files: detaches every
    /// mount below `dir` (namespace pins, shm, `medium: Memory` volumes and the tmpfs of
    /// secret, downwardAPI and projected volumes, whose content is lost) and leaves disk
    /// emptyDirs and configMap volumes, the etc files and anything else in `dir` for
    /// inspection until [`Sandbox::destroy`]. Idempotent; a missing dir is `Ok`.
    pub fn release(dir: &Path) -> Result<(), SandboxError> {
        let Some(canonical) = canonical_dir(dir)? else {
            return Ok(());
        };
        let remaining = unmount_all_under(&canonical)?;
        if remaining.is_empty() {
            Ok(())
        } else {
            Err(SandboxError::MountsRemain {
                dir: canonical,
                mounts: remaining,
            })
        }
    }

    /// Removes everything under `dir`: detaches every mount below it (namespace pins, shm,
    /// tmpfs volumes), deepest first, then deletes the tree without following symlinks.
    ///
    /// Idempotent and needs no in-memory state, so it cleans up after a crash; a missing
    /// dir is `Ok`. Refuses to delete while a mount below `dir` survives unmounting.
    pub fn destroy(dir: &Path) -> Result<(), SandboxError> {
        let Some(canonical) = canonical_dir(dir)? else {
            return Ok(());
        };
        let remaining = unmount_all_under(&canonical)?;
        if !remaining.is_empty() {
            return Err(SandboxError::MountsRemain {
                dir: canonical,
                mounts: remaining,
            });
        }
        // std's remove_dir_all does not follow symlinks (it unlinks them).
        match std::fs::remove_dir_all(&canonical) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(SandboxError::Io {
                op: "remove",
                path: canonical,
                source,
            }),
        }
    }

    /// Host path to bind into a container for one volumeMount, with `subPath` resolved
    /// safely inside the volume (created as a directory if missing, as the kubelet does).
    ///
    /// `subPathExpr` is refused: it needs the container environment, so the caller expands
    /// it and calls [`Sandbox::volume_path`].
    pub fn mount_source(&self, mount: &VolumeMount) -> Result<PathBuf, SandboxError> {
        if mount
            .sub_path_expr
            .as_deref()
            .is_some_and(|e| !e.is_empty())
        {
            return Err(SandboxError::SubPathExprNotExpanded {
                volume: mount.name.clone(),
            });
        }
        self.volume_path(&mount.name, mount.sub_path.as_deref().unwrap_or(""))
    }

    /// Host path of `sub_path` inside volume `volume` (`""` = the volume root); see
    /// [`Sandbox::mount_source`].
    pub fn volume_path(&self, volume: &str, sub_path: &str) -> Result<PathBuf, SandboxError> {
        let root = self
            .volumes
            .get(volume)
            .ok_or_else(|| SandboxError::UnknownVolume {
                volume: volume.to_owned(),
            })?;
        if sub_path.is_empty() {
            return Ok(root.path().to_owned());
        }
        volumes::resolve_sub_path(volume, root.path(), sub_path)
    }
}

/// `dir` canonicalized (mountinfo paths are canonical), `None` if it does not exist.
fn canonical_dir(dir: &Path) -> Result<Option<PathBuf>, SandboxError> {
    match dir.canonicalize() {
        Ok(c) => Ok(Some(c)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SandboxError::Io {
            op: "canonicalize",
            path: dir.to_owned(),
            source,
        }),
    }
}

/// Detaches every mount strictly below `canonical`; returns what is still mounted after a
/// bounded number of passes (stacked mounts need one pass each).
fn unmount_all_under(canonical: &Path) -> Result<Vec<PathBuf>, SandboxError> {
    let mut remaining = mounts::mount_points_under(canonical)?;
    for _ in 0..16 {
        if remaining.is_empty() {
            break;
        }
        for mount in &remaining {
            mounts::detach(mount)?;
        }
        remaining = mounts::mount_points_under(canonical)?;
    }
    Ok(remaining)
}

/// Rewrites one projected volume of a running sandbox.
fn update_volume(
    volume: &Volume,
    dir: &Path,
    tmpfs: bool,
    pod: &Pod,
    objects: &Objects,
    live: &LiveFields,
    fs_group: Option<u32>,
) -> Result<Written, SandboxError> {
    let files = payload::payload(volume, pod, objects, live)?;
    if tmpfs {
        let mounted = canonical_dir(dir)?
            .map(|c| mounts::is_mount_point(&c))
            .transpose()?
            .unwrap_or(false);
        if !mounted {
            return Err(SandboxError::VolumeNotMounted {
                volume: volume.name.clone(),
                dir: dir.to_owned(),
            });
        }
    }
    projection::write(&volume.name, dir, &files, fs_group)
}

fn spec_volumes(pod: &Pod) -> &[Volume] {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default()
}

/// `securityContext.fsGroupChangePolicy: OnRootMismatch`: a volume whose root has the
/// group and permissions already is not walked.
fn fs_group_on_root_mismatch(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|sc| sc.fs_group_change_policy.as_deref())
        == Some("OnRootMismatch")
}

/// The pod's `securityContext.fsGroup`, if it is a valid gid.
fn fs_group(pod: &Pod) -> Option<u32> {
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|sc| sc.fs_group)
        .and_then(|g| u32::try_from(g).ok())
}

fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests;
