//! The pod network: CNI plugins attach the pod's pinned network namespace to a network
//! (podctl's own bridge by default), publish its hostPorts, and detach it at the end.
//!
//! - `conf`: network configuration files, podctl's default network, checks made up front;
//! - `cni`: running plugins per the CNI specification;
//! - `ports`: hostPorts and the conflicts between pods.
//!
//! A pod's attachment is recorded in `<pod dir>/network.json` *before* the first plugin runs:
//! what was asked of which network, for which namespace, and, once ADD succeeded, its result.
//! DEL is run from that record alone (the same configuration ADD saw, the cached result as
//! `prevResult`), so teardown works after a crash, including for a pod whose ADD never
//! finished; the record goes once DEL succeeded, so the network is torn down once. While the
//! record exists the pod holds its hostPorts.

pub mod cni;
pub mod conf;
pub mod ports;

use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use conf::{host_ip, DEFAULT_BRIDGE, DEFAULT_NETWORK, DEFAULT_SUBNET};
pub use ports::PortMapping;

/// The record of a pod's attachment, in its state dir.
pub const RECORD: &str = "network.json";
/// The interface name inside the pod, as on a cluster.
const IF_NAME: &str = "eth0";

/// Which network pods join.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NetworkChoice {
    /// The network named `podctl` in the config dir, written there first if missing.
    #[default]
    Default,
    /// The network of this name in the config dir.
    Named(String),
    /// The first network in the config dir, by file name (the kubelet's runtimes' rule),
    /// when the user points at a dir of their own.
    FirstInDir,
    /// No network: loopback only.
    None,
}

/// Where networks and plugins are found, and which network pods join.
#[derive(Debug, Clone)]
pub struct NetworkOptions {
    pub choice: NetworkChoice,
    /// `/etc/cni/net.d` by default.
    pub conf_dir: PathBuf,
    /// Searched in order: `/usr/lib/cni` (Debian), `/opt/cni/bin` (upstream) by default.
    pub bin_dirs: Vec<PathBuf>,
}

/// The usual places.
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";
pub const DEFAULT_BIN_DIRS: [&str; 2] = ["/usr/lib/cni", "/opt/cni/bin"];

impl Default for NetworkOptions {
    fn default() -> Self {
        NetworkOptions {
            choice: NetworkChoice::Default,
            conf_dir: PathBuf::from(DEFAULT_CONF_DIR),
            bin_dirs: DEFAULT_BIN_DIRS.iter().map(PathBuf::from).collect(),
        }
    }
}

/// Why a pod's network could not be set up or torn down.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("no CNI network named {name:?} in {} (found: {})", dir.display(), if found.is_empty() { "none".to_owned() } else { found.join(", ") })]
    NotFound {
        name: String,
        dir: PathBuf,
        found: Vec<String>,
    },
    #[error("no CNI network configuration (*.conflist, *.conf, *.json) in {}", dir.display())]
    NoConfig { dir: PathBuf },
    #[error("network config {}: {reason}", file.display())]
    BadConfig { file: PathBuf, reason: String },
    #[error("CNI plugin {plugin:?} not found in {} (install containernetworking-plugins, or point --cni-bin-dir at the plugins)", dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "))]
    PluginNotFound { plugin: String, dirs: Vec<PathBuf> },
    #[error("network config {}: subnet {subnet} overlaps the host's route to {route} on {iface}; choose another subnet in that file", file.display())]
    SubnetOverlap {
        file: PathBuf,
        subnet: String,
        route: String,
        iface: String,
    },
    #[error("hostPort {mapping} of pod {pod:?} is already taken by pod {holder:?}")]
    HostPortTaken {
        mapping: PortMapping,
        pod: String,
        holder: String,
    },
    /// A hostPort the chosen network cannot publish; refused rather than left unpublished.
    #[error("hostPort {mapping} of pod {pod:?} cannot be published: {reason}")]
    HostPortUnpublishable {
        mapping: PortMapping,
        pod: String,
        reason: String,
    },
    #[error("CNI plugin {plugin:?} failed on {command}: {error}")]
    Plugin {
        plugin: String,
        command: &'static str,
        error: cni::PluginError,
    },
    #[error("CNI plugin {plugin:?} did not finish {command} within {after:?}; it was killed")]
    Timeout {
        plugin: String,
        command: &'static str,
        after: std::time::Duration,
    },
    #[error("CNI plugin {plugin:?} returned an unreadable {command} result: {reason}")]
    BadResult {
        plugin: String,
        command: &'static str,
        reason: String,
    },
    #[error("running CNI plugin {}: {source}", plugin.display())]
    Exec {
        plugin: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    BadRecord { path: PathBuf, reason: String },
}

