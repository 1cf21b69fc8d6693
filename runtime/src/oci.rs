//! Container + image config + sandbox -> OCI runtime spec, as pure functions.
//!
//! The target is the spec containerd's CRI plugin generates for a Kubernetes container
//! (containerd 1.6 `oci.populateDefaultUnixSpec` + `containerSpec`), because that is what
//! manifests written for real clusters expect: same capabilities, mounts, masked paths,
//! device rules. Everything is built explicitly: `oci_spec`'s defaults (and its builders,
//! which fall back to them) describe a different, youki-flavoured container.
//!
//! The namespaces shared by the pod are joined by path (the sandbox pins); runc performs the
//! `setns`, podctl makes no syscall here.
//!
//! The security context follows Kubernetes' precedence (the container's fields over the
//! pod's) and containerd's CRI plugin for what they mean: `seccompProfile` (see
//! [`crate::seccomp`]; podctl's default is `RuntimeDefault`), `privileged` (every capability
//! podctl holds, no masked or read-only paths, `/sys` and the cgroup fs writable, the host's
//! devices, no seccomp), `procMount: Unmasked` (no masked or read-only paths), the pod's
//! `sysctls` (written by runc inside the pod's namespaces, in every container alike) and
//! `fsGroup` (a supplementary group of every container). Only three inputs are read from the
//! host, each only when a container asks for it: a `Localhost` seccomp profile, and for a
//! privileged container the capabilities podctl holds and the devices under `/dev`.
//!
//! `resources` become the cgroup values the kubelet asks containerd for (see
//! [`crate::cgroups`]): CPU shares, period and quota, the memory limit (memory+swap too
//! where the host accounts swap), and the process's `oom_score_adj` per QoS class, which
//! needs the host's memory capacity ([`ContainerInput::host`]). The container's cgroup sits
//! under its pod's: `/podctl/<pod cgroup>/<container id>`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxCpu, LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType,
    LinuxMemory, LinuxNamespace, LinuxNamespaceType, LinuxResources, LinuxSeccomp, Mount,
    PosixRlimitBuilder, PosixRlimitType, Process, Root, Spec, User,
};

use crate::cgroups;
use crate::expand;
use crate::sandbox::Sandbox;
use crate::seccomp;

/// Annotation the runc v2 shim groups containers by: one shim process per pod.
pub const SHIM_GROUP_ANNOTATION: &str = "io.containerd.runc.v2.group";

/// OCI spec version runc 1.1 implements.
const OCI_VERSION: &str = "1.0.2-dev";

/// containerd's default capability set (`oci.defaultUnixCaps`), granted to every
/// unprivileged container unless `securityContext.capabilities` changes it.
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// containerd's default masked paths (plus `/sys/devices/virtual/powercap`, masked since
/// containerd 1.6.x/1.7 for the PLATYPUS side channel).
const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// One resolved volume mount of a container (the host side comes from
/// `Sandbox::mount_source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMountSource {
    /// Host path to bind.
    pub source: PathBuf,
    /// `mountPath` in the container.
    pub destination: PathBuf,
    /// `readOnly`: bind mounted `ro`.
    pub read_only: bool,
}

/// Everything a container's spec depends on; no I/O happens while building it.
#[derive(Debug, Clone)]
pub struct ContainerInput<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub image: &'a ImageConfiguration,
    pub sandbox: &'a Sandbox,
    /// containerd container id; names the container's cgroup.
    pub container_id: &'a str,
    /// Shim group id shared by all containers of the pod (one runc shim per pod); names the
    /// pod's cgroup.
    pub shim_group: &'a str,
    /// The host's memory capacity and swap accounting (`cgroups::host()`).
    pub host: &'a cgroups::Host,
    /// The container's volume mounts, in `volumeMounts` order, already resolved.
    pub mounts: Vec<VolumeMountSource>,
    /// The ConfigMaps and Secrets `valueFrom`/`envFrom` read.
    pub objects: &'a crate::manifest::Objects,
    /// The pod fields known on the host (node name, addresses) `fieldRef` reads.
    pub live: &'a crate::downward::LiveFields,
}

/// Why a container's spec cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OciError {
    /// The image `User` is a name: resolving it needs the image's /etc/passwd, which
    /// podctl does not read yet.
    #[error("container {container:?}: image user {user:?} is a name; named users aren't supported yet: the image's USER must be numeric (uid or uid:gid) for now; rebuild the image with a numeric USER")]
    UserByName { container: String, user: String },
    #[error("container {container:?}: invalid image user {user:?}")]
    InvalidUser { container: String, user: String },
    /// `runAsNonRoot` and a process that would run as root: the kubelet's
    /// CreateContainerConfigError (the waiting reason it gives the container), in its words.
    #[error("CreateContainerConfigError: {0}")]
    RunAsNonRoot(String),
    /// An `env` or `envFrom` source that cannot be read: the kubelet's
    /// `CreateContainerConfigError`.
    #[error("container {container:?}: CreateContainerConfigError: {source}")]
    Env {
        container: String,
        #[source]
        source: Box<expand::ExpandError>,
    },
    #[error("container {container:?}: {source}")]
    Command {
        container: String,
        #[source]
        source: expand::ExpandError,
    },
    #[error("container {container:?}: unknown capability {capability:?}")]
    UnknownCapability {
        container: String,
        capability: String,
    },
    /// A field podctl cannot honour yet; refused rather than silently ignored.
    #[error("container {container:?}: {field} is not supported")]
    Unsupported {
        container: String,
        field: &'static str,
    },
    /// A `Localhost` seccomp profile that cannot be read or used: the pod fails before any
    /// of its containers runs, as the kubelet fails the container.
    #[error("container {container:?}: {field}: cannot load seccomp profile {}: {reason}", path.display())]
    SeccompProfile {
        container: String,
        /// The manifest field that chose the profile (the container's or the pod's).
        field: String,
        path: PathBuf,
        reason: String,
    },
    /// The host's devices, which a privileged container gets, cannot be listed.
    #[error(
        "container {container:?}: listing the host's devices for a privileged container: {reason}"
    )]
    HostDevices { container: String, reason: String },
    /// A `resources` quantity that does not parse (a manifest that was not validated).
    #[error(transparent)]
    Resources(#[from] cgroups::ResourceError),
}

