//! Executing CNI plugins as the CNI specification (1.0) asks: the `CNI_*` environment, the
//! network configuration on stdin, the result or the error as JSON on stdout; and running a
//! configuration list's plugins in order (ADD, CHECK) or in reverse (DEL), each one given the
//! result of the one before (ADD) or the cached result of the whole ADD (CHECK, DEL).

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::NetworkError;

/// A CNI operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Check,
    Del,
}

impl Command {
    fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Check => "CHECK",
            Command::Del => "DEL",
        }
    }
}

/// Who a configuration list is applied to: the values of the `CNI_*` variables.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub container_id: &'a str,
    /// The network namespace's path; empty for a DEL after the namespace is gone, which the
    /// specification allows.
    pub netns: &'a Path,
    pub if_name: &'a str,
    /// `CNI_ARGS`: `K8S_POD_NAMESPACE=...;K8S_POD_NAME=...` as the kubelet's runtimes pass.
    pub args: &'a str,
    pub bin_dirs: &'a [PathBuf],
}

/// A plugin's error reply (`{"code": 7, "msg": ..., "details": ...}`), or what it printed
/// instead when its reply was not one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PluginError {
    #[serde(default)]
    pub code: u32,
    #[serde(default)]
    pub msg: String,
    #[serde(default)]
    pub details: String,
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (CNI error code {}", self.msg, self.code)?;
        if let Some(meaning) = well_known_code(self.code) {
            write!(f, ": {meaning}")?;
        }
        f.write_str(")")?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

/// The error codes the specification reserves.
fn well_known_code(code: u32) -> Option<&'static str> {
    Some(match code {
        1 => "incompatible CNI version",
        2 => "unsupported field in network configuration",
        3 => "container unknown or does not exist",
        4 => "invalid necessary environment variables",
        5 => "I/O failure",
        6 => "failed to decode content",
        7 => "invalid network config",
        11 => "try again later",
        _ => return None,
    })
}

/// The parts of a CNI result podctl reads (the whole result is kept as JSON, since it is
/// handed back to the plugins as `prevResult`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Summary {
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Interface {
    pub name: String,
    /// Set for the interfaces inside the container's namespace.
    #[serde(default)]
    pub sandbox: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IpConfig {
    /// CIDR notation: `10.85.0.2/16`.
    pub address: String,
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    #[serde(default)]
    pub interface: Option<usize>,
}

impl IpConfig {
    /// The address without its prefix length.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.split('/').next()?.parse().ok()
    }
}

impl Summary {
    /// Reads the parts podctl needs from a result.
    pub fn of(result: &Value) -> Summary {
        serde_json::from_value(result.clone()).unwrap_or_default()
    }

    /// The pod's addresses: those on interfaces inside the namespace (or on no named
    /// interface), IPv4 first, as the kubelet orders `podIPs` for a single-stack pod.
    pub fn pod_ips(&self) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = self
            .ips
            .iter()
            .filter(
                |ip| match ip.interface.and_then(|i| self.interfaces.get(i)) {
                    Some(iface) => iface.sandbox.as_deref().is_some_and(|s| !s.is_empty()),
                    None => true,
                },
            )
            .filter_map(IpConfig::ip)
            .collect();
        ips.sort_by_key(|ip| ip.is_ipv6());
        ips.dedup();
        ips
    }
}

