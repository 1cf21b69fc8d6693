//! The pod's `/etc/resolv.conf`, as the kubelet forms it (`pkg/kubelet/network/dns`) and
//! containerd's CRI writes it: `dnsPolicy` picks the base (the host's resolver config, or
//! nothing for `None`), `dnsConfig` is merged in, limits are applied.
//!
//! podctl has no cluster DNS, so `ClusterFirst` (the default) falls back to `Default`, with the
//! kubelet's `MissingClusterDNS` warning. The host's config is read as Docker reads it for a
//! container with its own network namespace: behind systemd-resolved's stub (127.0.0.53) the
//! real upstream servers are in `/run/systemd/resolve/resolv.conf`, and a loopback nameserver
//! of the host is unreachable from the pod's namespace, so it is dropped.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};

/// libc's limits, as the kubelet applies them.
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;
const MAX_SEARCH_CHARS: usize = 2048;

/// Docker's nameservers for a container whose host resolves only through loopback.
const FALLBACK_NAMESERVERS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// systemd-resolved's stub listener, and where it keeps the servers it forwards to.
pub(crate) const RESOLVED_STUB: &str = "127.0.0.53";
pub(crate) const RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";

/// The parts of a resolv.conf the kubelet keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ResolvConf {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Reads `nameserver`, `search` (the last one wins) and `options` lines, as the kubelet's
    /// `parseResolvConf` does; comments and other directives are dropped.
    pub fn parse(text: &str) -> Self {
        let mut out = Self::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => out.nameservers.extend(fields.next().map(str::to_string)),
                Some("search") => {
                    out.searches = fields
                        .filter(|s| *s != ".")
                        .map(|s| s.trim_end_matches('.').to_string())
                        .collect()
                }
                Some("options") => out.options = merge_options(&out.options, fields),
                _ => {}
            }
        }
        out
    }

    /// The file containerd's CRI writes for these settings.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

/// Options by name (`ndots:5` is named `ndots`): a later one replaces an earlier one.
fn merge_options<'a>(base: &[String], more: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = base.to_vec();
    for opt in more {
        let name = opt.split(':').next().unwrap_or(opt);
        match out
            .iter_mut()
            .find(|o| o.split(':').next().unwrap_or(o) == name)
        {
            Some(existing) => *existing = opt.to_string(),
            None => out.push(opt.to_string()),
        }
    }
    out
}

fn omit_duplicates(items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(i.clone()))
        .collect()
}

/// The host's resolvers as a pod sees them.
pub(crate) struct Host {
    pub conf: ResolvConf,
    /// The host had nameservers, all on loopback (dropped: the pod cannot reach them).
    pub only_loopback: bool,
}

/// The host's resolver config as a pod sees it. `host` is `/etc/resolv.conf`, `upstream`
/// systemd-resolved's file (when it exists), taken as it is in place of the stub's, as Docker
/// takes it. In the host's network namespace everything is reachable and the file is used as
/// it is.
pub(crate) fn host_config(host: &str, upstream: Option<&str>, host_network: bool) -> Host {
    let mut conf = ResolvConf::parse(host);
    if host_network {
        return Host {
            conf,
            only_loopback: false,
        };
    }
    if let Some(upstream) = upstream {
        if conf.nameservers.iter().any(|ns| ns == RESOLVED_STUB) {
            conf = ResolvConf::parse(upstream);
        }
    }
    let had = !conf.nameservers.is_empty();
    conf.nameservers
        .retain(|ns| !ns.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()));
    Host {
        only_loopback: had && conf.nameservers.is_empty(),
        conf,
    }
}

/// Whether the pod's `dnsPolicy` asks for cluster DNS, which podctl has not: the kubelet then
/// falls back to `Default` with a `MissingClusterDNS` warning. (`ClusterFirst` on the host
/// network is `Default` for the kubelet, silently.)
pub fn missing_cluster_dns(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    match spec
        .and_then(|s| s.dns_policy.as_deref())
        .filter(|p| !p.is_empty())
        .unwrap_or("ClusterFirst")
    {
        "ClusterFirst" => !host_network,
        "ClusterFirstWithHostNet" => true,
        _ => false,
    }
}

/// Whether the pod's resolv.conf starts from nothing (`dnsPolicy: None`): the host's file is
/// then not read at all.
pub(crate) fn ignores_host(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.dns_policy.as_deref()) == Some("None")
}

/// The pod's resolver settings from its `dnsPolicy` and `dnsConfig` over `host` (see
/// [`host_config`]; unused for `dnsPolicy: None`). When nothing reachable is left, Docker's
/// public resolvers stand in for the host's loopback ones.
#[cfg(test)]
pub(crate) fn pod_config(pod: &Pod, host: Host) -> ResolvConf {
    formed(pod, host).0
}