/// Builds the OCI runtime spec for one container of a pod.
pub fn container_spec(input: &ContainerInput<'_>) -> Result<Spec, OciError> {
    let c = input.container;
    let name = || c.name.clone();
    let unsupported = |field| OciError::Unsupported {
        container: name(),
        field,
    };
    let pod_spec = input.pod.spec.as_ref();
    let pod_sc = pod_spec.and_then(|s| s.security_context.as_ref());
    let sc = c.security_context.as_ref();
    let privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
    if c.tty.unwrap_or(false) {
        return Err(unsupported("tty"));
    }

    let image = input.image.config().as_ref();
    let strings = |v: Option<&Vec<String>>| v.cloned().unwrap_or_default();

    // Process.
    let sources = expand::EnvSources {
        pod: input.pod,
        objects: input.objects,
        live: input.live,
    };
    let kubelet_env = expand::kubelet_env(c, &sources).map_err(|source| OciError::Env {
        container: name(),
        source: Box::new(source),
    })?;
    let env = expand::container_env(
        image
            .and_then(|i| i.env().as_ref())
            .map(Vec::as_slice)
            .unwrap_or_default(),
        &kubelet_env,
        &input.sandbox.hostname_value,
    );
    let args = expand::command_line(
        &strings(image.and_then(|i| i.entrypoint().as_ref())),
        &strings(image.and_then(|i| i.cmd().as_ref())),
        c.command.as_deref().unwrap_or_default(),
        c.args.as_deref().unwrap_or_default(),
        &kubelet_env,
    )
    .map_err(|source| OciError::Command {
        container: name(),
        source,
    })?;
    let cwd = c
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| image.and_then(|i| i.working_dir().clone()))
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".to_owned());
    let user = process_user(input, image.and_then(|i| i.user().as_deref()))?;
    let mut caps = capabilities(c)?;
    if privileged {
        // containerd's `WithPrivileged` replaces the computed set (add/drop included).
        caps = current_capabilities();
    }
    let seccomp = if privileged {
        None
    } else {
        seccomp_profile(input, &caps)?
    };
    let mut process = Process::default();
    process.set_terminal(Some(false));
    process.set_console_size(None);
    process.set_user(user);
    process.set_args(Some(args));
    process.set_command_line(None);
    process.set_env(Some(
        env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
    ));
    process.set_cwd(PathBuf::from(cwd));
    let mut linux_caps = LinuxCapabilities::default();
    linux_caps.set_bounding(Some(caps.clone()));
    linux_caps.set_effective(Some(caps.clone()));
    linux_caps.set_permitted(Some(caps));
    linux_caps.set_inheritable(None);
    linux_caps.set_ambient(None);
    process.set_capabilities(Some(linux_caps));
    // Every field is set, so the builder's fallback to `PosixRlimit::default()` is moot.
    let nofile = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .hard(1024u64)
        .soft(1024u64)
        .build()
        .expect("all rlimit fields are set");
    process.set_rlimits(Some(vec![nofile]));
    // Kubernetes' default allowPrivilegeEscalation is true (no_new_privs off).
    process.set_no_new_privileges(Some(
        sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
    ));
    unset_process_extras(&mut process);
    let cgroup = cgroups::ContainerCgroup::of(input.pod, c, input.host)?;
    // -997..=1000: always fits.
    process.set_oom_score_adj(i32::try_from(cgroup.oom_score_adj).ok());

    // Root.
    let mut root = Root::default();
    root.set_path(PathBuf::from("rootfs"));
    root.set_readonly(Some(
        sc.and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
    ));

    let host_pid = pod_spec.and_then(|s| s.host_pid).unwrap_or(false);
    let sb = input.sandbox;
    // `shareProcessNamespace`: the pause process's PID namespace, else one of its own.
    let namespaces = pod_namespaces(sb, (!host_pid).then_some(sb.pidns.as_deref()));

    let mut resources = LinuxResources::default();
    let host_devices = if privileged {
        // containerd CRI: every host device, and the cgroup lets the container use them.
        resources.set_devices(Some(vec![allow_all_devices()]));
        Some(
            host_devices(Path::new("/dev")).map_err(|e| OciError::HostDevices {
                container: name(),
                reason: e.to_string(),
            })?,
        )
    } else {
        resources.set_devices(Some(device_rules()));
        None
    };
    let mut cpu = LinuxCpu::default();
    cpu.set_shares(Some(cgroup.cpu_shares));
    cpu.set_period(Some(cgroup.cpu_period));
    cpu.set_quota(cgroup.cpu_quota);
    resources.set_cpu(Some(cpu));
    if let Some(limit) = cgroup.memory_limit {
        // Limits beyond i64 bytes are refused by validation.
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut memory = LinuxMemory::default();
        memory.set_limit(Some(limit));
        // containerd: memory+swap equal to memory, so that the container does not swap.
        if input.host.swap_accounting {
            memory.set_swap(Some(limit));
        }
        resources.set_memory(Some(memory));
    }
    // The kubelet asks for no masked and no read-only paths for `Unmasked`; privileged
    // containers have none either.
    let unmasked = privileged || sc.and_then(|s| s.proc_mount.as_deref()) == Some("Unmasked");
    let sysctls: HashMap<String, String> = pod_sc
        .and_then(|s| s.sysctls.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|s| (crate::manifest::sysctl_with_dots(&s.name), s.value.clone()))
        .collect();
    let linux = LinuxSection {
        resources,
        cgroups_path: cgroups::container_cgroups_path(
            &cgroups::pod_cgroup_name(input.shim_group),
            input.container_id,
        ),
        namespaces,
        devices: host_devices,
        seccomp,
        masked: !unmasked,
        sysctl: (!sysctls.is_empty()).then_some(sysctls),
    }
    .build();
    let mut mounts = mounts(input)?;
    if privileged {
        writable_sysfs_and_cgroupfs(&mut mounts);
    }
    // runc sets the hostname only in a private UTS namespace; with hostNetwork the
    // container sees the node's hostname anyway.
    let hostname = sb.utsns.as_ref().map(|_| sb.hostname_value.clone());
    Ok(assemble(
        root,
        mounts,
        process,
        linux,
        hostname,
        input.shim_group,
    ))
}

/// The namespaces of a process of the pod: `pid` says which PID namespace (`None`: the
/// host's; `Some(None)`: a new one; `Some(Some(pin))`: that one); mount is private; IPC, UTS
/// and network are the pod's pins (UTS and network the host's for `hostNetwork`).
fn pod_namespaces(sb: &Sandbox, pid: Option<Option<&Path>>) -> Vec<LinuxNamespace> {
    let mut namespaces = Vec::new();
    if let Some(path) = pid {
        namespaces.push(namespace(LinuxNamespaceType::Pid, path));
    }
    namespaces.push(namespace(LinuxNamespaceType::Ipc, Some(&sb.ipcns)));
    if let Some(uts) = &sb.utsns {
        namespaces.push(namespace(LinuxNamespaceType::Uts, Some(uts)));
    }
    namespaces.push(namespace(LinuxNamespaceType::Mount, None));
    if let Some(net) = &sb.netns {
        namespaces.push(namespace(LinuxNamespaceType::Network, Some(net)));
    }
    namespaces
}

/// The process fields podctl never sets (oci_spec's defaults would).
fn unset_process_extras(process: &mut Process) {
    process.set_apparmor_profile(None);
    process.set_selinux_label(None);
    process.set_io_priority(None);
    process.set_scheduler(None);
    process.set_exec_cpu_affinity(None);
}

/// The `linux` section of a spec: what differs between podctl's processes, the rest fixed.
struct LinuxSection {
    resources: LinuxResources,
    cgroups_path: String,
    namespaces: Vec<LinuxNamespace>,
    devices: Option<Vec<LinuxDevice>>,
    seccomp: Option<LinuxSeccomp>,
    /// containerd's masked and read-only paths (not for privileged or `Unmasked`).
    masked: bool,
    sysctl: Option<HashMap<String, String>>,
}

impl LinuxSection {
    fn build(self) -> oci_spec::runtime::Linux {
        let paths = |list: &[&str]| {
            if self.masked {
                list.iter().map(|p| (*p).to_owned()).collect()
            } else {
                Vec::new()
            }
        };
        let mut linux = oci_spec::runtime::Linux::default();
        linux.set_masked_paths(Some(paths(&MASKED_PATHS)));
        linux.set_readonly_paths(Some(paths(&READONLY_PATHS)));
        linux.set_resources(Some(self.resources));
        linux.set_cgroups_path(Some(PathBuf::from(self.cgroups_path)));
        linux.set_namespaces(Some(self.namespaces));
        linux.set_devices(self.devices);
        linux.set_seccomp(self.seccomp);
        linux.set_rootfs_propagation(None);
        linux.set_mount_label(None);
        linux.set_sysctl(self.sysctl);
        linux.set_uid_mappings(None);
        linux.set_gid_mappings(None);
        linux
    }
}

/// A spec of the pod's shim group from its parts.
fn assemble(
    root: Root,
    mounts: Vec<Mount>,
    process: Process,
    linux: oci_spec::runtime::Linux,
    hostname: Option<String>,
    shim_group: &str,
) -> Spec {
    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.to_owned());
    spec.set_root(Some(root));
    spec.set_mounts(Some(mounts));
    spec.set_process(Some(process));
    spec.set_hostname(hostname);
    spec.set_domainname(None);
    spec.set_hooks(None);
    spec.set_annotations(Some(HashMap::from([(
        SHIM_GROUP_ANNOTATION.to_owned(),
        shim_group.to_owned(),
    )])));
    spec.set_linux(Some(linux));
    spec.set_solaris(None);
    spec.set_windows(None);
    spec.set_vm(None);
    spec.set_zos(None);
    spec
}

/// What the pause process of a `shareProcessNamespace` pod runs as.
#[derive(Debug, Clone)]
pub struct PauseInput<'a> {
    pub sandbox: &'a Sandbox,
    pub container_id: &'a str,
    pub shim_group: &'a str,
    /// Its root (see `Sandbox::pause_rootfs`) and the host dirs bound read-only into it.
    pub rootfs: &'a Path,
    pub binds: &'a [PathBuf],
    /// podctl's own binary, bound at `/pause` and run as `/pause <PAUSE_ARG>`.
    pub exe: &'a Path,
}

/// The argument that makes podctl's binary the pause process (see `crate::pause`).
pub const PAUSE_ARG: &str = "__podctl_pause";

