//! The per-pod `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`, bind-mounted into every
//! container so that all of them agree, as under the kubelet and containerd's CRI plugin.

use std::net::IpAddr;
use std::path::Path;

use k8s_openapi::api::core::v1::{HostAlias, Pod};

use super::SandboxError;

/// The kubelet's managed hosts file (`managedHostsFileContent`) for a pod with its own
/// network namespace: one `<podIP>\t<hostname>` line per pod IP (the FQDN first with a
/// `subdomain`, as the kubelet writes it).
///
/// A pod without addresses (loopback only, or before its network is attached) has its
/// hostname mapped to 127.0.1.1, Debian's convention for "this host's name", which keeps
/// `getent hosts $(hostname)` working; that line is podctl's choice, not upstream behaviour.
pub(crate) fn managed_hosts(
    hostname: &str,
    fqdn: Option<&str>,
    aliases: &[HostAlias],
    pod_ips: &[IpAddr],
) -> String {
    let mut out = String::from(concat!(
        "# Kubernetes-managed hosts file.\n",
        "127.0.0.1\tlocalhost\n",
        "::1\tlocalhost ip6-localhost ip6-loopback\n",
        "fe00::0\tip6-localnet\n",
        "fe00::0\tip6-mcastprefix\n",
        "fe00::1\tip6-allnodes\n",
        "fe00::2\tip6-allrouters\n",
    ));
    let loopback = [IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 1, 1))];
    let ips = if pod_ips.is_empty() {
        &loopback[..]
    } else {
        pod_ips
    };
    for ip in ips {
        match fqdn {
            Some(fqdn) => out.push_str(&format!("{ip}\t{fqdn}\t{hostname}\n")),
            None => out.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    out.push_str(&host_aliases(aliases));
    out
}

/// The cluster domain FQDNs end in: podctl has no cluster, and uses Kubernetes' usual one so
/// that names look as they would on a cluster.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// `<hostname>.<subdomain>.<namespace>.svc.<cluster domain>` when the pod has a `subdomain`.
pub(crate) fn pod_fqdn(pod: &Pod, hostname: &str) -> Option<String> {
    let subdomain = pod
        .spec
        .as_ref()
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty())?;
    let namespace = pod
        .metadata
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or("default");
    Some(format!(
        "{hostname}.{subdomain}.{namespace}.svc.{CLUSTER_DOMAIN}"
    ))
}

/// The kubelet's hosts file for `hostNetwork` pods (`nodeHostsFileContent`): the node's file
/// under a header, plus the hostAliases section.
pub(crate) fn node_hosts(node_hosts: &str, aliases: &[HostAlias]) -> String {
    let mut out = String::from("# Kubernetes-managed hosts file (host network).\n");
    out.push_str(node_hosts);
    out.push_str(&host_aliases(aliases));
    out
}

fn host_aliases(aliases: &[HostAlias]) -> String {
    if aliases.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for alias in aliases {
        let names = alias.hostnames.as_deref().unwrap_or_default().join("\t");
        out.push_str(&format!("{}\t{}\n", alias.ip, names));
    }
    out
}