/// [`pod_config`] and the kubelet's `DNSConfigForming` warnings: what had to be cut to fit
/// libc's limits.
pub(crate) fn formed(pod: &Pod, host: Host) -> (ResolvConf, Vec<String>) {
    let spec = pod.spec.as_ref();
    let (base, only_loopback) = if ignores_host(pod) {
        (ResolvConf::default(), false)
    } else {
        (host.conf, host.only_loopback)
    };
    let mut conf = match spec.and_then(|s| s.dns_config.as_ref()) {
        Some(extra) => append(base, extra),
        None => base,
    };
    if conf.nameservers.is_empty() && only_loopback {
        tracing::warn!(
            "the host resolves names only through loopback, which pods cannot reach: they get \
             {} (Docker's fallback)",
            FALLBACK_NAMESERVERS.join(", ")
        );
        conf.nameservers = FALLBACK_NAMESERVERS.iter().map(|s| s.to_string()).collect();
    }
    let warnings = fit_limits(&mut conf);
    (conf, warnings)
}

/// The kubelet's `appendDNSConfig`.
fn append(mut base: ResolvConf, extra: &PodDNSConfig) -> ResolvConf {
    base.nameservers
        .extend(extra.nameservers.iter().flatten().cloned());
    base.nameservers = omit_duplicates(base.nameservers);
    base.searches
        .extend(extra.searches.iter().flatten().cloned());
    base.searches = omit_duplicates(base.searches);
    let options: Vec<String> = extra
        .options
        .iter()
        .flatten()
        // An empty value is no value: `ndots`, not `ndots:`.
        .map(|o| match o.value.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => format!("{}:{v}", o.name.as_deref().unwrap_or_default()),
            None => o.name.clone().unwrap_or_default(),
        })
        .collect();
    base.options = merge_options(&base.options, options.iter().map(String::as_str));
    base
}