/// The spec of a `shareProcessNamespace` pod's pause process: PID 1 of the pod's PID
/// namespace (which must outlive every container, as the kubelet's pause container does),
/// in the pod's other namespaces, as nobody, without capabilities, under the default
/// seccomp profile, on a read-only root holding only what podctl's binary needs.
pub fn pause_spec(input: &PauseInput<'_>) -> Spec {
    let mut process = Process::default();
    process.set_terminal(Some(false));
    process.set_console_size(None);
    let mut user = User::default();
    user.set_uid(65535);
    user.set_gid(65535);
    process.set_user(user);
    process.set_args(Some(vec!["/pause".to_owned(), PAUSE_ARG.to_owned()]));
    process.set_command_line(None);
    process.set_env(Some(vec!["PATH=/usr/bin:/bin".to_owned()]));
    process.set_cwd(PathBuf::from("/"));
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(HashSet::new()));
    caps.set_effective(Some(HashSet::new()));
    caps.set_permitted(Some(HashSet::new()));
    caps.set_inheritable(None);
    caps.set_ambient(None);
    process.set_capabilities(Some(caps));
    process.set_rlimits(None);
    process.set_no_new_privileges(Some(true));
    unset_process_extras(&mut process);
    process.set_oom_score_adj(None);

    let mut root = Root::default();
    root.set_path(input.rootfs.to_owned());
    root.set_readonly(Some(true));

    let mut mounts = proc_and_dev().to_vec();
    for dir in input.binds {
        mounts.push(bind(dir, dir, true));
    }
    mounts.push(bind(Path::new("/pause"), input.exe, true));

    let mut resources = LinuxResources::default();
    resources.set_devices(Some(device_rules()));
    let linux = LinuxSection {
        resources,
        cgroups_path: cgroups::container_cgroups_path(
            &cgroups::pod_cgroup_name(input.shim_group),
            input.container_id,
        ),
        namespaces: pod_namespaces(input.sandbox, Some(None)),
        devices: None,
        seccomp: Some(seccomp::runtime_default(&HashSet::new())),
        masked: true,
        sysctl: None,
    }
    .build();
    assemble(root, mounts, process, linux, None, input.shim_group)
}

fn namespace(typ: LinuxNamespaceType, path: Option<&Path>) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(typ);
    ns.set_path(path.map(Path::to_owned));
    ns
}

/// uid/gid: `securityContext.runAsUser`/`runAsGroup` (container over pod) override the
/// image `User` (`uid`, `uid:gid`, empty = root). A numeric uid without gid gets gid 0:
/// containerd would look the uid up in the image's /etc/passwd, which this pure function
/// cannot read.
fn process_user(input: &ContainerInput<'_>, image_user: Option<&str>) -> Result<User, OciError> {
    let c = input.container;
    let pod_sc = input
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref());
    let sc = c.security_context.as_ref();
    let run_as_user = sc
        .and_then(|s| s.run_as_user)
        .or_else(|| pod_sc.and_then(|s| s.run_as_user));
    let run_as_group = sc
        .and_then(|s| s.run_as_group)
        .or_else(|| pod_sc.and_then(|s| s.run_as_group));
    let invalid = |user: &str| OciError::InvalidUser {
        container: c.name.clone(),
        user: user.to_owned(),
    };
    let id = |v: i64| u32::try_from(v).map_err(|_| invalid(&v.to_string()));

    let (mut uid, mut gid) = (0u32, 0u32);
    if let Some(u) = run_as_user {
        uid = id(u)?;
    } else {
        let user = image_user.unwrap_or("").trim();
        if !user.is_empty() {
            let (u, g) = match user.split_once(':') {
                Some((u, g)) => (u, Some(g)),
                None => (user, None),
            };
            let numeric = |s: &str| s.parse::<u32>().ok();
            uid = match numeric(u) {
                Some(n) => n,
                None if u.is_empty() => return Err(invalid(user)),
                None => {
                    return Err(OciError::UserByName {
                        container: c.name.clone(),
                        user: user.to_owned(),
                    })
                }
            };
            if let Some(g) = g {
                gid = match numeric(g) {
                    Some(n) => n,
                    None if g.is_empty() => return Err(invalid(user)),
                    None => {
                        return Err(OciError::UserByName {
                            container: c.name.clone(),
                            user: user.to_owned(),
                        })
                    }
                };
            }
        }
    }
    if let Some(g) = run_as_group {
        gid = id(g)?;
    }
    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or_else(|| pod_sc.and_then(|s| s.run_as_non_root))
        .unwrap_or(false);
    if non_root && uid == 0 {
        let pod = format!(
            "{}_{}",
            input.pod.metadata.name.as_deref().unwrap_or_default(),
            input.pod.metadata.namespace.as_deref().unwrap_or("default")
        );
        // The kubelet's `verifyRunAsNonRoot`.
        return Err(OciError::RunAsNonRoot(if run_as_user.is_some() {
            format!(
                "container's runAsUser breaks non-root policy (pod: {pod:?}, container: {})",
                c.name
            )
        } else {
            format!(
                "container has runAsNonRoot and image will run as root (pod: {pod:?}, container: {})",
                c.name
            )
        }));
    }
    // The kubelet's order: the primary group, `fsGroup`, then `supplementalGroups`.
    let mut additional = vec![gid];
    let fs_group = pod_sc.and_then(|s| s.fs_group);
    for g in fs_group.iter().chain(
        pod_sc
            .and_then(|s| s.supplemental_groups.as_deref())
            .unwrap_or_default(),
    ) {
        let g = id(*g)?;
        if !additional.contains(&g) {
            additional.push(g);
        }
    }
    let mut user = User::default();
    user.set_uid(uid);
    user.set_gid(gid);
    user.set_umask(None);
    user.set_additional_gids(Some(additional));
    user.set_username(None);
    Ok(user)
}

/// containerd CRI's capability computation: the default set, then `add`/`drop`, where
/// `ALL` is applied first so that `drop: [ALL], add: [NET_ADMIN]` keeps NET_ADMIN.
fn capabilities(c: &Container) -> Result<HashSet<Capability>, OciError> {
    let mut caps: HashSet<Capability> = DEFAULT_CAPABILITIES.into_iter().collect();
    let Some(spec) = c
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.as_ref())
    else {
        return Ok(caps);
    };
    let add = spec.add.as_deref().unwrap_or_default();
    let drop = spec.drop.as_deref().unwrap_or_default();
    let is_all = |s: &String| s.eq_ignore_ascii_case("ALL");
    if add.iter().any(is_all) {
        caps = all_capabilities();
    }
    if drop.iter().any(is_all) {
        caps.clear();
    }
    let parse = |s: &String| {
        let upper = s.to_ascii_uppercase();
        upper
            .strip_prefix("CAP_")
            .unwrap_or(&upper)
            .parse::<Capability>()
            .map_err(|_| OciError::UnknownCapability {
                container: c.name.clone(),
                capability: s.clone(),
            })
    };
    for s in add.iter().filter(|s| !is_all(s)) {
        caps.insert(parse(s)?);
    }
    for s in drop.iter().filter(|s| !is_all(s)) {
        caps.remove(&parse(s)?);
    }
    Ok(caps)
}

/// Every capability runc 1.1 knows (`add: [ALL]`).
fn all_capabilities() -> HashSet<Capability> {
    CAPABILITY_BITS
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// The capabilities runc knows, indexed by their bit number (`CAP_CHOWN` is 0).
const CAPABILITY_BITS: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The capabilities podctl's process holds (`CapEff` of `/proc/self/status`), which is what
/// containerd gives a privileged container (`WithAllCurrentCapabilities`): runc cannot
/// grant more than it has. Every known capability if that cannot be read.
fn current_capabilities() -> HashSet<Capability> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok());
    match mask {
        Some(mask) => CAPABILITY_BITS
            .iter()
            .enumerate()
            .filter(|(bit, _)| mask & (1u64 << bit) != 0)
            .filter_map(|(_, s)| s.parse().ok())
            .collect(),
        None => all_capabilities(),
    }
}

/// The container's seccomp filter: its `seccompProfile`, else the pod's, else
/// `RuntimeDefault` (podctl's default, see [`crate::seccomp`]). `caps` is the final
/// bounding set, on which the default profile depends.
fn seccomp_profile(
    input: &ContainerInput<'_>,
    caps: &HashSet<Capability>,
) -> Result<Option<LinuxSeccomp>, OciError> {
    let c = input.container;
    let pod_sc = input
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref());
    let container_path = format!("{}.securityContext", container_path(input.pod, c));
    let (profile, field) = seccomp::effective(
        pod_sc.and_then(|s| s.seccomp_profile.as_ref()),
        "spec.securityContext",
        c.security_context
            .as_ref()
            .and_then(|s| s.seccomp_profile.as_ref()),
        &container_path,
    );
    match profile {
        seccomp::Profile::RuntimeDefault => Ok(Some(seccomp::runtime_default(caps))),
        seccomp::Profile::Unconfined => Ok(None),
        seccomp::Profile::Localhost(relative) => {
            match seccomp::localhost(&seccomp::root(), relative, caps) {
                Ok((_, profile)) => Ok(Some(profile)),
                Err((path, e)) => Err(OciError::SeccompProfile {
                    container: c.name.clone(),
                    field: format!("{}.localhostProfile", field.unwrap_or_default()),
                    path,
                    reason: crate::describe(&e),
                }),
            }
        }
    }
}

/// The manifest path of a container of the pod (`spec.initContainers[0]`,
/// `spec.containers[1]`), for messages.
fn container_path(pod: &Pod, c: &Container) -> String {
    let spec = pod.spec.as_ref();
    let init = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let main = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    if let Some(i) = init.iter().position(|x| x.name == c.name) {
        format!("spec.initContainers[{i}]")
    } else if let Some(i) = main.iter().position(|x| x.name == c.name) {
        format!("spec.containers[{i}]")
    } else {
        format!("container {:?}", c.name)
    }
}