/// A pod's attachment to a network, as recorded in [`RECORD`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// `<namespace>/<pod>`, for messages about conflicts.
    pub pod: String,
    /// `CNI_CONTAINERID`: unique per pod run.
    pub container_id: String,
    pub if_name: String,
    pub netns: PathBuf,
    pub bin_dirs: Vec<PathBuf>,
    /// Where the configuration came from (for messages; the content below is what counts).
    pub config_file: PathBuf,
    /// The configuration list ADD was given.
    pub config: Value,
    pub port_mappings: Vec<PortMapping>,
    pub cni_args: String,
    /// ADD's result so far: the last plugin's that succeeded (DEL's `prevResult`).
    #[serde(default)]
    pub result: Option<Value>,
    /// Whether ADD was begun: a DEL is owed from then on.
    #[serde(default)]
    pub adding: bool,
    /// Whether every plugin's ADD succeeded.
    #[serde(default)]
    pub attached: bool,
}

impl Attachment {
    /// A claim of a `hostNetwork` pod's hostPorts: no network to attach.
    pub fn is_claim_only(&self) -> bool {
        self.config.is_null()
    }

    /// The pod's addresses from the ADD result.
    pub fn pod_ips(&self) -> Vec<IpAddr> {
        self.result
            .as_ref()
            .map(|r| cni::Summary::of(r).pod_ips())
            .unwrap_or_default()
    }

    fn target<'a>(&'a self, netns: &'a Path) -> cni::Target<'a> {
        cni::Target {
            container_id: &self.container_id,
            netns,
            if_name: &self.if_name,
            args: &self.cni_args,
            bin_dirs: &self.bin_dirs,
        }
    }

    fn runtime_config(&self) -> Map<String, Value> {
        let mut rc = Map::new();
        rc.insert(
            "portMappings".into(),
            serde_json::to_value(&self.port_mappings).expect("port mappings serialize"),
        );
        rc
    }
}

/// What a pod about to be admitted will be attached to: the network chosen and checked
/// (plugins installed, no subnet over a host route, hostPorts free). `None` for
/// `hostNetwork` pods and with [`NetworkChoice::None`]. Creates nothing but podctl's default
/// network file.
pub fn plan(
    opts: &NetworkOptions,
    pod: &Pod,
    root: &Path,
    namespace: &str,
    netns: &Path,
) -> Result<Option<Attachment>, NetworkError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let port_mappings = ports::port_mappings(pod);
    let qualified = format!("{namespace}/{name}");
    if let Some((mapping, holder)) = ports::taken(root, &port_mappings) {
        return Err(NetworkError::HostPortTaken {
            mapping,
            pod: qualified,
            holder,
        });
    }
    if host_network {
        // The pod binds the host's ports itself; they are claimed all the same, so that a
        // pod on the network asking for one is refused rather than steal its traffic.
        return Ok((!port_mappings.is_empty()).then(|| Attachment {
            pod: qualified,
            container_id: String::new(),
            if_name: String::new(),
            netns: PathBuf::new(),
            bin_dirs: Vec::new(),
            config_file: PathBuf::new(),
            config: Value::Null,
            port_mappings,
            cni_args: String::new(),
            result: None,
            adding: false,
            attached: true,
        }));
    }
    let unpublishable = |reason: String| NetworkError::HostPortUnpublishable {
        mapping: port_mappings[0].clone(),
        pod: qualified.clone(),
        reason,
    };
    let Some(config) = conf::select(opts)? else {
        if !port_mappings.is_empty() {
            return Err(unpublishable(
                "the network is \"none\" (loopback only)".to_owned(),
            ));
        }
        return Ok(None);
    };
    if !port_mappings.is_empty() && !config.publishes_ports() {
        return Err(unpublishable(format!(
            "network {:?} ({}) has no plugin with the portMappings capability",
            config.name,
            config.file.display()
        )));
    }
    conf::check_plugins(&config, &opts.bin_dirs)?;
    conf::check_routes(&config, &conf::host_routes()?)?;
    let k8s_namespace = pod
        .metadata
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or("default");
    Ok(Some(Attachment {
        container_id: format!("podctl-{namespace}-{name}-{:08x}", rand::random::<u32>()),
        pod: qualified,
        if_name: IF_NAME.to_owned(),
        netns: netns.to_owned(),
        bin_dirs: opts.bin_dirs.clone(),
        config_file: config.file,
        config: config.list,
        port_mappings,
        cni_args: format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={k8s_namespace};K8S_POD_NAME={name};K8S_POD_INFRA_CONTAINER_ID={namespace}.{name}"
        ),
        result: None,
        adding: false,
        attached: false,
    }))
}