/// The kubelet's `formDNSNameserversFitsLimits` and `formDNSSearchFitsLimits`: extra
/// nameservers and search domains are dropped (validation already refuses them in
/// `dnsConfig`; the host's file may still have too many).
fn fit_limits(conf: &mut ResolvConf) -> Vec<String> {
    let mut warnings = Vec::new();
    if conf.nameservers.len() > MAX_NAMESERVERS {
        conf.nameservers.truncate(MAX_NAMESERVERS);
        warnings.push(format!(
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied \
             nameserver line is: {}",
            conf.nameservers.join(" ")
        ));
    }
    let searches = conf.searches.len();
    conf.searches.truncate(MAX_SEARCHES);
    // Some resolvers (glibc 2.28) abort on a search domain longer than a DNS name can be.
    conf.searches.retain(|s| s.len() <= 253);
    while conf.searches.join(" ").len() > MAX_SEARCH_CHARS {
        conf.searches.pop();
    }
    if conf.searches.len() < searches {
        warnings.push(format!(
            "Search Line limits were exceeded, some search paths have been omitted, the applied \
             search line is: {}",
            conf.searches.join(" ")
        ));
    }
    for w in &warnings {
        tracing::warn!("{w}");
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodDNSConfigOption, PodSpec};

    fn pod(policy: Option<&str>, host_network: bool, config: Option<PodDNSConfig>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                dns_policy: policy.map(str::to_string),
                host_network: Some(host_network),
                dns_config: config,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    const HOST: &str = "# generated\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch corp.example. lab.example\noptions ndots:2 rotate\ndomain ignored.example\n";

    #[test]
    fn the_host_file_is_parsed_as_the_kubelet_parses_it() {
        let c = ResolvConf::parse(HOST);
        assert_eq!(c.nameservers, ["10.0.0.2", "10.0.0.3"]);
        assert_eq!(c.searches, ["corp.example", "lab.example"]);
        assert_eq!(c.options, ["ndots:2", "rotate"]);
        assert_eq!(
            c.render(),
            "search corp.example lab.example\nnameserver 10.0.0.2\nnameserver 10.0.0.3\noptions ndots:2 rotate\n"
        );
    }

    #[test]
    fn loopback_resolvers_are_replaced_for_pods_but_not_on_the_host_network() {
        let stub = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch home.example\n";
        let upstream = "nameserver 192.168.1.1\nnameserver 127.0.0.1\nsearch lan\n";
        // resolved's own file is taken as it is (not the stub's options).
        let h = host_config(stub, Some(upstream), false);
        assert_eq!(h.conf.nameservers, ["192.168.1.1"]);
        assert_eq!(h.conf.searches, ["lan"]);
        assert!(h.conf.options.is_empty());
        assert!(!h.only_loopback);
        // Only loopback left: Docker's fallback, unless the pod brings its own nameservers.
        let only_lo = || host_config("nameserver 127.0.0.1\nnameserver ::1\n", None, false);
        assert!(only_lo().only_loopback);
        let plain = pod(Some("Default"), false, None);
        assert_eq!(
            pod_config(&plain, only_lo()).nameservers,
            FALLBACK_NAMESERVERS
        );
        let own = PodDNSConfig {
            nameservers: Some(vec!["10.9.9.9".into()]),
            ..Default::default()
        };
        let with_own = pod(Some("Default"), false, Some(own));
        assert_eq!(pod_config(&with_own, only_lo()).nameservers, ["10.9.9.9"]);
        // The host network reaches the stub.
        assert_eq!(
            host_config(stub, Some(upstream), true).conf.nameservers,
            ["127.0.0.53"]
        );
        // A host without any nameserver stays without.
        let empty = host_config("", None, false);
        assert!(empty.conf.nameservers.is_empty() && !empty.only_loopback);
    }

    #[test]
    fn policies_pick_the_base_and_cluster_first_falls_back_with_a_warning() {
        let host = || Host {
            conf: ResolvConf::parse(HOST),
            only_loopback: false,
        };
        assert!(missing_cluster_dns(&pod(None, false, None)));
        assert_eq!(
            pod_config(&pod(None, false, None), host()),
            ResolvConf::parse(HOST)
        );
        assert!(!missing_cluster_dns(&pod(Some("Default"), false, None)));
        assert!(
            !missing_cluster_dns(&pod(Some("ClusterFirst"), true, None)),
            "ClusterFirst on the host network is Default"
        );
        assert!(missing_cluster_dns(&pod(
            Some("ClusterFirstWithHostNet"),
            true,
            None
        )));
        let none = PodDNSConfig {
            nameservers: Some(vec!["1.1.1.1".into()]),
            ..Default::default()
        };
        let p = pod(Some("None"), false, Some(none));
        assert!(!missing_cluster_dns(&p));
        assert_eq!(pod_config(&p, host()).render(), "nameserver 1.1.1.1\n");
    }

    #[test]
    fn what_does_not_fit_is_cut_with_the_kubelets_warnings() {
        let host = Host {
            conf: ResolvConf::parse(
                "nameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nnameserver 10.0.0.4\nsearch a b\n",
            ),
            only_loopback: false,
        };
        let (conf, warnings) = formed(&pod(Some("Default"), false, None), host);
        assert_eq!(conf.nameservers.len(), 3);
        assert_eq!(
            warnings,
            ["Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 10.0.0.1 10.0.0.2 10.0.0.3"]
        );
        let many: Vec<String> = (0..40).map(|i| format!("d{i}.example")).collect();
        let host = Host {
            conf: ResolvConf::parse(&format!("nameserver 10.0.0.1\nsearch {}\n", many.join(" "))),
            only_loopback: false,
        };
        let (conf, warnings) = formed(&pod(Some("Default"), false, None), host);
        assert_eq!(conf.searches.len(), 32);
        assert!(warnings[0].starts_with("Search Line limits were exceeded, some search paths have been omitted, the applied search line is: d0.example d1.example"), "{warnings:?}");
        let (_, none) = formed(
            &pod(None, false, None),
            Host {
                conf: ResolvConf::parse("nameserver 1.1.1.1\n"),
                only_loopback: false,
            },
        );
        assert!(none.is_empty());
    }

    #[test]
    fn dns_config_is_appended_and_merged() {
        let extra = PodDNSConfig {
            nameservers: Some(vec![
                "10.0.0.3".into(),
                "10.0.0.9".into(),
                "10.0.0.10".into(),
            ]),
            searches: Some(vec!["svc.example".into(), "lab.example".into()]),
            options: Some(vec![
                PodDNSConfigOption {
                    name: Some("ndots".into()),
                    value: Some("5".into()),
                },
                PodDNSConfigOption {
                    name: Some("single-request".into()),
                    value: Some(String::new()),
                },
            ]),
        };
        let host = Host {
            conf: ResolvConf::parse(HOST),
            only_loopback: false,
        };
        let c = pod_config(&pod(Some("Default"), false, Some(extra)), host);
        // Duplicates omitted, then cut to libc's three nameservers.
        assert_eq!(c.nameservers, ["10.0.0.2", "10.0.0.3", "10.0.0.9"]);
        assert_eq!(c.searches, ["corp.example", "lab.example", "svc.example"]);
        assert_eq!(c.options, ["ndots:5", "rotate", "single-request"]);
    }
}
