//! Network configurations: the files of a CNI config dir (`.conflist`, and the single-plugin
//! `.conf`/`.json` that libcni also reads), podctl's own default network, and the checks made
//! before a pod is created with one (every plugin present, no subnet over a host route).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{cni, NetworkChoice, NetworkError, NetworkOptions};

/// The name of podctl's own network.
pub const DEFAULT_NETWORK: &str = "podctl";
/// Its bridge.
pub const DEFAULT_BRIDGE: &str = "podctl0";
/// Its subnet: private (RFC 1918), and away from the 10.88/16 that podman and containerd's
/// examples use and the 10.244/16 and 10.96/12 of common clusters.
pub const DEFAULT_SUBNET: &str = "10.85.0.0/16";
/// The file it is written to in the config dir; `87-` sorts it after the networks a cluster
/// installs (`10-flannel.conflist` ...), so a kubelet's runtime never picks it first.
pub const DEFAULT_FILE: &str = "87-podctl.conflist";

/// A network configuration list as read from a file.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    pub name: String,
    pub file: PathBuf,
    /// The list in its JSON form (`name`, `cniVersion`, `plugins`, ...).
    pub list: Value,
}

impl NetworkConfig {
    /// Whether a plugin takes the `portMappings` capability (publishes hostPorts).
    pub fn publishes_ports(&self) -> bool {
        self.plugins().any(|p| {
            p.pointer("/capabilities/portMappings")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        })
    }

    fn plugins(&self) -> impl Iterator<Item = &Value> {
        self.list
            .get("plugins")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    }
}

/// podctl's default network: a bridge with host-local addresses, outbound NAT (ipMasq),
/// hostPorts through portmap and the firewall plugin's forwarding rules.
pub fn default_list() -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": DEFAULT_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": DEFAULT_BRIDGE,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": DEFAULT_SUBNET}]],
                    "routes": [{"dst": "0.0.0.0/0"}]
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "firewall"}
        ]
    })
}

/// The network a pod joins per `opts`; `None` for loopback only.
pub fn select(opts: &NetworkOptions) -> Result<Option<NetworkConfig>, NetworkError> {
    // Looking for a network by name, a file that does not parse is skipped (and named in
    // a warning) unless it is the one asked for: another tool's broken file must not stop
    // podctl's pods.
    let named = |name: &str| -> Result<(Option<NetworkConfig>, Vec<String>), NetworkError> {
        let mut names = Vec::new();
        for file in files_in(&opts.conf_dir)? {
            match load_file(&file) {
                Ok(c) if c.name == name => return Ok((Some(c), names)),
                Ok(c) => names.push(c.name),
                Err(e) if name == DEFAULT_NETWORK && file.ends_with(DEFAULT_FILE) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a network config that does not load")
                }
            }
        }
        Ok((None, names))
    };
    match &opts.choice {
        NetworkChoice::None => Ok(None),
        NetworkChoice::Named(name) if name != DEFAULT_NETWORK => match named(name)? {
            (Some(c), _) => Ok(Some(c)),
            (None, found) => Err(NetworkError::NotFound {
                name: name.clone(),
                dir: opts.conf_dir.clone(),
                found,
            }),
        },
        NetworkChoice::FirstInDir => match files_in(&opts.conf_dir)?.first() {
            Some(first) => load_file(first).map(Some),
            None => Err(NetworkError::NoConfig {
                dir: opts.conf_dir.clone(),
            }),
        },
        NetworkChoice::Default | NetworkChoice::Named(_) => match named(DEFAULT_NETWORK)? {
            (Some(c), _) => Ok(Some(c)),
            (None, _) => write_default(&opts.conf_dir).map(Some),
        },
    }
}

/// Writes podctl's default network into `dir` (created if missing) and returns it.
fn write_default(dir: &Path) -> Result<NetworkConfig, NetworkError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| NetworkError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let file = dir.join(DEFAULT_FILE);
    let list = default_list();
    let text = serde_json::to_string_pretty(&list).expect("JSON serializes") + "\n";
    // Written whole under a temporary name, so a concurrent podctl never reads half of it.
    let tmp = dir.join(format!(".{DEFAULT_FILE}.{:016x}", rand::random::<u64>()));
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &file).map_err(io(&file))?;
    tracing::info!(file = %file.display(), subnet = DEFAULT_SUBNET, "wrote podctl's default network");
    Ok(NetworkConfig {
        name: DEFAULT_NETWORK.to_owned(),
        file,
        list,
    })
}

/// Every network configuration in `dir`, sorted by file name (libcni's order); a missing dir
/// has none.
pub fn load_dir(dir: &Path) -> Result<Vec<NetworkConfig>, NetworkError> {
    files_in(dir)?.iter().map(|f| load_file(f)).collect()
}