/// The device cgroup rule of a privileged container: every device, `rwm`
/// (containerd's `WithAllDevicesAllowed`).
fn allow_all_devices() -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(true);
    r.set_typ(None);
    r.set_major(None);
    r.set_minor(None);
    r.set_access(Some("rwm".to_owned()));
    r
}

/// The character and block devices under `dir` (the host's `/dev`), which runc recreates in
/// a privileged container's `/dev`, as containerd's `HostDevices` lists them: symlinks are
/// not followed, `pts`, `shm`, `fd`, `mqueue` and the container managers' private dirs are
/// skipped, and so is `console` (runc sets up the container's own).
fn host_devices(dir: &Path) -> std::io::Result<Vec<LinuxDevice>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let path = entry.path();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            // Gone since the directory was read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            let skip = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
            if !skip.iter().any(|s| name == *s) {
                out.extend(host_devices(&path)?);
            }
            continue;
        }
        let typ = if ft.is_char_device() {
            LinuxDeviceType::C
        } else if ft.is_block_device() {
            LinuxDeviceType::B
        } else {
            continue;
        };
        if name == "console" {
            continue;
        }
        let rdev = meta.rdev();
        let mut dev = LinuxDevice::default();
        dev.set_path(path);
        dev.set_typ(typ);
        dev.set_major(i64::from(nix::sys::stat::major(rdev) as u32));
        dev.set_minor(i64::from(nix::sys::stat::minor(rdev) as u32));
        dev.set_file_mode(Some(meta.mode() & 0o7777));
        dev.set_uid(Some(meta.uid()));
        dev.set_gid(Some(meta.gid()));
        out.push(dev);
    }
    Ok(out)
}

/// `/sys` and the cgroup fs mounted read-write, as containerd does for privileged containers.
fn writable_sysfs_and_cgroupfs(mounts: &mut [Mount]) {
    for m in mounts {
        if matches!(m.typ().as_deref(), Some("sysfs" | "cgroup")) {
            let options = m.options().clone().map(|o| {
                o.into_iter()
                    .map(|o| if o == "ro" { "rw".to_owned() } else { o })
                    .collect()
            });
            m.set_options(options);
        }
    }
}

/// Device cgroup: deny everything, then allow the standard character devices
/// (containerd's `oci.WithDefaultUnixDevices`).
fn device_rules() -> Vec<LinuxDeviceCgroup> {
    let rule = |allow: bool, major: Option<i64>, minor: Option<i64>| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(allow);
        r.set_typ(allow.then_some(LinuxDeviceType::C));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some("rwm".to_owned()));
        r
    };
    vec![
        rule(false, None, None),
        rule(true, Some(1), Some(3)),    // /dev/null
        rule(true, Some(1), Some(8)),    // /dev/random
        rule(true, Some(1), Some(7)),    // /dev/full
        rule(true, Some(5), Some(0)),    // /dev/tty
        rule(true, Some(1), Some(5)),    // /dev/zero
        rule(true, Some(1), Some(9)),    // /dev/urandom
        rule(true, Some(5), Some(1)),    // /dev/console
        rule(true, Some(136), None),     // /dev/pts/*
        rule(true, Some(5), Some(2)),    // /dev/ptmx
        rule(true, Some(10), Some(200)), // /dev/net/tun
    ]
}

/// `/proc` and the `/dev` tmpfs, as containerd mounts them in every container.
fn proc_and_dev() -> [Mount; 2] {
    [
        mount(
            "/proc",
            "proc",
            Path::new("proc"),
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev",
            "tmpfs",
            Path::new("tmpfs"),
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
    ]
}

fn mount(destination: &str, typ: &str, source: &Path, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(destination));
    m.set_typ(Some(typ.to_owned()));
    m.set_source(Some(source.to_owned()));
    m.set_options(Some(options.iter().map(|o| (*o).to_owned()).collect()));
    m
}

fn bind(destination: &Path, source: &Path, read_only: bool) -> Mount {
    let mut m = mount(
        "",
        "bind",
        source,
        &["rbind", "rprivate", if read_only { "ro" } else { "rw" }],
    );
    m.set_destination(destination.to_owned());
    m
}

/// Trailing slashes and `.` components do not make a different mount point.
fn normalized(p: &Path) -> PathBuf {
    p.components().collect()
}

