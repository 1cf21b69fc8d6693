//! The downward API: values of a pod's own fields (`fieldRef`) and of its containers'
//! resources (`resourceFieldRef`), as the kubelet computes them for env and volumes
//! (`podFieldSelectorRuntimeValue`, `fieldpath.ExtractFieldPathAsString`,
//! `resource.ExtractContainerResourceValue` over `defaultPodLimitsForDownwardAPI`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceFieldSelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::manifest::{quantity_bytes, quantity_milli, QuantityError};

/// Pod fields only known on the host, once the pod is admitted or its network attached.
#[derive(Debug, Clone, Default)]
pub struct LiveFields {
    /// `spec.nodeName`: this host's node name.
    pub node_name: String,
    pub host_ips: Vec<IpAddr>,
    /// Empty until the pod network is attached.
    pub pod_ips: Vec<IpAddr>,
}

impl LiveFields {
    /// This host's node name: its hostname in lower case, as the kubelet names its node.
    pub fn host_node_name() -> String {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default()
            .to_lowercase()
    }
}

/// Why a downward API value cannot be computed (for a manifest validation let through).
#[derive(Debug, thiserror::Error)]
pub enum DownwardError {
    #[error("unsupported resource {0:?}")]
    Resource(String),
    #[error("invalid quantity {value:?} of {field}: {source}")]
    Quantity {
        field: String,
        value: String,
        #[source]
        source: QuantityError,
    },
    #[error("divisor {0:?} must be greater than zero")]
    Divisor(String),
}

/// The value of `field_path` for `pod` (`metadata.labels['k']`, `metadata.annotations`,
/// `status.podIP` ...); `None` for a path the downward API does not offer.
pub fn field_value(pod: &Pod, field_path: &str, live: &LiveFields) -> Option<String> {
    let meta = &pod.metadata;
    let map = |m: &Option<BTreeMap<String, String>>| m.clone().unwrap_or_default();
    if let Some((path, key)) = subscripted(field_path) {
        return match path {
            "metadata.labels" => Some(map(&meta.labels).remove(key).unwrap_or_default()),
            "metadata.annotations" => Some(map(&meta.annotations).remove(key).unwrap_or_default()),
            _ => None,
        };
    }
    let ips = |ips: &[IpAddr]| ips.iter().map(ToString::to_string).collect::<Vec<_>>();
    Some(match field_path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => namespace(pod).to_owned(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(&map(&meta.labels)),
        "metadata.annotations" => format_map(&map(&meta.annotations)),
        "spec.nodeName" => live.node_name.clone(),
        // The API server's ServiceAccount admission names `default` when none is given.
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".to_owned()),
        "status.hostIP" => ips(&live.host_ips).into_iter().next().unwrap_or_default(),
        "status.hostIPs" => ips(&live.host_ips).join(","),
        "status.podIP" => ips(&live.pod_ips).into_iter().next().unwrap_or_default(),
        "status.podIPs" => ips(&live.pod_ips).join(","),
        _ => return None,
    })
}

/// The pod's namespace, `default` when the manifest names none (as the API server fills it).
pub fn namespace(pod: &Pod) -> &str {
    pod.metadata
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
}

/// `metadata.labels['key']` → (`metadata.labels`, `key`): fieldpath's
/// `SplitMaybeSubscriptedPath`.
pub(crate) fn subscripted(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (path, key) = inner.split_once("['")?;
    Some((path, key))
}