/// The network config files of `dir`, sorted by name; a missing dir has none.
fn files_in(dir: &Path) -> Result<Vec<PathBuf>, NetworkError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(NetworkError::Io {
                path: dir.to_owned(),
                source,
            })
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conflist" | "conf" | "json")
            ) && !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// One file: a list, or a single plugin's config made into a list of one.
pub fn load_file(file: &Path) -> Result<NetworkConfig, NetworkError> {
    let bad = |reason: String| NetworkError::BadConfig {
        file: file.to_owned(),
        reason,
    };
    let text = std::fs::read(file).map_err(|source| NetworkError::Io {
        path: file.to_owned(),
        source,
    })?;
    let mut value: Value = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    let is_list = file.extension().is_some_and(|e| e == "conflist");
    if !is_list {
        let name = value.get("name").cloned();
        let version = value.get("cniVersion").cloned();
        value = json!({"name": name, "cniVersion": version, "plugins": [value]});
    }
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("no \"name\"".into()))?
        .to_owned();
    if value.get("cniVersion").and_then(Value::as_str).is_none() {
        return Err(bad("no \"cniVersion\"".into()));
    }
    let plugins = value
        .get("plugins")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| bad("no \"plugins\"".into()))?;
    for (i, p) in plugins.iter().enumerate() {
        if p.get("type")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(bad(format!("plugins[{i}] has no \"type\"")));
        }
    }
    Ok(NetworkConfig {
        name,
        file: file.to_owned(),
        list: value,
    })
}

/// Checks that every plugin of the network, and every IPAM plugin they name, is installed.
pub fn check_plugins(config: &NetworkConfig, bin_dirs: &[PathBuf]) -> Result<(), NetworkError> {
    for plugin in config.plugins() {
        for name in [plugin.get("type"), plugin.pointer("/ipam/type")]
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            cni::find_plugin(name, bin_dirs)?;
        }
    }
    Ok(())
}

/// An IPv4 network: address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(s: &str) -> Option<Subnet> {
        let (addr, prefix) = s.split_once('/')?;
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
        Some(Subnet {
            addr: addr.parse().ok()?,
            prefix,
        })
    }

    fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    /// Whether the two networks share an address.
    pub fn overlaps(self, other: Subnet) -> bool {
        let mask = self.mask() & other.mask();
        u32::from(self.addr) & mask == u32::from(other.addr) & mask
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The IPv4 subnets host-local hands out on a bridge network, each with its bridge: routes
/// over that device are the network's own. (Other plugins route their subnets otherwise:
/// ptp a /32 per pod on its own veth, macvlan and ipvlan over the host's LAN; they are not
/// checked.)
fn host_local_subnets(config: &NetworkConfig) -> Vec<(Subnet, Option<String>)> {
    let mut out = Vec::new();
    for plugin in config.plugins() {
        let Some(ipam) = plugin.get("ipam") else {
            continue;
        };
        if ipam.get("type").and_then(Value::as_str) != Some("host-local")
            || plugin.get("type").and_then(Value::as_str) != Some("bridge")
        {
            continue;
        }
        let device = Some(
            plugin
                .get("bridge")
                .and_then(Value::as_str)
                .unwrap_or("cni0")
                .to_owned(),
        );
        let ranges = ipam
            .get("ranges")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|r| r.get("subnet"));
        for subnet in ipam.get("subnet").into_iter().chain(ranges) {
            if let Some(s) = subnet.as_str().and_then(Subnet::parse) {
                out.push((s, device.clone()));
            }
        }
    }
    out
}

/// One IPv4 route of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub iface: String,
    pub dst: Subnet,
}

/// The host's IPv4 routes (main table), from `/proc/net/route`.
pub fn host_routes() -> Result<Vec<Route>, NetworkError> {
    let path = Path::new("/proc/net/route");
    let text = std::fs::read_to_string(path).map_err(|source| NetworkError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(parse_routes(&text))
}

fn parse_routes(text: &str) -> Vec<Route> {
    // Addresses are in the kernel's byte order, printed as hex of the native u32.
    let addr = |hex: &str| {
        u32::from_str_radix(hex, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.to_ne_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, dst, mask) = (f.first()?, addr(f.get(1)?)?, addr(f.get(7)?)?);
            Some(Route {
                iface: (*iface).to_owned(),
                dst: Subnet {
                    addr: dst,
                    prefix: u32::from(mask).count_ones() as u8,
                },
            })
        })
        .collect()
}