/// Reads a host file, treating a missing one as empty (a host without /etc/resolv.conf still
/// runs pods; containers then get an empty file, like containerd gives them).
pub(crate) fn read_host_file(path: &Path) -> Result<String, SandboxError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(SandboxError::Io {
            op: "read",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes `content` to the new file `path` with mode 0644 (containers may run as any user
/// and must be able to read these files).
pub(crate) fn write_file(path: &Path, content: &str) -> Result<(), SandboxError> {
    use std::os::unix::fs::OpenOptionsExt;
    write_with(
        std::fs::OpenOptions::new().create_new(true).mode(0o644),
        path,
        content,
    )?;
    // Explicit chmod: the umask must not make these unreadable.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).map_err(
        |source| SandboxError::Io {
            op: "chmod",
            path: path.to_owned(),
            source,
        },
    )
}

/// Writes `content` to the new file `path`, readable by root alone.
pub(crate) fn write_private(path: &Path, content: &[u8]) -> Result<(), SandboxError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |op, source| SandboxError::Io {
        op,
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io("open", e))?;
    file.write_all(content).map_err(|e| io("write", e))
}

/// Replaces the content of an existing file in place: containers bind its inode, so a new
/// file renamed over it would not reach them.
pub(crate) fn overwrite_file(path: &Path, content: &str) -> Result<(), SandboxError> {
    write_with(std::fs::OpenOptions::new().truncate(true), path, content)
}

fn write_with(
    options: &mut std::fs::OpenOptions,
    path: &Path,
    content: &str,
) -> Result<(), SandboxError> {
    use std::io::Write;
    let io = |op, source| SandboxError::Io {
        op,
        path: path.to_owned(),
        source,
    };
    let mut file = options.write(true).open(path).map_err(|e| io("open", e))?;
    file.write_all(content.as_bytes())
        .map_err(|e| io("write", e))
}

/// `/etc/hosts` content for the pod, with its addresses once it has them.
pub(crate) fn hosts_for(
    pod: &Pod,
    hostname: &str,
    pod_ips: &[IpAddr],
) -> Result<String, SandboxError> {
    let spec = pod.spec.as_ref();
    let aliases = spec
        .and_then(|s| s.host_aliases.as_deref())
        .unwrap_or_default();
    if spec.and_then(|s| s.host_network).unwrap_or(false) {
        Ok(node_hosts(
            &read_host_file(Path::new("/etc/hosts"))?,
            aliases,
        ))
    } else {
        Ok(managed_hosts(
            hostname,
            pod_fqdn(pod, hostname).as_deref(),
            aliases,
            pod_ips,
        ))
    }
}

/// `/etc/resolv.conf` content for the pod (see [`super::dns`]), and the warnings forming it
/// gave.
pub(crate) fn resolv_conf_for(pod: &Pod) -> Result<(String, Vec<String>), SandboxError> {
    use super::dns;
    let host = if dns::ignores_host(pod) {
        dns::host_config("", None, true)
    } else {
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        let host = read_host_file(Path::new("/etc/resolv.conf"))?;
        // systemd-resolved's file matters only behind its stub: no second read otherwise.
        let upstream = if !host_network && host.contains(dns::RESOLVED_STUB) {
            read_host_file(Path::new(dns::RESOLVED_UPSTREAM))?
        } else {
            String::new()
        };
        dns::host_config(
            &host,
            Some(upstream.as_str()).filter(|u| !u.is_empty()),
            host_network,
        )
    };
    let (conf, warnings) = dns::formed(pod, host);
    Ok((conf.render(), warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_hosts_matches_kubelet_format() {
        let aliases = vec![
            HostAlias {
                ip: "10.1.2.3".into(),
                hostnames: Some(vec!["foo.local".into(), "bar.local".into()]),
            },
            HostAlias {
                ip: "10.1.2.4".into(),
                hostnames: Some(vec!["baz".into()]),
            },
        ];
        assert_eq!(
            managed_hosts("web", None, &aliases, &[]),
            "# Kubernetes-managed hosts file.\n\
             127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\n\
             fe00::1\tip6-allnodes\n\
             fe00::2\tip6-allrouters\n\
             127.0.1.1\tweb\n\
             \n\
             # Entries added by HostAliases.\n\
             10.1.2.3\tfoo.local\tbar.local\n\
             10.1.2.4\tbaz\n"
        );
        assert!(!managed_hosts("web", None, &[], &[]).contains("HostAliases"));
    }

    #[test]
    fn a_subdomain_puts_the_fqdn_first() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "team"},
            "spec": {"containers": [], "subdomain": "db"}
        }))
        .unwrap();
        let fqdn = pod_fqdn(&pod, "web").unwrap();
        assert_eq!(fqdn, "web.db.team.svc.cluster.local");
        assert!(managed_hosts("web", Some(&fqdn), &[], &[])
            .contains("127.0.1.1\tweb.db.team.svc.cluster.local\tweb\n"));
        let ips = ["10.85.0.9".parse().unwrap()];
        assert!(managed_hosts("web", Some(&fqdn), &[], &ips).contains(
            "\nfe00::2\tip6-allrouters\n10.85.0.9\tweb.db.team.svc.cluster.local\tweb\n"
        ));
    }

    #[test]
    fn node_hosts_keeps_node_file() {
        assert_eq!(
            node_hosts("127.0.0.1 localhost\n", &[]),
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n"
        );
    }
}