/// The kubelet's `FormatMap`: `key="value"` lines in key order, values quoted as Go's `%q`.
fn format_map(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `strconv.Quote`: printable characters as they are, the rest escaped.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                let n = c as u32;
                if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The value of a `resourceFieldRef` of `container`: its limit or request of the resource
/// divided by `divisor` (default 1) and rounded up. A limit left out is the node's
/// allocatable amount (this host's CPUs, memory, root filesystem), a request left out is
/// the limit given, else 0, as the kubelet reports them.
pub fn resource_value(
    container: &Container,
    selector: &ResourceFieldSelector,
) -> Result<String, DownwardError> {
    let (kind, name) = selector
        .resource
        .split_once('.')
        .ok_or_else(|| DownwardError::Resource(selector.resource.clone()))?;
    let res = container.resources.as_ref();
    let list = |kind: &str| match kind {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => None,
    };
    if !matches!(kind, "limits" | "requests") {
        return Err(DownwardError::Resource(selector.resource.clone()));
    }
    let given = list(kind).and_then(|l| l.get(name)).or_else(|| {
        (kind == "requests")
            .then(|| list("limits")?.get(name))
            .flatten()
    });
    let divisor = selector.divisor.clone().unwrap_or(Quantity("1".to_owned()));
    let quantity_err = |field: String, q: &Quantity| {
        let value = q.0.clone();
        move |source| DownwardError::Quantity {
            field,
            value,
            source,
        }
    };
    let cpu = name == "cpu";
    let parse = if cpu { quantity_milli } else { quantity_bytes };
    let divisor_value = parse(&divisor).map_err(quantity_err("divisor".to_owned(), &divisor))?;
    if divisor_value == 0 {
        return Err(DownwardError::Divisor(divisor.0));
    }
    let amount = match given {
        Some(q) => parse(q).map_err(quantity_err(selector.resource.clone(), q))?,
        None if kind == "limits" => node_allocatable(name)?,
        None => 0,
    };
    Ok(amount.div_ceil(divisor_value).to_string())
}

/// What the node offers of `resource` when a container sets no limit (cadvisor's machine
/// info: online CPUs in millicores, `MemTotal`, the capacity of the root filesystem).
fn node_allocatable(resource: &str) -> Result<u64, DownwardError> {
    match resource {
        "cpu" => {
            let cpus = nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
                .ok()
                .flatten()
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(1);
            Ok(cpus * 1000)
        }
        "memory" => Ok(crate::cgroups::host().memory_capacity),
        "ephemeral-storage" => Ok(nix::sys::statvfs::statvfs("/")
            .map(|s| s.blocks() * s.fragment_size())
            .unwrap_or(0)),
        r if r.starts_with("hugepages-") => Ok(0),
        r => Err(DownwardError::Resource(format!("limits.{r}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};

    fn pod() -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.uid = Some("1234".into());
        pod.metadata.labels = Some(BTreeMap::from([
            ("app".into(), "web".into()),
            ("tier".into(), "a \"b\"\n".into()),
        ]));
        pod.spec = Some(PodSpec::default());
        pod
    }

    #[test]
    fn fields_as_the_kubelet_formats_them() {
        let live = LiveFields {
            node_name: "node".into(),
            host_ips: vec!["192.168.1.2".parse().unwrap()],
            pod_ips: vec!["10.85.0.4".parse().unwrap(), "fd00::4".parse().unwrap()],
        };
        let p = pod();
        let get = |path| field_value(&p, path, &live);
        assert_eq!(get("metadata.name").as_deref(), Some("web"));
        assert_eq!(get("metadata.namespace").as_deref(), Some("default"));
        assert_eq!(get("metadata.uid").as_deref(), Some("1234"));
        assert_eq!(get("metadata.labels['app']").as_deref(), Some("web"));
        assert_eq!(get("metadata.labels['missing']").as_deref(), Some(""));
        assert_eq!(
            get("metadata.labels").as_deref(),
            Some("app=\"web\"\ntier=\"a \\\"b\\\"\\n\"")
        );
        assert_eq!(get("metadata.annotations").as_deref(), Some(""));
        assert_eq!(get("spec.nodeName").as_deref(), Some("node"));
        assert_eq!(get("spec.serviceAccountName").as_deref(), Some("default"));
        assert_eq!(get("status.hostIP").as_deref(), Some("192.168.1.2"));
        assert_eq!(get("status.podIP").as_deref(), Some("10.85.0.4"));
        assert_eq!(get("status.podIPs").as_deref(), Some("10.85.0.4,fd00::4"));
        assert_eq!(get("spec.containers"), None);
        assert_eq!(get("metadata.finalizers['x']"), None);
    }

    #[test]
    fn resources_divided_and_rounded_up() {
        let q = |s: &str| Quantity(s.to_owned());
        let c = Container {
            name: "app".into(),
            resources: Some(ResourceRequirements {
                limits: Some(BTreeMap::from([
                    ("cpu".into(), q("1500m")),
                    ("memory".into(), q("64Mi")),
                ])),
                requests: Some(BTreeMap::from([("cpu".into(), q("250m"))])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let value = |resource: &str, divisor: Option<&str>| {
            resource_value(
                &c,
                &ResourceFieldSelector {
                    resource: resource.into(),
                    divisor: divisor.map(q),
                    container_name: None,
                },
            )
            .unwrap()
        };
        assert_eq!(value("limits.cpu", None), "2");
        assert_eq!(value("limits.cpu", Some("1m")), "1500");
        assert_eq!(value("requests.cpu", None), "1");
        assert_eq!(value("requests.cpu", Some("1m")), "250");
        assert_eq!(value("limits.memory", Some("1Mi")), "64");
        // The request defaults to the limit, as the API server stores it.
        assert_eq!(value("requests.memory", Some("1Mi")), "64");
        assert_eq!(value("requests.ephemeral-storage", None), "0");
        // No limit: the node's.
        let bare = Container::default();
        let node_cpu = resource_value(
            &bare,
            &ResourceFieldSelector {
                resource: "limits.cpu".into(),
                divisor: None,
                container_name: None,
            },
        )
        .unwrap();
        assert!(node_cpu.parse::<u64>().unwrap() >= 1);
        let node_memory = resource_value(
            &bare,
            &ResourceFieldSelector {
                resource: "limits.memory".into(),
                divisor: None,
                container_name: None,
            },
        )
        .unwrap();
        assert_eq!(
            node_memory,
            crate::cgroups::host().memory_capacity.to_string()
        );
    }
}