/// Records the attachment in the pod's state dir, checking its hostPorts once more under a
/// lock, so that of two pods admitted at once asking for one port, one is refused.
pub fn claim(root: &Path, dir: &Path, attachment: &Attachment) -> Result<(), NetworkError> {
    let _lock = lock(root)?;
    if let Some((mapping, holder)) = ports::taken(root, &attachment.port_mappings) {
        return Err(NetworkError::HostPortTaken {
            mapping,
            pod: attachment.pod.clone(),
            holder,
        });
    }
    write_record(dir, attachment)
}

/// Runs ADD for the attachment recorded in `dir` and records its result; returns the pod's
/// addresses. On an error the record stays: [`detach`] runs DEL for whatever ADD did.
pub fn attach(dir: &Path) -> Result<Vec<IpAddr>, NetworkError> {
    let _lock = pod_lock(dir)?;
    attach_locked(dir)
}

fn attach_locked(dir: &Path) -> Result<Vec<IpAddr>, NetworkError> {
    let Some(mut attachment) = read_record(dir)? else {
        return Ok(Vec::new());
    };
    // From here on a DEL is owed, even if podctl dies inside the first plugin.
    attachment.adding = true;
    write_record(dir, &attachment)?;
    let netns = attachment.netns.clone();
    let mut partial = attachment.clone();
    let result = cni::run_list(
        cni::Command::Add,
        &attachment.config,
        &attachment.target(&netns),
        &attachment.runtime_config(),
        None,
        |step| {
            // Recorded after every plugin, so that a crash midway leaves DEL what it needs
            // (the firewall plugin, say, removes only the addresses it is told of).
            partial.result = Some(step.clone());
            write_record(dir, &partial)
        },
    )?;
    attachment.result = result;
    attachment.attached = true;
    write_record(dir, &attachment)?;
    Ok(attachment.pod_ips())
}

/// For a pod adopted after its supervisor died: an attachment whose ADD finished is checked
/// (CHECK; a failure is logged, the pod keeps running as it did) and its addresses returned;
/// one whose ADD was cut short is undone (DEL) and made again (ADD).
pub fn reattach(dir: &Path) -> Result<Vec<IpAddr>, NetworkError> {
    let _lock = pod_lock(dir)?;
    let Some(attachment) = read_record(dir)? else {
        return Ok(Vec::new());
    };
    if attachment.attached {
        if let Err(e) = check_locked(dir) {
            tracing::warn!(pod = %attachment.pod, error = %e, "the pod's network failed its CNI CHECK");
        }
        return Ok(attachment.pod_ips());
    }
    cni::run_list(
        cni::Command::Del,
        &attachment.config,
        &attachment.target(&attachment.netns),
        &attachment.runtime_config(),
        attachment.result.as_ref(),
        |_| Ok(()),
    )?;
    attach_locked(dir)
}

/// Runs CHECK for the attachment recorded in `dir` (nothing when the configuration sets
/// `disableCheck`, or before ADD finished).
pub fn check(dir: &Path) -> Result<(), NetworkError> {
    let _lock = pod_lock(dir)?;
    check_locked(dir)
}

