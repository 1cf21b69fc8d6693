//! hostPorts: the port mappings a pod asks for (what the kubelet hands its runtime, passed
//! to the `portmap` plugin) and the check that no other pod of podctl's holds one of them.

use std::net::IpAddr;
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

/// One hostPort, in the form the `portmap` plugin's `portMappings` capability takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// Empty: every host address.
    #[serde(default, rename = "hostIP", skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

impl PortMapping {
    /// Whether both ask for the same port of the same protocol on a common address.
    pub fn clashes_with(&self, other: &PortMapping) -> bool {
        let any =
            |ip: &str| ip.is_empty() || ip.parse::<IpAddr>().is_ok_and(|a| a.is_unspecified());
        self.host_port == other.host_port
            && self.protocol == other.protocol
            && (any(&self.host_ip) || any(&other.host_ip) || self.host_ip == other.host_ip)
    }
}

impl std::fmt::Display for PortMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.host_ip.is_empty() {
            write!(f, "{}:", self.host_ip)?;
        }
        write!(f, "{}/{}", self.host_port, self.protocol.to_uppercase())
    }
}

/// The pod's hostPorts, as the kubelet collects them for its runtime: from
/// `spec.containers` (init containers' ports are refused at validation).
pub fn port_mappings(pod: &Pod) -> Vec<PortMapping> {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| PortMapping {
            host_port: p.host_port.unwrap_or_default() as u16,
            container_port: p.container_port as u16,
            protocol: p.protocol.as_deref().unwrap_or("TCP").to_lowercase(),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect()
}

/// The first of `wanted` that a pod recorded under `root` holds already: the mapping and
/// that pod (`<namespace>/<name>`). A pod holds its hostPorts from admission until its
/// network is torn down (its `network.json` exists), whatever state it is in.
pub fn taken(root: &Path, wanted: &[PortMapping]) -> Option<(PortMapping, String)> {
    if wanted.is_empty() {
        return None;
    }
    for (pod, attachment) in super::recorded_under(root) {
        for held in &attachment.port_mappings {
            if let Some(w) = wanted.iter().find(|w| w.clashes_with(held)) {
                return Some((w.clone(), pod));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(host_ip: &str, port: u16, protocol: &str) -> PortMapping {
        PortMapping {
            host_port: port,
            container_port: 80,
            protocol: protocol.into(),
            host_ip: host_ip.into(),
        }
    }

    #[test]
    fn clashes_need_the_same_port_protocol_and_a_common_address() {
        let any = mapping("", 8080, "tcp");
        assert!(any.clashes_with(&mapping("127.0.0.1", 8080, "tcp")));
        assert!(mapping("0.0.0.0", 8080, "tcp").clashes_with(&mapping("10.0.0.1", 8080, "tcp")));
        assert!(!any.clashes_with(&mapping("", 8080, "udp")));
        assert!(!any.clashes_with(&mapping("", 8081, "tcp")));
        assert!(!mapping("127.0.0.1", 8080, "tcp").clashes_with(&mapping(
            "127.0.0.2",
            8080,
            "tcp"
        )));
        assert_eq!(
            mapping("127.0.0.1", 8080, "tcp").to_string(),
            "127.0.0.1:8080/TCP"
        );
    }

    #[test]
    fn mappings_come_from_the_containers_ports_with_a_host_port() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "a", "ports": [
                    {"containerPort": 80, "hostPort": 8080},
                    {"containerPort": 81},
                    {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "127.0.0.1"}
                ]}
            ]}
        }))
        .unwrap();
        assert_eq!(
            port_mappings(&pod),
            [
                PortMapping {
                    host_port: 8080,
                    container_port: 80,
                    protocol: "tcp".into(),
                    host_ip: String::new()
                },
                PortMapping {
                    host_port: 5353,
                    container_port: 53,
                    protocol: "udp".into(),
                    host_ip: "127.0.0.1".into()
                }
            ]
        );
        assert_eq!(
            serde_json::to_value(&port_mappings(&pod)[1]).unwrap(),
            serde_json::json!({"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"})
        );
    }
}