/// Runs `command` for every plugin of a configuration list: in order for ADD (each gets the
/// previous result) and CHECK, in reverse for DEL; CHECK and DEL get `cached` (the ADD's
/// result) as `prevResult`. Returns the last ADD result; `progress` is given each plugin's
/// ADD result as it comes, so that a DEL after an ADD cut short knows what was made.
///
/// `runtime_config` holds the capability arguments (`portMappings`); each plugin receives
/// those it declares in its `capabilities`, as libcni passes them.
pub fn run_list(
    command: Command,
    list: &Value,
    target: &Target<'_>,
    runtime_config: &Map<String, Value>,
    cached: Option<&Value>,
    mut progress: impl FnMut(&Value) -> Result<(), NetworkError>,
) -> Result<Option<Value>, NetworkError> {
    let name = list.get("name").cloned().unwrap_or(Value::Null);
    let version = list.get("cniVersion").cloned().unwrap_or(Value::Null);
    let plugins: Vec<&Value> = list
        .get("plugins")
        .and_then(Value::as_array)
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    let order: Vec<&Value> = match command {
        Command::Del => plugins.into_iter().rev().collect(),
        Command::Add | Command::Check => plugins,
    };
    // `prevResult` on DEL and CHECK came with CNI 0.4.0; older plugins refuse it.
    let mut prev = match command {
        Command::Add => None,
        Command::Check | Command::Del if at_least_0_4(&version) => cached.cloned(),
        Command::Check | Command::Del => None,
    };
    for plugin in order {
        let mut conf = plugin.as_object().cloned().unwrap_or_default();
        conf.insert("name".into(), name.clone());
        conf.insert("cniVersion".into(), version.clone());
        let wanted: Map<String, Value> = runtime_config
            .iter()
            .filter(|(key, _)| {
                plugin
                    .pointer(&format!("/capabilities/{key}"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !wanted.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(wanted));
        }
        if let Some(prev) = &prev {
            conf.insert("prevResult".into(), prev.clone());
        }
        let plugin_type = plugin.get("type").and_then(Value::as_str).unwrap_or("");
        let out = exec(command, plugin_type, &Value::Object(conf), target)?;
        if command == Command::Add {
            progress(&out)?;
            prev = Some(out);
        }
    }
    Ok(match command {
        Command::Add => prev,
        Command::Check | Command::Del => None,
    })
}

/// Whether a `cniVersion` is 0.4.0 or later (CHECK, and `prevResult` on DEL).
pub fn at_least_0_4(version: &Value) -> bool {
    let parts: Vec<u32> = version
        .as_str()
        .unwrap_or("")
        .split('.')
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    matches!(parts.as_slice(), [major, ..] if *major >= 1)
        || matches!(parts.as_slice(), [0, minor, ..] if *minor >= 4)
}

/// Finds a plugin's executable in the bin dirs, in order.
pub fn find_plugin(plugin: &str, bin_dirs: &[PathBuf]) -> Result<PathBuf, NetworkError> {
    use std::os::unix::fs::PermissionsExt;
    // A type naming a path would run something outside the plugin dirs.
    if !plugin.is_empty() && !plugin.contains('/') && plugin != "." && plugin != ".." {
        for dir in bin_dirs {
            let path = dir.join(plugin);
            if std::fs::metadata(&path)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            {
                return Ok(path);
            }
        }
    }
    Err(NetworkError::PluginNotFound {
        plugin: plugin.to_owned(),
        dirs: bin_dirs.to_vec(),
    })
}

/// One plugin execution.
fn exec(
    command: Command,
    plugin: &str,
    conf: &Value,
    target: &Target<'_>,
) -> Result<Value, NetworkError> {
    let path = find_plugin(plugin, target.bin_dirs)?;
    let cni_path = std::env::join_paths(target.bin_dirs).unwrap_or_default();
    let started = std::time::Instant::now();
    // A group of its own: a Ctrl-C meant for `podctl run` must not kill a plugin (and its
    // iptables) half-way; podctl stops the pod itself, DEL included.
    let mut child = Process::new(&path)
        .process_group(0)
        .env("CNI_COMMAND", command.as_str())
        .env("CNI_CONTAINERID", target.container_id)
        .env("CNI_NETNS", target.netns)
        .env("CNI_IFNAME", target.if_name)
        .env("CNI_ARGS", target.args)
        .env("CNI_PATH", cni_path)
        // Plugins run iptables and friends from PATH, which a service manager may keep short.
        .env("PATH", plugin_search_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NetworkError::Exec {
            plugin: path.clone(),
            source,
        })?;
    let stdin = serde_json::to_vec(conf).expect("a JSON value serializes");
    if let Some(mut pipe) = child.stdin.take() {
        // A plugin that exits without reading its config makes this fail; its exit says why.
        let _ = pipe.write_all(&stdin);
    }
    let out = wait_bounded(child, PLUGIN_TIMEOUT).map_err(|source| {
        if source.kind() == std::io::ErrorKind::TimedOut {
            NetworkError::Timeout {
                plugin: plugin.to_owned(),
                command: command.as_str(),
                after: PLUGIN_TIMEOUT,
            }
        } else {
            NetworkError::Exec {
                plugin: path.clone(),
                source,
            }
        }
    })?;
    tracing::debug!(
        plugin,
        command = command.as_str(),
        elapsed = ?started.elapsed(),
        status = %out.status,
        "cni plugin"
    );
    if out.status.success() {
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        return serde_json::from_slice(&out.stdout).map_err(|e| NetworkError::BadResult {
            plugin: plugin.to_owned(),
            command: command.as_str(),
            reason: e.to_string(),
        });
    }
    let error = serde_json::from_slice::<PluginError>(&out.stdout)
        .ok()
        .filter(|e| !e.msg.is_empty())
        .unwrap_or_else(|| PluginError {
            code: 0,
            msg: format!(
                "exited with {}: {}",
                out.status,
                String::from_utf8_lossy(if out.stderr.is_empty() {
                    &out.stdout
                } else {
                    &out.stderr
                })
                .trim()
            ),
            details: String::new(),
        });
    Err(NetworkError::Plugin {
        plugin: plugin.to_owned(),
        command: command.as_str(),
        error,
    })
}

/// How long one plugin may take (an iptables lock held elsewhere, a hung D-Bus call) before
/// it and its children are killed.
pub const PLUGIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// `wait_with_output`, but killing the child's process group after `limit` (the error is
/// then `TimedOut`).
fn wait_bounded(
    mut child: std::process::Child,
    limit: std::time::Duration,
) -> std::io::Result<std::process::Output> {
    use std::io::Read;
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(limit) {
        Ok(status) => status?,
        Err(_) => {
            // The plugin leads a group of its own (see `exec`): its children go with it.
            let group = nix::unistd::Pid::from_raw(-(pid as i32));
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
            let _ = waiter.join();
            return Err(std::io::Error::from(std::io::ErrorKind::TimedOut));
        }
    };
    let _ = waiter.join();
    Ok(std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// The inherited PATH with the system dirs plugins need appended.
fn plugin_search_path() -> std::ffi::OsString {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for dir in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        if !dirs.iter().any(|d| d == Path::new(dir)) {
            dirs.push(PathBuf::from(dir));
        }
    }
    std::env::join_paths(dirs).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_ips_are_those_inside_the_namespace_ipv4_first() {
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "podctl0", "mac": "aa"},
                {"name": "veth1", "mac": "bb"},
                {"name": "eth0", "mac": "cc", "sandbox": "/run/x/ns/net"}
            ],
            "ips": [
                {"address": "fd00::2/64", "interface": 2},
                {"address": "10.85.0.7/16", "gateway": "10.85.0.1", "interface": 2},
                {"address": "10.85.0.1/16", "interface": 0}
            ]
        });
        let s = Summary::of(&result);
        assert_eq!(
            s.pod_ips(),
            [
                "10.85.0.7".parse::<IpAddr>().unwrap(),
                "fd00::2".parse().unwrap()
            ]
        );
    }

    #[test]
    fn plugin_errors_read_as_the_spec_writes_them() {
        let e: PluginError = serde_json::from_str(
            r#"{"cniVersion":"1.0.0","code":7,"msg":"bad subnet","details":"x"}"#,
        )
        .unwrap();
        assert_eq!(
            e.to_string(),
            "bad subnet (CNI error code 7: invalid network config): x"
        );
    }

    #[test]
    fn versions_from_0_4_know_check_and_prev_result() {
        for (v, yes) in [
            ("1.0.0", true),
            ("0.4.0", true),
            ("0.3.1", false),
            ("", false),
        ] {
            assert_eq!(at_least_0_4(&Value::from(v)), yes, "{v}");
        }
    }

    #[test]
    fn a_plugin_that_hangs_is_killed_with_its_children() {
        let child = Process::new("sh")
            .args(["-c", "sleep 30 & sleep 30"])
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let started = std::time::Instant::now();
        let err = wait_bounded(child, std::time::Duration::from_millis(200)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // Every process of its group is gone or dead (a zombie until something reaps it).
        let alive_in_group = || {
            std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
                .filter_map(|stat| {
                    let after = stat.rsplit_once(") ")?.1.to_owned();
                    let fields: Vec<&str> = after.split(' ').collect();
                    (fields.get(2)? == &pid.to_string().as_str()).then(|| fields[0] != "Z")
                })
                .any(|alive| alive)
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while alive_in_group() {
            assert!(
                std::time::Instant::now() < deadline,
                "the plugin's children live on"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn a_plugin_type_is_never_a_path() {
        let dirs = [PathBuf::from("/usr/bin")];
        assert!(matches!(
            find_plugin("../bin/sh", &dirs),
            Err(NetworkError::PluginNotFound { .. })
        ));
        assert!(find_plugin("sh", &dirs).is_ok());
    }
}