fn check_locked(dir: &Path) -> Result<(), NetworkError> {
    let Some(attachment) = read_record(dir)? else {
        return Ok(());
    };
    let Some(result) = attachment.result.as_ref().filter(|_| attachment.attached) else {
        return Ok(());
    };
    let disabled = attachment
        .config
        .get("disableCheck")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let known = attachment
        .config
        .get("cniVersion")
        .is_some_and(cni::at_least_0_4);
    if disabled || !known {
        return Ok(());
    }
    cni::run_list(
        cni::Command::Check,
        &attachment.config,
        &attachment.target(&attachment.netns),
        &attachment.runtime_config(),
        Some(result),
        |_| Ok(()),
    )?;
    Ok(())
}

/// Runs DEL for the attachment recorded in `dir`, then removes the record. Idempotent; no
/// record, nothing to do. Must run while the namespace pin is still mounted, so that the
/// plugins find the pod's interface (without it, they still release addresses and rules).
pub fn detach(dir: &Path) -> Result<(), NetworkError> {
    if !dir.join(RECORD).exists() {
        return Ok(());
    }
    // An ADD still running (a stop that came during it) finishes first.
    let _lock = pod_lock(dir)?;
    let Some(attachment) = read_record(dir)? else {
        return Ok(());
    };
    if attachment.adding {
        // After a reboot the pin is a plain file: DEL is then told there is no namespace.
        let netns = if is_namespace(&attachment.netns) {
            attachment.netns.clone()
        } else {
            PathBuf::new()
        };
        cni::run_list(
            cni::Command::Del,
            &attachment.config,
            &attachment.target(&netns),
            &attachment.runtime_config(),
            attachment.result.as_ref(),
            |_| Ok(()),
        )?;
    }
    let path = dir.join(RECORD);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetworkError::Io { path, source }),
    }
}

/// Drops the attachment's record without DEL (`podctl rm --force` after a DEL that failed).
pub fn forget(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(RECORD));
}

/// The attachment recorded in `dir`, if any.
pub fn read_record(dir: &Path) -> Result<Option<Attachment>, NetworkError> {
    let path = dir.join(RECORD);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(NetworkError::Io { path, source }),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| NetworkError::BadRecord {
            path,
            reason: e.to_string(),
        })
}

fn write_record(dir: &Path, attachment: &Attachment) -> Result<(), NetworkError> {
    let path = dir.join(RECORD);
    crate::pods::write_json(&path, attachment).map_err(|source| NetworkError::Io { path, source })
}

/// Every attachment recorded under podctl's root, with its pod (`<namespace>/<name>`).
fn recorded_under(root: &Path) -> Vec<(String, Attachment)> {
    let mut out = Vec::new();
    let Ok(namespaces) = std::fs::read_dir(root) else {
        return out;
    };
    for ns in namespaces.filter_map(Result::ok) {
        let Ok(pods) = std::fs::read_dir(ns.path().join("pods")) else {
            continue;
        };
        for pod in pods.filter_map(Result::ok) {
            if let Ok(Some(a)) = read_record(&pod.path()) {
                out.push((a.pod.clone(), a));
            }
        }
    }
    out
}

/// The pod's own lock: ADD, CHECK and DEL of one pod never overlap.
fn pod_lock(dir: &Path) -> Result<Flock<File>, NetworkError> {
    lock_file(&dir.join("network.lock"))
}

/// The lock hostPort claims under one podctl root are made under.
fn lock(root: &Path) -> Result<Flock<File>, NetworkError> {
    std::fs::create_dir_all(root).map_err(|source| NetworkError::Io {
        path: root.to_owned(),
        source,
    })?;
    lock_file(&root.join("network.lock"))
}

fn lock_file(path: &Path) -> Result<Flock<File>, NetworkError> {
    let path = path.to_owned();
    let file = match File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(source) => return Err(NetworkError::Io { path, source }),
    };
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| NetworkError::Io {
        path,
        source: e.into(),
    })
}

/// Whether `path` holds a namespace (a pin on nsfs).
fn is_namespace(path: &Path) -> bool {
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type().0 == NSFS_MAGIC)
}