/// Refuses a network whose subnet overlaps a host route other than its own (the default
/// route excepted): its pods could not reach that part of the host's network, or would
/// shadow it.
pub fn check_routes(config: &NetworkConfig, routes: &[Route]) -> Result<(), NetworkError> {
    for (subnet, device) in host_local_subnets(config) {
        for route in routes {
            if route.dst.prefix == 0 || device.as_deref() == Some(route.iface.as_str()) {
                continue;
            }
            if subnet.overlaps(route.dst) {
                return Err(NetworkError::SubnetOverlap {
                    file: config.file.clone(),
                    subnet: subnet.to_string(),
                    route: route.dst.to_string(),
                    iface: route.iface.clone(),
                });
            }
        }
    }
    Ok(())
}

/// The host's own address for `status.hostIP`: the first IPv4 address of the interface the
/// default route leaves by (the node's InternalIP on a cluster).
pub fn host_ip() -> Option<std::net::IpAddr> {
    let routes = host_routes().ok()?;
    let iface = routes.iter().find(|r| r.dst.prefix == 0)?.iface.clone();
    nix::ifaddrs::getifaddrs()
        .ok()?
        .filter(|a| a.interface_name == iface)
        .find_map(|a| {
            a.address
                .and_then(|s| s.as_sockaddr_in().map(|v4| std::net::IpAddr::V4(v4.ip())))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC_ROUTE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
        eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
        podctl0\t0000550A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";

    #[test]
    fn proc_net_route_parses() {
        let routes = parse_routes(PROC_ROUTE);
        assert_eq!(routes.len(), 3);
        assert_eq!(routes[1].dst.to_string(), "192.0.2.0/24");
        assert_eq!(routes[2].dst.to_string(), "10.85.0.0/16");
        assert_eq!(routes[0].dst.prefix, 0);
    }

    fn network(list: Value) -> NetworkConfig {
        NetworkConfig {
            name: "n".into(),
            file: PathBuf::from("/etc/cni/net.d/n.conflist"),
            list,
        }
    }

    #[test]
    fn a_subnet_over_a_host_route_is_refused_but_not_over_its_own_bridge() {
        let routes = parse_routes(PROC_ROUTE);
        // The default network's own route (a second pod on it) is fine.
        check_routes(&network(default_list()), &routes).unwrap();
        let mut clash = default_list();
        clash["plugins"][0]["ipam"]["ranges"][0][0]["subnet"] = "192.0.2.128/25".into();
        let err = check_routes(&network(clash), &routes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "network config /etc/cni/net.d/n.conflist: subnet 192.0.2.128/25 overlaps the host's \
             route to 192.0.2.0/24 on eth0; choose another subnet in that file"
        );
        let mut legacy = default_list();
        legacy["plugins"][0]["bridge"] = "other0".into();
        legacy["plugins"][0]["ipam"] = json!({"type": "host-local", "subnet": "10.85.3.0/24"});
        assert!(check_routes(&network(legacy), &routes).is_err());
    }

    #[test]
    fn config_files_load_in_name_order_and_single_plugins_become_lists() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("20-b.conf"),
            r#"{"cniVersion":"0.4.0","name":"b","type":"bridge"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("10-a.conflist"),
            r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"loopback"}]}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let all = load_dir(dir.path()).unwrap();
        let names: Vec<_> = all.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(all[1].list["plugins"][0]["type"], "bridge");

        std::fs::write(
            dir.path().join("30-c.conflist"),
            r#"{"cniVersion":"1.0.0","name":"c","plugins":[{"ipam":{}}]}"#,
        )
        .unwrap();
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("30-c.conflist") && err.contains("plugins[0] has no \"type\""),
            "{err}"
        );
    }

    #[test]
    fn the_default_network_is_written_once_and_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let conf_dir = dir.path().join("net.d");
        let opts = NetworkOptions {
            conf_dir: conf_dir.clone(),
            ..NetworkOptions::default()
        };
        let first = select(&opts).unwrap().unwrap();
        assert_eq!(first.file, conf_dir.join(DEFAULT_FILE));
        // An edited file is used as it is.
        let mut edited = default_list();
        edited["plugins"][0]["ipam"]["ranges"][0][0]["subnet"] = "10.99.0.0/24".into();
        std::fs::write(&first.file, edited.to_string()).unwrap();
        let again = select(&opts).unwrap().unwrap();
        assert_eq!(again.list, edited);

        let named = NetworkOptions {
            choice: NetworkChoice::Named("other".into()),
            ..opts.clone()
        };
        assert_eq!(
            select(&named).unwrap_err().to_string(),
            format!(
                "no CNI network named \"other\" in {} (found: podctl)",
                conf_dir.display()
            )
        );
    }

    #[test]
    fn missing_plugins_name_the_dirs_searched() {
        let dirs = [PathBuf::from("/nonexistent/cni")];
        let err = check_plugins(&network(default_list()), &dirs)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "CNI plugin \"bridge\" not found in /nonexistent/cni (install containernetworking-plugins, or point --cni-bin-dir at the plugins)"
        );
    }
}