/// The mounts, in order: the system mounts containerd always adds, then the pod files and
/// the volumes, sorted parents-first by depth (stable, like CRI's `orderedMounts`) so a
/// volume at `/data` is mounted before one at `/data/cache`.
///
/// A volume mounted on a path podctl would mount itself replaces podctl's mount (the
/// kubelet skips `/etc/hosts`, containerd `/etc/hostname`, `/etc/resolv.conf`, `/dev/shm`
/// and its defaults, including everything under `/dev` when `/dev` is supplied).
fn mounts(input: &ContainerInput<'_>) -> Result<Vec<Mount>, OciError> {
    let c = input.container;
    for m in c.volume_mounts.iter().flatten() {
        match m.mount_propagation.as_deref() {
            None | Some("") | Some("None") => {}
            Some(_) => {
                return Err(OciError::Unsupported {
                    container: c.name.clone(),
                    field: "volumeMounts[].mountPropagation",
                })
            }
        }
        if m.recursive_read_only.as_deref() == Some("Enabled") {
            return Err(OciError::Unsupported {
                container: c.name.clone(),
                field: "volumeMounts[].recursiveReadOnly: Enabled",
            });
        }
    }
    let user_dests: Vec<PathBuf> = input
        .mounts
        .iter()
        .map(|m| normalized(&m.destination))
        .collect();
    let overridden = |dest: &str| {
        let dest = Path::new(dest);
        user_dests.iter().any(|u| u == dest)
            || (dest.starts_with("/dev") && user_dests.iter().any(|u| u == Path::new("/dev")))
    };

    let [proc, dev] = proc_and_dev();
    let system = [
        proc,
        dev,
        mount(
            "/dev/pts",
            "devpts",
            Path::new("devpts"),
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            Path::new("mqueue"),
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            Path::new("sysfs"),
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            Path::new("cgroup"),
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
    ];
    let mut out: Vec<Mount> = system
        .into_iter()
        .filter(|m| !overridden(&m.destination().to_string_lossy()))
        .collect();

    let sb = input.sandbox;
    let mut extra: Vec<Mount> = Vec::new();
    for (dest, src) in [
        ("/etc/hostname", &sb.hostname),
        ("/etc/hosts", &sb.hosts),
        ("/etc/resolv.conf", &sb.resolv_conf),
    ] {
        if !overridden(dest) {
            extra.push(bind(Path::new(dest), src, false));
        }
    }
    if !overridden("/dev/shm") {
        let mut shm = bind(Path::new("/dev/shm"), &sb.shm, false);
        shm.set_options(Some(
            ["rbind", "rprivate", "rw", "nosuid", "nodev", "noexec"]
                .iter()
                .map(|o| (*o).to_owned())
                .collect(),
        ));
        extra.push(shm);
    }
    for m in &input.mounts {
        extra.push(bind(&normalized(&m.destination), &m.source, m.read_only));
    }
    extra.sort_by_key(|m| m.destination().components().count());
    out.extend(extra);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::SandboxConfig;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn image(config: serde_json::Value) -> ImageConfiguration {
        serde_json::from_value(json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "config": config,
        }))
        .unwrap()
    }

    fn web_pod(host_network: bool) -> Pod {
        pod(json!({
            "metadata": {"name": "web"},
            "spec": {
                "hostNetwork": host_network,
                "containers": [{
                    "name": "app",
                    "command": ["sh", "-c", "echo $(GREETING) $(date) $$(GREETING)"],
                    "args": ["$(WHO)"],
                    "env": [
                        {"name": "WHO", "value": "world"},
                        {"name": "GREETING", "value": "hello $(WHO) $(PATH)"},
                    ],
                    "volumeMounts": [
                        {"name": "data", "mountPath": "/data/"},
                        {"name": "cache", "mountPath": "/data/cache", "readOnly": true},
                    ],
                }],
                "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cache", "emptyDir": {}}],
            },
        }))
    }

    fn container(p: &Pod) -> &Container {
        &p.spec.as_ref().unwrap().containers[0]
    }

    /// A host of 16 GiB that accounts swap.
    const TEST_HOST: cgroups::Host = cgroups::Host {
        memory_capacity: 16 << 30,
        swap_accounting: true,
        min_oom_score_adj: -1000,
    };

    fn sandbox(p: &Pod) -> Sandbox {
        Sandbox::planned(SandboxConfig {
            dir: Path::new("/run/podctl/default/pods/web"),
            pod: p,
            objects: &crate::manifest::Objects::default(),
            live: &crate::downward::LiveFields::default(),
            claims_dir: Path::new("/nonexistent/claims"),
        })
        .unwrap()
    }

    #[test]
    fn the_pause_process_is_pid_1_of_a_new_namespace_with_nothing_else() {
        let mut p = web_pod(false);
        p.spec.as_mut().unwrap().share_process_namespace = Some(true);
        let sb = sandbox(&p);
        assert_eq!(
            sb.pidns.as_deref(),
            Some(Path::new("/run/podctl/default/pods/web/ns/pid"))
        );
        let spec = pause_spec(&PauseInput {
            sandbox: &sb,
            container_id: "web.pause.1",
            shim_group: "default.web.1",
            rootfs: Path::new("/run/podctl/default/pods/web/pause"),
            binds: &[PathBuf::from("/usr")],
            exe: Path::new("/usr/local/bin/podctl"),
        });
        let linux = spec.linux().as_ref().unwrap();
        let pid = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .find(|n| n.typ() == LinuxNamespaceType::Pid)
            .unwrap();
        assert_eq!(pid.path(), &None, "a new PID namespace");
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.args().as_ref().unwrap(), &["/pause", PAUSE_ARG]);
        assert_eq!(process.user().uid(), 65535);
        assert!(process
            .capabilities()
            .as_ref()
            .unwrap()
            .bounding()
            .as_ref()
            .unwrap()
            .is_empty());
        assert_eq!(process.no_new_privileges(), Some(true));
        assert!(linux.seccomp().is_some());
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
        let pause = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == Path::new("/pause"))
            .unwrap();
        assert_eq!(
            pause.source().as_deref(),
            Some(Path::new("/usr/local/bin/podctl"))
        );
        // The containers of the pod join it.
        let c = spec_for(&p, &default_image(), vec![]).unwrap();
        let joined = c
            .linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .find(|n| n.typ() == LinuxNamespaceType::Pid)
            .unwrap()
            .path()
            .clone();
        assert_eq!(joined, sb.pidns);
    }

    fn spec_for(
        p: &Pod,
        img: &ImageConfiguration,
        mounts: Vec<VolumeMountSource>,
    ) -> Result<Spec, OciError> {
        let sb = sandbox(p);
        container_spec(&ContainerInput {
            pod: p,
            container: container(p),
            image: img,
            sandbox: &sb,
            container_id: "web-app-1",
            shim_group: "pod-web",
            host: &TEST_HOST,
            mounts,
            objects: &Default::default(),
            live: &Default::default(),
        })
    }

    fn vol_mounts() -> Vec<VolumeMountSource> {
        vec![
            VolumeMountSource {
                source: "/v/cache".into(),
                destination: "/data/cache".into(),
                read_only: true,
            },
            VolumeMountSource {
                source: "/v/data".into(),
                destination: "/data/".into(),
                read_only: false,
            },
        ]
    }

    fn default_image() -> ImageConfiguration {
        image(json!({
            "Env": ["PATH=/img/bin", "LANG=C"],
            "Entrypoint": ["/entry"],
            "Cmd": ["ignored"],
            "WorkingDir": "/srv",
            "User": "1000:50",
        }))
    }

    #[test]
    fn spec_matches_containerd_defaults() {
        let p = web_pod(false);
        let spec = spec_for(&p, &default_image(), vol_mounts()).unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        for leftover in ["youki", "TERM=xterm", "inheritable", "ambient", "sysctl"] {
            assert!(!json.contains(leftover), "{leftover} in {json}");
        }
        // podctl's default seccomp profile is containerd's RuntimeDefault.
        let filter = spec.linux().as_ref().unwrap().seccomp().clone().unwrap();
        assert_eq!(
            filter,
            seccomp::runtime_default(&DEFAULT_CAPABILITIES.into_iter().collect())
        );
        assert!(spec.linux().as_ref().unwrap().devices().is_none());
        assert_eq!(spec.version(), "1.0.2-dev");
        let root = spec.root().as_ref().unwrap();
        assert_eq!(root.path(), Path::new("rootfs"));
        assert_eq!(root.readonly(), Some(false));
        assert_eq!(spec.hostname().as_deref(), Some("web"));
        assert_eq!(
            spec.annotations().as_ref().unwrap()[SHIM_GROUP_ANNOTATION],
            "pod-web"
        );

        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.cwd(), Path::new("/srv"));
        assert_eq!(process.terminal(), Some(false));
        assert_eq!(process.no_new_privileges(), Some(false));
        assert_eq!((process.user().uid(), process.user().gid()), (1000, 50));
        let caps = process.capabilities().as_ref().unwrap();
        let want: HashSet<Capability> = DEFAULT_CAPABILITIES.into_iter().collect();
        assert_eq!(want.len(), 14);
        assert_eq!(caps.bounding().as_ref(), Some(&want));
        assert_eq!(caps.effective().as_ref(), Some(&want));
        assert_eq!(caps.permitted().as_ref(), Some(&want));
        assert!(caps.inheritable().is_none() && caps.ambient().is_none());
        let rl = &process.rlimits().as_ref().unwrap()[0];
        assert_eq!(
            (rl.typ(), rl.soft(), rl.hard()),
            (PosixRlimitType::RlimitNofile, 1024, 1024)
        );

        // Env: image first, HOSTNAME, then the container's, with $(PATH) unknown to the
        // kubelet; command replaces the entrypoint, args expanded with the container env.
        assert_eq!(
            process.env().as_ref().unwrap(),
            &vec![
                "PATH=/img/bin".to_owned(),
                "HOSTNAME=web".into(),
                "LANG=C".into(),
                "WHO=world".into(),
                "GREETING=hello world $(PATH)".into(),
            ]
        );
        assert_eq!(
            process.args().as_ref().unwrap(),
            &vec![
                "sh".to_owned(),
                "-c".into(),
                "echo hello world $(PATH) $(date) $(GREETING)".into(),
                "world".into(),
            ]
        );

        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(
            linux.cgroups_path().as_deref(),
            Some(Path::new("/podctl/pod-web/web-app-1"))
        );
        // BestEffort, as the kubelet asks containerd for it: minimum shares, the period,
        // no quota, no memory limit, first to go when the host runs out of memory.
        let resources = linux.resources().as_ref().unwrap();
        let cpu = resources.cpu().as_ref().unwrap();
        assert_eq!(
            (cpu.shares(), cpu.period(), cpu.quota()),
            (Some(2), Some(100_000), None)
        );
        assert!(resources.memory().is_none());
        assert_eq!(process.oom_score_adj(), Some(1000));
        let ns: Vec<(LinuxNamespaceType, Option<PathBuf>)> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| (n.typ(), n.path().clone()))
            .collect();
        let pins = Path::new("/run/podctl/default/pods/web/ns");
        assert_eq!(
            ns,
            vec![
                (LinuxNamespaceType::Pid, None),
                (LinuxNamespaceType::Ipc, Some(pins.join("ipc"))),
                (LinuxNamespaceType::Uts, Some(pins.join("uts"))),
                (LinuxNamespaceType::Mount, None),
                (LinuxNamespaceType::Network, Some(pins.join("net"))),
            ]
        );
        assert_eq!(linux.masked_paths().as_ref().unwrap().len(), 11);
        assert!(linux
            .masked_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/kcore".to_owned()));
        assert_eq!(
            linux.readonly_paths().as_ref().unwrap(),
            &READONLY_PATHS.map(String::from).to_vec()
        );
        let devices = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap();
        assert!(!devices[0].allow() && devices[0].typ().is_none());
        assert_eq!(devices[0].access().as_deref(), Some("rwm"));
        assert!(devices[1..]
            .iter()
            .all(|d| d.allow() && d.typ() == Some(LinuxDeviceType::C)));
        assert!(devices
            .iter()
            .any(|d| d.major() == Some(1) && d.minor() == Some(3)));
        assert!(devices
            .iter()
            .any(|d| d.major() == Some(136) && d.minor().is_none()));

        let mounts: Vec<(String, String, String, Vec<String>)> = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m.destination().display().to_string(),
                    m.typ().clone().unwrap(),
                    m.source().as_ref().unwrap().display().to_string(),
                    m.options().clone().unwrap(),
                )
            })
            .collect();
        let dests: Vec<&str> = mounts.iter().map(|m| m.0.as_str()).collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup",
                "/data",
                "/etc/hostname",
                "/etc/hosts",
                "/etc/resolv.conf",
                "/dev/shm",
                "/data/cache",
            ]
        );
        let by_dest = |d: &str| mounts.iter().find(|m| m.0 == d).unwrap();
        assert_eq!(
            by_dest("/dev/pts").3,
            [
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5"
            ]
        );
        assert_eq!(by_dest("/sys").3, ["nosuid", "noexec", "nodev", "ro"]);
        assert_eq!(by_dest("/sys/fs/cgroup").1, "cgroup");
        assert_eq!(
            by_dest("/dev").3,
            ["nosuid", "strictatime", "mode=755", "size=65536k"]
        );
        let hosts = by_dest("/etc/hosts");
        assert_eq!(
            (hosts.1.as_str(), hosts.2.as_str()),
            ("bind", "/run/podctl/default/pods/web/etc/hosts")
        );
        assert_eq!(hosts.3, ["rbind", "rprivate", "rw"]);
        assert_eq!(by_dest("/dev/shm").2, "/run/podctl/default/pods/web/shm");
        assert_eq!(by_dest("/data").3, ["rbind", "rprivate", "rw"]);
        assert_eq!(by_dest("/data/cache").3, ["rbind", "rprivate", "ro"]);
    }

    #[test]
    fn host_network_has_no_network_or_uts_namespace() {
        let p = web_pod(true);
        let spec = spec_for(&p, &default_image(), vec![]).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let types: Vec<LinuxNamespaceType> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect();
        assert_eq!(
            types,
            [
                LinuxNamespaceType::Pid,
                LinuxNamespaceType::Ipc,
                LinuxNamespaceType::Mount
            ]
        );
        assert_eq!(spec.hostname(), &None);
        let node = nix::unistd::gethostname().unwrap().into_string().unwrap();
        let env = spec.process().as_ref().unwrap().env().clone().unwrap();
        assert!(env.contains(&format!("HOSTNAME={node}")), "{env:?}");
    }

    #[test]
    fn image_user_parsing() {
        type Case<'a> = (&'a str, Result<(u32, u32), &'a str>);
        let cases: &[Case] = &[
            ("", Ok((0, 0))),
            ("0", Ok((0, 0))),
            ("1000", Ok((1000, 0))),
            ("1000:50", Ok((1000, 50))),
            (" 7:8 ", Ok((7, 8))),
            ("nobody", Err("named users aren't supported yet")),
            ("1000:staff", Err("named users aren't supported yet")),
            ("nobody:nogroup", Err("named users aren't supported yet")),
            (":5", Err("invalid image user")),
            ("5:", Err("invalid image user")),
        ];
        let p = pod(json!({"metadata": {"name": "u"}, "spec": {"containers": [{"name": "c"}]}}));
        for (user, want) in cases {
            let img = image(json!({"User": user, "Cmd": ["sh"]}));
            let got = spec_for(&p, &img, vec![]).map(|s| {
                let u = s.process().as_ref().unwrap().user();
                (u.uid(), u.gid())
            });
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{user:?}"),
                (Err(e), Err(msg)) => assert!(e.to_string().contains(msg), "{user:?}: {e}"),
                (got, want) => panic!("{user:?}: got {got:?}, want {want:?}"),
            }
        }
        // runAsUser/runAsGroup win over the image user, even a named one.
        let p = pod(json!({"metadata": {"name": "u"}, "spec": {
            "securityContext": {"runAsUser": 1, "runAsGroup": 2, "supplementalGroups": [3]},
            "containers": [{"name": "c", "securityContext": {"runAsUser": 4}}],
        }}));
        let img = image(json!({"User": "nobody", "Cmd": ["sh"]}));
        let spec = spec_for(&p, &img, vec![]).unwrap();
        let u = spec.process().as_ref().unwrap().user();
        assert_eq!((u.uid(), u.gid()), (4, 2));
        assert_eq!(u.additional_gids().as_deref(), Some(&[2, 3][..]));
    }

    #[test]
    fn run_as_non_root_refuses_root_as_the_kubelet_does() {
        let root_image = image(json!({"Cmd": ["sh"]}));
        let with = |sc: serde_json::Value, c: serde_json::Value| {
            pod(json!({"metadata": {"name": "nr"}, "spec": {
                "securityContext": sc,
                "containers": [{"name": "c", "securityContext": c}],
            }}))
        };
        let err = spec_for(
            &with(json!({"runAsNonRoot": true}), json!({})),
            &root_image,
            vec![],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "CreateContainerConfigError: container has runAsNonRoot and image will run as root (pod: \"nr_default\", container: c)"
        );
        let err = spec_for(
            &with(json!({}), json!({"runAsNonRoot": true, "runAsUser": 0})),
            &root_image,
            vec![],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "CreateContainerConfigError: container's runAsUser breaks non-root policy"
            ),
            "{err}"
        );
        // A non-root uid passes, from the pod or the image; the container may turn it off.
        assert!(spec_for(
            &with(json!({"runAsNonRoot": true, "runAsUser": 1000}), json!({})),
            &root_image,
            vec![]
        )
        .is_ok());
        let user_image = image(json!({"Cmd": ["sh"], "User": "1000"}));
        assert!(spec_for(
            &with(json!({"runAsNonRoot": true}), json!({})),
            &user_image,
            vec![]
        )
        .is_ok());
        assert!(spec_for(
            &with(
                json!({"runAsNonRoot": true}),
                json!({"runAsNonRoot": false})
            ),
            &root_image,
            vec![]
        )
        .is_ok());
    }

    #[test]
    fn command_errors_and_image_defaults() {
        let p = pod(json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c"}]}}));
        let err = spec_for(&p, &image(json!({})), vec![]).unwrap_err();
        assert!(matches!(err, OciError::Command { .. }), "{err}");
        let spec = spec_for(
            &p,
            &image(json!({"Entrypoint": ["/e"], "Cmd": ["a"]})),
            vec![],
        )
        .unwrap();
        let process = spec.process().as_ref().unwrap();
        assert_eq!(
            process.args().as_ref().unwrap(),
            &vec!["/e".to_owned(), "a".into()]
        );
        assert_eq!(process.cwd(), Path::new("/"));
        assert_eq!(
            process.env().as_ref().unwrap()[0],
            format!("PATH={}", expand::DEFAULT_PATH)
        );
    }

    #[test]
    fn security_context_capabilities() {
        let p = pod(
            json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c",
            "securityContext": {
                "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "CAP_SYS_TIME"]},
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
            }}]}}),
        );
        let spec = spec_for(&p, &image(json!({"Cmd": ["sh"]})), vec![]).unwrap();
        let process = spec.process().as_ref().unwrap();
        let caps = process
            .capabilities()
            .as_ref()
            .unwrap()
            .bounding()
            .clone()
            .unwrap();
        assert_eq!(
            caps,
            HashSet::from([Capability::NetAdmin, Capability::SysTime])
        );
        assert_eq!(process.no_new_privileges(), Some(true));
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));

        let p = pod(
            json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c",
            "securityContext": {"capabilities": {"drop": ["CHOWN", "kill"]}}}]}}),
        );
        let spec = spec_for(&p, &image(json!({"Cmd": ["sh"]})), vec![]).unwrap();
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap()
            .effective()
            .clone()
            .unwrap();
        assert_eq!(caps.len(), 12);
        assert!(!caps.contains(&Capability::Chown) && !caps.contains(&Capability::Kill));

        let p = pod(
            json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c",
            "securityContext": {"capabilities": {"add": ["BOGUS"]}}}]}}),
        );
        assert!(matches!(
            spec_for(&p, &image(json!({"Cmd": ["sh"]})), vec![]),
            Err(OciError::UnknownCapability { .. })
        ));
    }

    #[test]
    fn privileged_is_as_containerd_makes_it() {
        let p = pod(
            json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c",
            "securityContext": {"privileged": true, "capabilities": {"drop": ["ALL"]},
                                "seccompProfile": {"type": "RuntimeDefault"}}}]}}),
        );
        let spec = spec_for(&p, &image(json!({"Cmd": ["sh"]})), vec![]).unwrap();
        let process = spec.process().as_ref().unwrap();
        let caps = process.capabilities().as_ref().unwrap();
        // Everything podctl holds (root in tests: at least CAP_SYS_ADMIN), whatever `drop` says.
        assert_eq!(caps.bounding().as_ref(), Some(&current_capabilities()));
        assert_eq!(caps.effective(), caps.bounding());
        assert!(caps
            .bounding()
            .as_ref()
            .unwrap()
            .contains(&Capability::SysAdmin));
        assert_eq!(process.no_new_privileges(), Some(false));
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.seccomp().is_none());
        assert_eq!(linux.masked_paths().as_deref(), Some(&[][..]));
        assert_eq!(linux.readonly_paths().as_deref(), Some(&[][..]));
        let rules = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .clone()
            .unwrap();
        assert_eq!(rules.len(), 1);
        assert!(rules[0].allow() && rules[0].typ().is_none() && rules[0].major().is_none());
        assert_eq!(rules[0].access().as_deref(), Some("rwm"));
        let devices = linux.devices().clone().unwrap();
        let null = devices
            .iter()
            .find(|d| d.path() == Path::new("/dev/null"))
            .expect("/dev/null among the host devices");
        assert_eq!(
            (null.typ(), null.major(), null.minor(), null.file_mode()),
            (LinuxDeviceType::C, 1, 3, Some(0o666))
        );
        assert!(devices.iter().all(|d| {
            !d.path().starts_with("/dev/pts") && d.path() != Path::new("/dev/console")
        }));
        for m in spec.mounts().as_ref().unwrap() {
            if matches!(m.typ().as_deref(), Some("sysfs" | "cgroup")) {
                let options = m.options().clone().unwrap();
                assert!(options.contains(&"rw".to_owned()), "{options:?}");
                assert!(!options.contains(&"ro".to_owned()), "{options:?}");
            }
        }
    }

    #[test]
    fn unmasked_proc_has_no_masked_paths() {
        let p = pod(
            json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c",
            "securityContext": {"procMount": "Unmasked"}}]}}),
        );
        let spec = spec_for(&p, &image(json!({"Cmd": ["sh"]})), vec![]).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(linux.masked_paths().as_deref(), Some(&[][..]));
        assert_eq!(linux.readonly_paths().as_deref(), Some(&[][..]));
        // Nothing else of privileged comes with it.
        assert!(linux.seccomp().is_some());
        let sys = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == Path::new("/sys"))
            .unwrap()
            .clone();
        assert!(sys.options().as_ref().unwrap().contains(&"ro".to_owned()));
    }

    #[test]
    fn seccomp_profile_precedence() {
        let img = image(json!({"Cmd": ["sh"]}));
        let with = |pod_sc: serde_json::Value, c_sc: serde_json::Value| {
            pod(json!({"metadata": {"name": "x"}, "spec": {
                "securityContext": pod_sc,
                "initContainers": [{"name": "init"}],
                "containers": [{"name": "c", "securityContext": c_sc}],
            }}))
        };
        let filter = |p: &Pod| {
            spec_for(p, &img, vec![])
                .unwrap()
                .linux()
                .as_ref()
                .unwrap()
                .seccomp()
                .clone()
        };
        let unconfined = json!({"seccompProfile": {"type": "Unconfined"}});
        let default = json!({"seccompProfile": {"type": "RuntimeDefault"}});
        assert!(filter(&with(json!({}), json!({}))).is_some());
        assert!(filter(&with(unconfined.clone(), json!({}))).is_none());
        assert!(filter(&with(json!({}), unconfined.clone())).is_none());
        assert!(filter(&with(unconfined.clone(), default.clone())).is_some());
        assert!(filter(&with(default, unconfined)).is_none());
        // With CAP_SYS_ADMIN the default profile lets the container make namespaces.
        let admin = filter(&with(
            json!({}),
            json!({"capabilities": {"add": ["SYS_ADMIN"]}}),
        ))
        .unwrap();
        assert!(admin
            .syscalls()
            .iter()
            .flatten()
            .any(|r| r.names().contains(&"unshare".to_owned())));

        // A Localhost profile that is not there fails the spec, naming the field that chose
        // it and the file.
        let missing = format!("podctl-test-missing-{}.json", rand::random::<u32>());
        let p = with(
            json!({"seccompProfile": {"type": "Localhost", "localhostProfile": missing}}),
            json!({}),
        );
        let err = spec_for(&p, &img, vec![]).unwrap_err();
        let OciError::SeccompProfile {
            container,
            field,
            path,
            reason,
        } = &err
        else {
            panic!("{err}");
        };
        assert_eq!(container, "c");
        assert_eq!(
            field,
            "spec.securityContext.seccompProfile.localhostProfile"
        );
        assert_eq!(path, &seccomp::root().join(&missing));
        assert!(reason.contains("No such file"), "{reason}");
        assert!(err.to_string().contains(&missing), "{err}");
        let p = with(
            json!({}),
            json!({"seccompProfile": {"type": "Localhost", "localhostProfile": missing}}),
        );
        match spec_for(&p, &img, vec![]).unwrap_err() {
            OciError::SeccompProfile { field, .. } => assert_eq!(
                field,
                "spec.containers[0].securityContext.seccompProfile.localhostProfile"
            ),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn sysctls_and_fs_group() {
        let p = pod(json!({"metadata": {"name": "x"}, "spec": {
            "securityContext": {
                "runAsGroup": 5,
                "fsGroup": 2000,
                "supplementalGroups": [2000, 7],
                "sysctls": [
                    {"name": "kernel.shm_rmid_forced", "value": "1"},
                    {"name": "net/ipv4/ip_local_port_range", "value": "1024 65000"},
                ],
            },
            "containers": [{"name": "c"}],
        }}));
        let spec = spec_for(&p, &image(json!({"Cmd": ["sh"]})), vec![]).unwrap();
        let sysctl = spec.linux().as_ref().unwrap().sysctl().clone().unwrap();
        assert_eq!(
            sysctl,
            HashMap::from([
                ("kernel.shm_rmid_forced".to_owned(), "1".to_owned()),
                (
                    "net.ipv4.ip_local_port_range".to_owned(),
                    "1024 65000".to_owned()
                ),
            ])
        );
        let user = spec.process().as_ref().unwrap().user().clone();
        assert_eq!(user.gid(), 5);
        assert_eq!(user.additional_gids().as_deref(), Some(&[5, 2000, 7][..]));
    }

    /// End-to-end check that runc accepts the spec and that the container really lands in
    /// the pod's namespaces with its mounts: a real sandbox, a busybox rootfs, `runc run`.
    /// Needs root, runc and a static busybox (all podctl test prerequisites).
    #[test]
    fn runc_runs_the_spec() {
        use std::os::unix::fs::MetadataExt;
        use std::process::Command;

        let busybox = ["/usr/bin/busybox", "/bin/busybox"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists())
            .expect("busybox is a test prerequisite");
        let tmp = tempfile::tempdir().unwrap();
        let id = format!(
            "podctl-oci-test-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        );
        let script = "\
            echo hostname=$(hostname); \
            echo msg=$MSG arg=$(MSG) img=$FROM_IMAGE; \
            echo uid=$(id -u):$(id -g); \
            echo ns=$(readlink /proc/self/ns/net) $(readlink /proc/self/ns/uts) $(readlink /proc/self/ns/ipc); \
            grep -q '127.0.1.1.ocitest' /etc/hosts && echo hosts-ok; \
            ip link show lo | grep -q ',UP' && echo lo-up; \
            touch /rw/written && echo rw-ok; \
            touch /ro/x 2>/dev/null || echo ro-refused; \
            touch /sub/in-sub && echo sub-ok; \
            echo shared > /dev/shm/from-container && echo shm-ok; \
            grep CapBnd /proc/self/status; \
            grep Seccomp: /proc/self/status; \
            unshare -U true 2>/dev/null && echo userns-made || echo userns-refused; \
            cat /proc/sys/kernel/shm_rmid_forced /proc/sys/net/ipv4/ip_unprivileged_port_start; \
            if cat /sys/fs/cgroup/cgroup.controllers >/dev/null 2>&1; then \
                d=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup); \
                echo mem=$(cat $d/memory.max) cpu=$(cat $d/cpu.max); \
            else \
                echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes) \
                    cpu=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us); \
            fi; \
            cat /proc/self/oom_score_adj";
        let p = pod(json!({
            "metadata": {"name": "ocitest"},
            "spec": {
                "securityContext": {"sysctls": [
                    {"name": "kernel.shm_rmid_forced", "value": "1"},
                    {"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"},
                ]},
                "containers": [{
                    "name": "app",
                    "command": ["sh", "-c", script],
                    "env": [
                        {"name": "GREETING", "value": "hi"},
                        {"name": "MSG", "value": "$(GREETING)-there"},
                    ],
                    "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                    "volumeMounts": [
                        {"name": "data", "mountPath": "/rw"},
                        {"name": "data", "mountPath": "/ro", "readOnly": true},
                        {"name": "data", "mountPath": "/sub", "subPath": "nested/dir"},
                    ],
                }],
                "volumes": [{"name": "data", "emptyDir": {}}],
            },
        }));
        let pod_dir = tmp.path().join("pod");
        let sb = Sandbox::create(SandboxConfig {
            dir: &pod_dir,
            pod: &p,
            objects: &crate::manifest::Objects::default(),
            live: &crate::downward::LiveFields::default(),
            claims_dir: Path::new("/nonexistent/claims"),
        })
        .unwrap();
        let shim_group = format!("{id}.group");
        let pod_cgroup = cgroups::pod_cgroup_name(&shim_group);
        struct Cleanup<'a>(&'a Path, &'a Path, &'a str, &'a str);
        impl Drop for Cleanup<'_> {
            fn drop(&mut self) {
                let _ = Command::new("runc")
                    .arg("--root")
                    .arg(self.1)
                    .args(["delete", "-f", self.2])
                    .output();
                Sandbox::destroy(self.0).expect("destroy sandbox");
                cgroups::remove_pod_cgroup(self.3).expect("remove the pod cgroup");
            }
        }
        let runc_root = tmp.path().join("runc-state");
        let _cleanup = Cleanup(&pod_dir, &runc_root, &id, &pod_cgroup);

        let c = container(&p);
        let mounts = c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| VolumeMountSource {
                source: sb.mount_source(m).unwrap(),
                destination: PathBuf::from(&m.mount_path),
                read_only: m.read_only.unwrap_or(false),
            })
            .collect();
        let img = image(json!({"User": "1000:1000", "Env": ["FROM_IMAGE=yes"]}));
        let spec = container_spec(&ContainerInput {
            pod: &p,
            container: c,
            image: &img,
            sandbox: &sb,
            container_id: &id,
            shim_group: &shim_group,
            host: cgroups::host(),
            mounts,
            objects: &Default::default(),
            live: &Default::default(),
        })
        .unwrap();
        // The pod cgroup first, with the pod's values, as the lifecycle makes it.
        let pod_values = cgroups::PodCgroup::of(&p).unwrap();
        cgroups::apply_pod_cgroup(&pod_cgroup, &pod_values).unwrap();

        let bundle = tmp.path().join("bundle");
        let bin = bundle.join("rootfs/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy(busybox, bin.join("busybox")).unwrap();
        for applet in [
            "sh", "hostname", "id", "readlink", "grep", "ip", "touch", "echo", "unshare", "cat",
            "true", "sed",
        ] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        std::fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&spec).unwrap(),
        )
        .unwrap();

        let out = Command::new("runc")
            .arg("--root")
            .arg(&runc_root)
            .arg("run")
            .arg("--bundle")
            .arg(&bundle)
            .arg(&id)
            .output()
            .expect("runc is a test prerequisite");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "runc failed: {stdout}\n{stderr}");

        let ns_id =
            |p: &Path, kind: &str| format!("{kind}:[{}]", std::fs::metadata(p).unwrap().ino());
        let expected = [
            "hostname=ocitest".to_owned(),
            "msg=hi-there arg=hi-there img=yes".into(),
            "uid=1000:1000".into(),
            format!(
                "ns={} {} {}",
                ns_id(sb.netns.as_ref().unwrap(), "net"),
                ns_id(sb.utsns.as_ref().unwrap(), "uts"),
                ns_id(&sb.ipcns, "ipc")
            ),
            "hosts-ok".into(),
            "lo-up".into(),
            "rw-ok".into(),
            "ro-refused".into(),
            "sub-ok".into(),
            "shm-ok".into(),
            // containerd's 14 default capabilities.
            "CapBnd:\t00000000a80425fb".into(),
            // RuntimeDefault: a filter, which refuses user namespaces (no capability is
            // needed for one, so only the filter stops it).
            "Seccomp:\t2".into(),
            "userns-refused".into(),
            // The pod's sysctls, in its IPC and network namespaces.
            "1".into(),
            "80".into(),
            // Its limits in its own cgroup; Guaranteed (requests default to the limits):
            // -997, or podctl's own score where podctl may not go lower.
            "mem=67108864 cpu=50000 100000".into(),
            (-997).max(cgroups::host().min_oom_score_adj).to_string(),
        ];
        assert_eq!(
            stdout.lines().collect::<Vec<_>>(),
            expected,
            "stderr: {stderr}"
        );
        let data = pod_dir.join("volumes/data");
        assert!(data.join("written").exists());
        assert!(!data.join("x").exists());
        assert!(data.join("nested/dir/in-sub").exists());
        assert_eq!(
            std::fs::read_to_string(sb.shm.join("from-container")).unwrap(),
            "shared\n"
        );

        // The pod cgroup holds the pod's limits; runc removed the container's own cgroup
        // under it, podctl removes the pod's.
        if cgroups::version() == cgroups::Version::V1 {
            let read = |file: &str| {
                std::fs::read_to_string(Path::new("/sys/fs/cgroup").join(file)).unwrap()
            };
            let dir = format!("podctl/{pod_cgroup}");
            assert_eq!(
                read(&format!("memory/{dir}/memory.limit_in_bytes")),
                "67108864\n"
            );
            assert_eq!(read(&format!("cpu/{dir}/cpu.cfs_quota_us")), "50000\n");
            assert_eq!(read(&format!("cpu/{dir}/cpu.shares")), "512\n");
        }
        cgroups::remove_pod_cgroup(&pod_cgroup).unwrap();
        let left: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .flatten()
            .map(|h| h.path().join("podctl").join(&pod_cgroup))
            .chain([Path::new("/sys/fs/cgroup/podctl").join(&pod_cgroup)])
            .filter(|d| d.exists())
            .collect();
        assert!(left.is_empty(), "pod cgroup left: {left:?}");
    }

    #[test]
    fn resources_become_cgroup_values() {
        let with = |resources: serde_json::Value| {
            pod(json!({
                "metadata": {"name": "web"},
                "spec": {"containers": [{"name": "app", "resources": resources}]},
            }))
        };
        let values = |spec: &Spec| {
            let r = spec.linux().as_ref().unwrap().resources().clone().unwrap();
            let cpu = r.cpu().clone().unwrap();
            let memory = r.memory().map(|m| (m.limit(), m.swap()));
            (
                (cpu.shares(), cpu.period(), cpu.quota()),
                memory,
                spec.process().as_ref().unwrap().oom_score_adj(),
            )
        };
        let img = image(json!({"Cmd": ["sh"]}));

        // Burstable: shares from the request, quota from the limit, memory+swap = memory.
        let p = with(json!({
            "limits": {"cpu": "500m", "memory": "64Mi"},
            "requests": {"cpu": "250m"},
        }));
        let spec = spec_for(&p, &img, Vec::new()).unwrap();
        assert_eq!(
            values(&spec),
            (
                (Some(256), Some(100_000), Some(50_000)),
                Some((Some(64 << 20), Some(64 << 20))),
                // The memory request defaults to the 64 MiB limit: 1000 - 1000 * 64Mi / 16Gi.
                Some(997),
            )
        );

        // Guaranteed (requests default to the limits); a host without swap accounting gets
        // no memory+swap limit.
        let p = with(json!({"limits": {"cpu": "2", "memory": "1Gi"}}));
        let sb = sandbox(&p);
        let spec = container_spec(&ContainerInput {
            pod: &p,
            container: container(&p),
            image: &img,
            sandbox: &sb,
            container_id: "web-app-1",
            shim_group: "default.web.0123456789abcdef",
            host: &cgroups::Host {
                swap_accounting: false,
                ..TEST_HOST
            },
            mounts: Vec::new(),
            objects: &Default::default(),
            live: &Default::default(),
        })
        .unwrap();
        assert_eq!(
            values(&spec),
            (
                (Some(2048), Some(100_000), Some(200_000)),
                Some((Some(1 << 30), None)),
                Some(-997),
            )
        );
        assert_eq!(
            spec.linux().as_ref().unwrap().cgroups_path().as_deref(),
            Some(Path::new("/podctl/default.web.0123456789abcdef/web-app-1"))
        );

        // A request without a limit: shares only.
        let p = with(json!({"requests": {"cpu": "100m", "memory": "1Gi"}}));
        let spec = spec_for(&p, &img, Vec::new()).unwrap();
        assert_eq!(
            values(&spec),
            ((Some(102), Some(100_000), None), None, Some(938))
        );

        // What validation refuses cannot become a spec either.
        let p = with(json!({"limits": {"memory": "lots"}}));
        let err = spec_for(&p, &img, Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "container \"app\": resources.limits[memory]: \"lots\": quantities must match the \
             regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
    }

    #[test]
    fn user_volume_replaces_podctl_mount() {
        let p = pod(json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c"}]}}));
        let mounts = vec![
            VolumeMountSource {
                source: "/h".into(),
                destination: "/etc/hosts".into(),
                read_only: true,
            },
            VolumeMountSource {
                source: "/d".into(),
                destination: "/dev".into(),
                read_only: false,
            },
        ];
        let spec = spec_for(&p, &image(json!({"Cmd": ["sh"]})), mounts).unwrap();
        let dests: Vec<String> = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.destination().display().to_string())
            .collect();
        assert_eq!(
            dests,
            // Sandbox binds first, then volumes in order: the user's /etc/hosts comes last.
            [
                "/proc",
                "/sys",
                "/sys/fs/cgroup",
                "/dev",
                "/etc/hostname",
                "/etc/resolv.conf",
                "/etc/hosts"
            ]
        );
        let hosts = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == Path::new("/etc/hosts"))
            .unwrap();
        assert_eq!(hosts.source().as_deref(), Some(Path::new("/h")));
    }
}
