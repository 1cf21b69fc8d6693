//! Kubernetes' own validation rules for the fields podctl accepts, worded as kubectl prints
//! them (`pkg/apis/core/validation/validation.go`, K8S-SEMANTICS §10), plus the few checks
//! podctl adds because a name or path becomes a host name, a file name or a mount.
//!
//! The API server validates a pod after filling in its defaults, so the rules here read an
//! absent (or, where the defaulting does so, zero or empty) value as its default: a probe's
//! `timeoutSeconds`, `periodSeconds`, `successThreshold` and `failureThreshold` of 0, an
//! `httpGet` without `path` (`/`) or `scheme` (`HTTP`), a pod without
//! `terminationGracePeriodSeconds` (30).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Display;
use std::path::{Component, Path};

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, ExecAction, GRPCAction, HTTPGetAction,
    HostPathVolumeSource, Lifecycle, LifecycleHandler, PodSecurityContext, PodSpec, Probe,
    ResourceRequirements, SeccompProfile, SecurityContext, SleepAction, Sysctl, TCPSocketAction,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::error::FieldError;
use super::quantity::{quantity_bytes, quantity_milli, QuantityError};
use super::sources;
use super::sysctls;
use super::Pod;
use crate::reference::ReferenceError;

const DNS1123_LABEL_FMT: &str = "a lowercase RFC 1123 label must consist of lower case \
    alphanumeric characters or '-', and must start and end with an alphanumeric character \
    (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_FMT: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
    alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character \
    (e.g. 'example.com', regex used for validation is \
    '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
/// apimachinery's `IsDNS1123SubdomainWithUnderscore`, which `dnsConfig.searches` use since
/// RelaxedDNSSearchValidation went GA (1.34).
const DNS1123_SUBDOMAIN_UNDERSCORE_FMT: &str = "a lowercase RFC 1123 subdomain must consist of \
    lower case alphanumeric characters, '_', '-' or '.', and must start and end with an \
    alphanumeric character (e.g. 'example.com', regex used for validation is \
    '_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?(\\._?[a-z0-9]([-_a-z0-9]*[a-z0-9])?)*')";
pub(super) const ENV_VAR_NAME_FMT: &str =
    "a valid environment variable name must consist of alphabetic \
    characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  \
    or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')";
const HTTP_HEADER_NAME_FMT: &str = "a valid HTTP header must consist of alphanumeric \
    characters or '-' (e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')";
const POD_NAME_LABEL: &str = "podctl requires the pod name to be an RFC 1123 label (at most \
    63 characters, lower case alphanumeric characters or '-', no '.') because it becomes the \
    pod's hostname and part of file names";

/// The smallest memory limit podctl accepts, its own rule (the API server has none): runc's
/// init process is charged to the container's memory cgroup before the container's process
/// starts (about 2 MiB with runc 1.1), and below that runc fails the container with
/// `unable to set memory limit`; Docker refuses less than 6 MB for the same reason.
const MIN_MEMORY_LIMIT: u64 = 6 << 20;

/// `spec.terminationGracePeriodSeconds` when absent (`v1.DefaultTerminationGracePeriodSeconds`).
const DEFAULT_GRACE_PERIOD_SECONDS: i64 = 30;

/// Kubernetes' values for `spec.volumes[*].hostPath.type`, sorted as the API server lists them.
const HOST_PATH_TYPES: &[&str] = &[
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
];

/// Every rule violation of `pod`, in the order metadata, volumes, init containers,
/// containers, then the remaining pod-level fields.
pub(super) fn rules(pod: &Pod) -> Vec<FieldError> {
    let mut v = Errors::default();
    metadata(&mut v, pod);
    match &pod.spec {
        Some(spec) => pod_spec(&mut v, spec),
        None => v.push("spec.containers", "Required value"),
    }
    v.0
}

#[derive(Default)]
pub(super) struct Errors(Vec<FieldError>);

impl Errors {
    pub(super) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(path, message));
    }

    pub(super) fn invalid(&mut self, path: impl Into<String>, value: &str, detail: &str) {
        self.push(path, format!("Invalid value: {value:?}: {detail}"));
    }

    /// `Invalid value` of a number, which kubectl prints unquoted.
    pub(super) fn invalid_number(
        &mut self,
        path: impl Into<String>,
        value: impl Display,
        detail: &str,
    ) {
        self.push(path, format!("Invalid value: {value}: {detail}"));
    }

    pub(super) fn unsupported(&mut self, path: impl Into<String>, value: &str, supported: &[&str]) {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        self.push(
            path,
            format!(
                "Unsupported value: {value:?}: supported values: {}",
                list.join(", ")
            ),
        );
    }

    pub(super) fn into_errors(self) -> Vec<FieldError> {
        self.0
    }

    /// An object's `metadata.name`: required, an RFC 1123 subdomain.
    pub(super) fn object_name(&mut self, meta: &ObjectMeta) {
        match meta.name.as_deref() {
            None | Some("") => self.push(
                "metadata.name",
                "Required value: name or generateName is required",
            ),
            Some(name) => dns_subdomain(self, "metadata.name", name),
        }
    }

    /// `Required value` when empty, otherwise each way `name` is not an RFC 1123 label.
    fn dns_label(&mut self, path: &str, name: &str) {
        if name.is_empty() {
            self.push(path, "Required value");
            return;
        }
        for msg in dns1123_label(name) {
            self.invalid(path, name, msg);
        }
    }

    /// A value from a fixed set; absent or `""` means the default, which the API server
    /// fills in before validating.
    pub(super) fn one_of(&mut self, path: &str, value: Option<&str>, supported: &[&str]) {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            if !supported.contains(&value) {
                self.unsupported(path, value, supported);
            }
        }
    }
}

fn metadata(v: &mut Errors, pod: &Pod) {
    match pod.metadata.name.as_deref() {
        None | Some("") => v.push("metadata.name", "Required value"),
        Some(name) => {
            let problems = dns1123_subdomain(name);
            if problems.is_empty() {
                if !dns1123_label(name).is_empty() {
                    v.invalid("metadata.name", name, POD_NAME_LABEL);
                }
            } else {
                for msg in problems {
                    v.invalid("metadata.name", name, msg);
                }
            }
        }
    }
    if let Some(ns) = pod.metadata.namespace.as_deref() {
        if !ns.is_empty() {
            for msg in dns1123_label(ns) {
                v.invalid("metadata.namespace", ns, msg);
            }
        }
    }
}

fn pod_spec(v: &mut Errors, spec: &PodSpec) {
    let all_containers: HashSet<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .map(|c| c.name.as_str())
        .collect();
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    let mut volume_names = HashSet::new();
    for (i, vol) in volumes.iter().enumerate() {
        volume(v, &format!("spec.volumes[{i}]"), vol, &all_containers);
        if !vol.name.is_empty() && !volume_names.insert(vol.name.as_str()) {
            v.push(
                format!("spec.volumes[{i}].name"),
                format!("Duplicate value: {:?}", vol.name),
            );
        }
    }

    // A sleep action must fit in the grace period. A negative one is reported on its own
    // field (Kubernetes reads it as 1 s); measuring the sleep against it would only repeat that.
    let grace = match spec.termination_grace_period_seconds {
        None => Some(DEFAULT_GRACE_PERIOD_SECONDS),
        Some(secs) if secs >= 0 => Some(secs),
        Some(_) => None,
    };

    // As `validateInitContainers` does, an init container's name is checked against every
    // regular container too, so a clash between the two kinds is reported on the init one.
    let mut init_names: HashSet<&str> = spec
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| !n.is_empty())
        .collect();
    let init = spec.init_containers.as_deref().unwrap_or_default();
    for (i, c) in init.iter().enumerate() {
        let path = format!("spec.initContainers[{i}]");
        container(v, &path, c, &volume_names, &all_containers);
        init_container(v, &path, c, grace);
        unique_name(v, &path, c, &mut init_names);
    }
    host_ports(v, spec);
    let mut container_names = HashSet::new();
    if spec.containers.is_empty() {
        v.push("spec.containers", "Required value");
    }
    for (i, c) in spec.containers.iter().enumerate() {
        let path = format!("spec.containers[{i}]");
        container(v, &path, c, &volume_names, &all_containers);
        hooks_and_probes(v, &path, c, grace);
        if c.restart_policy.is_some() {
            v.push(
                format!("{path}.restartPolicy"),
                "Forbidden: may not be set for non-init containers",
            );
        }
        unique_name(v, &path, c, &mut container_names);
    }

    v.one_of(
        "spec.restartPolicy",
        spec.restart_policy.as_deref(),
        &["Always", "OnFailure", "Never"],
    );
    v.one_of(
        "spec.dnsPolicy",
        spec.dns_policy.as_deref(),
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
    );
    dns(v, spec);
    if let Some(sc) = &spec.security_context {
        pod_security(v, spec, sc);
    }
    for (i, alias) in spec.host_aliases.iter().flatten().enumerate() {
        let path = format!("spec.hostAliases[{i}]");
        valid_ip(v, &format!("{path}.ip"), &alias.ip);
        for (j, name) in alias.hostnames.iter().flatten().enumerate() {
            dns_subdomain(v, &format!("{path}.hostnames[{j}]"), name);
        }
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(value) = value.as_deref().filter(|h| !h.is_empty()) {
            for msg in dns1123_label(value) {
                v.invalid(format!("spec.{field}"), value, msg);
            }
        }
    }
    if let Some(secs) = spec.active_deadline_seconds {
        if !(1..=i64::from(i32::MAX)).contains(&secs) {
            v.invalid_number(
                "spec.activeDeadlineSeconds",
                secs,
                &format!("must be between 1 and {}, inclusive", i32::MAX),
            );
        }
    }
    if let Some(secs) = spec.termination_grace_period_seconds {
        if secs < 0 {
            v.push(
                "spec.terminationGracePeriodSeconds",
                format!("Invalid value: {secs}: must be greater than or equal to 0"),
            );
        }
    }
}

/// `validatePodDNSConfig`, with the limits of expanded DNS configuration (GA in 1.28).
fn dns(v: &mut Errors, spec: &PodSpec) {
    let config = spec.dns_config.as_ref();
    if spec.dns_policy.as_deref() == Some("None") {
        match config {
            None => {
                v.push(
                    "spec.dnsConfig",
                    "Required value: must provide `dnsConfig` when `dnsPolicy` is None",
                );
                return;
            }
            Some(c) if c.nameservers.as_deref().unwrap_or_default().is_empty() => {
                v.push(
                    "spec.dnsConfig.nameservers",
                    "Required value: must provide at least one DNS nameserver when `dnsPolicy` is None",
                );
                return;
            }
            Some(_) => {}
        }
    }
    let Some(config) = config else { return };
    let nameservers = config.nameservers.as_deref().unwrap_or_default();
    if nameservers.len() > 3 {
        v.push(
            "spec.dnsConfig.nameservers",
            format!(
                "Invalid value: {}: must not have more than 3 nameservers",
                go_strings(nameservers)
            ),
        );
    }
    for (i, ns) in nameservers.iter().enumerate() {
        valid_ip(v, &format!("spec.dnsConfig.nameservers[{i}]"), ns);
    }
    let searches = config.searches.as_deref().unwrap_or_default();
    if searches.len() > 32 {
        v.push(
            "spec.dnsConfig.searches",
            format!(
                "Invalid value: {}: must not have more than 32 search paths",
                go_strings(searches)
            ),
        );
    }
    if searches.join(" ").len() > 2048 {
        v.push(
            "spec.dnsConfig.searches",
            format!(
                "Invalid value: {}: must not have more than 2048 characters (including spaces) in the search list",
                go_strings(searches)
            ),
        );
    }
    for (i, search) in searches.iter().enumerate() {
        // The root domain is fine, and so is a trailing dot.
        if search == "." {
            continue;
        }
        let search = search.strip_suffix('.').unwrap_or(search);
        let path = format!("spec.dnsConfig.searches[{i}]");
        if search.len() > 253 {
            v.invalid(&path, search, "must be no more than 253 characters");
        }
        let label = |l: &str| is_label(l.strip_prefix('_').unwrap_or(l).replace('_', "-").as_str());
        if !search.split('.').all(label) {
            v.invalid(&path, search, DNS1123_SUBDOMAIN_UNDERSCORE_FMT);
        }
    }
    for (i, option) in config.options.iter().flatten().enumerate() {
        if option.name.as_deref().unwrap_or_default().is_empty() {
            v.push(
                format!("spec.dnsConfig.options[{i}]"),
                "Required value: must not be empty",
            );
        }
    }
}

/// apimachinery's `IsValidUserID` / `IsValidGroupID`.
fn id_in_range(v: &mut Errors, path: &str, id: Option<i64>) {
    if let Some(id) = id.filter(|id| !(0..=i64::from(i32::MAX)).contains(id)) {
        v.invalid_number(
            path,
            id,
            &format!("must be between 0 and {}, inclusive", i32::MAX),
        );
    }
}

/// The pod's security context (`validatePodSecurityContext`): ids, `fsGroupChangePolicy`,
/// `seccompProfile`, and the sysctls, which the kubelet then admits only from its safe set.
fn pod_security(v: &mut Errors, spec: &PodSpec, sc: &PodSecurityContext) {
    let path = "spec.securityContext";
    id_in_range(v, &format!("{path}.fsGroup"), sc.fs_group);
    id_in_range(v, &format!("{path}.runAsUser"), sc.run_as_user);
    id_in_range(v, &format!("{path}.runAsGroup"), sc.run_as_group);
    for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
        id_in_range(v, &format!("{path}.supplementalGroups[{i}]"), Some(*g));
    }
    pod_sysctls(v, spec, sc.sysctls.as_deref().unwrap_or_default());
    if let Some(policy) = sc.fs_group_change_policy.as_deref() {
        if !["Always", "OnRootMismatch"].contains(&policy) {
            v.unsupported(
                format!("{path}.fsGroupChangePolicy"),
                policy,
                &["Always", "OnRootMismatch"],
            );
        }
    }
    seccomp_profile(
        v,
        &format!("{path}.seccompProfile"),
        sc.seccomp_profile.as_ref(),
    );
}

/// `validateSysctls` and `ValidateHostSysctl` of the API server, then the kubelet's
/// admission (`SysctlForbidden`): only its safe sysctls, on a kernel that namespaces them.
fn pod_sysctls(v: &mut Errors, spec: &PodSpec, list: &[Sysctl]) {
    if list.is_empty() {
        return;
    }
    let safe = sysctls::safe_set(crate::seccomp::kernel_version());
    let mut seen = HashSet::new();
    for (i, s) in list.iter().enumerate() {
        let path = format!("spec.securityContext.sysctls[{i}]");
        let name_path = format!("{path}.name");
        if s.name.is_empty() {
            v.push(name_path, "Required value");
            continue;
        }
        if !sysctls::is_valid_name(&s.name) {
            v.invalid(
                name_path,
                &s.name,
                &format!(
                    "must have at most {} characters and match regex {}",
                    sysctls::MAX_LENGTH,
                    sysctls::NAME_FMT
                ),
            );
            continue;
        }
        if !seen.insert(s.name.as_str()) {
            v.push(name_path, format!("Duplicate value: {:?}", s.name));
            continue;
        }
        let dotted = sysctls::with_dots(&s.name);
        let host = match sysctls::namespace(&dotted) {
            Some(sysctls::Namespace::Net) if spec.host_network == Some(true) => Some("hostNetwork"),
            Some(sysctls::Namespace::Ipc) if spec.host_ipc == Some(true) => Some("hostIPC"),
            _ => None,
        };
        if let Some(host) = host {
            v.invalid(
                name_path,
                &s.name,
                &format!("may not be specified when '{host}' is true"),
            );
        } else if !safe.contains(&dotted.as_str()) {
            v.push(
                path,
                format!(
                    "Forbidden: forbidden sysctl: {dotted:?} not allowlisted: the kubelet \
                     admits only its safe sysctls ({})",
                    safe.join(", ")
                ),
            );
        }
    }
}

/// `validateSeccompProfileField`: a known type; `localhostProfile` for `Localhost` only, a
/// relative path without `..`.
fn seccomp_profile(v: &mut Errors, path: &str, sp: Option<&SeccompProfile>) {
    let Some(sp) = sp else { return };
    let types = ["Localhost", "RuntimeDefault", "Unconfined"];
    match sp.type_.as_str() {
        "" => v.push(
            format!("{path}.type"),
            "Required value: type is required when seccompProfile is set",
        ),
        t if !types.contains(&t) => v.unsupported(format!("{path}.type"), t, &types),
        _ => {}
    }
    let local = format!("{path}.localhostProfile");
    match (sp.type_.as_str(), sp.localhost_profile.as_deref()) {
        ("Localhost", None) => v.push(
            local,
            "Required value: must be set when seccomp type is Localhost",
        ),
        ("Localhost", Some(p)) => local_descending_path(v, &local, p),
        (_, Some(p)) => v.invalid(local, p, "can only be set when seccomp type is Localhost"),
        (_, None) => {}
    }
}

/// A container's security context: ids, `procMount`, `seccompProfile`, the no_new_privs
/// conflicts the API server refuses, and capability names (which Kubernetes leaves to the
/// runtime to refuse, after the pod exists; podctl refuses them before).
fn container_security(v: &mut Errors, path: &str, sc: &SecurityContext) {
    id_in_range(v, &format!("{path}.runAsUser"), sc.run_as_user);
    id_in_range(v, &format!("{path}.runAsGroup"), sc.run_as_group);
    if let Some(pm) = sc.proc_mount.as_deref() {
        // `Unmasked` also needs `hostUsers: false`, which podctl refuses: `unsupported`
        // says so on this field whatever hostUsers is.
        if !["Default", "Unmasked"].contains(&pm) {
            v.unsupported(format!("{path}.procMount"), pm, &["Default", "Unmasked"]);
        }
    }
    seccomp_profile(
        v,
        &format!("{path}.seccompProfile"),
        sc.seccomp_profile.as_ref(),
    );
    let caps = sc.capabilities.as_ref();
    for (field, list) in [
        ("add", caps.and_then(|c| c.add.as_deref())),
        ("drop", caps.and_then(|c| c.drop.as_deref())),
    ] {
        for (i, cap) in list.unwrap_or_default().iter().enumerate() {
            let upper = cap.to_ascii_uppercase();
            let name = upper.strip_prefix("CAP_").unwrap_or(&upper);
            if name != "ALL" && name.parse::<oci_spec::runtime::Capability>().is_err() {
                v.invalid(
                    format!("{path}.capabilities.{field}[{i}]"),
                    cap,
                    "not a Linux capability (e.g. NET_ADMIN or CAP_NET_ADMIN, or ALL)",
                );
            }
        }
    }
    if sc.allow_privilege_escalation == Some(false) {
        if sc.privileged == Some(true) {
            v.push(
                path,
                "Invalid value: cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            );
        }
        let sys_admin = caps
            .and_then(|c| c.add.as_deref())
            .unwrap_or_default()
            .iter()
            .any(|c| c == "CAP_SYS_ADMIN" || c == "SYS_ADMIN");
        if sys_admin {
            v.push(
                path,
                "Invalid value: cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            );
        }
    }
}

/// `ValidateResourceRequirements` for a container: standard resource names, quantities that
/// parse and are not negative, each request within its limit (equal to it for the resources
/// that cannot be overcommitted: huge pages and extended resources); then podctl's minimum
/// memory limit. Which names podctl honours is `unsupported`'s business.
fn resources(v: &mut Errors, path: &str, r: &ResourceRequirements) {
    let none = BTreeMap::new();
    let limits = r.limits.as_ref().unwrap_or(&none);
    let requests = r.requests.as_ref().unwrap_or(&none);
    for (name, q) in limits {
        let p = format!("{path}.limits[{name}]");
        resource_name(v, &p, name);
        resource_quantity(v, &p, name, q);
    }
    for (name, request) in requests {
        let p = format!("{path}.requests[{name}]");
        resource_name(v, &p, name);
        resource_quantity(v, &p, name, request);
        let Some(limit) = limits.get(name) else {
            if !overcommit_allowed(name) {
                v.push(
                    format!("{path}.limits"),
                    "Required value: Limit must be set for non overcommitable resources",
                );
            }
            continue;
        };
        let detail = match compare_quantities(request, limit) {
            Some(Ordering::Equal) | None => continue,
            Some(_) if !overcommit_allowed(name) => "must be equal to",
            Some(Ordering::Greater) => "must be less than or equal to",
            Some(Ordering::Less) => continue,
        };
        v.invalid(
            format!("{path}.requests"),
            &request.0,
            &format!("{detail} {name} limit of {}", limit.0),
        );
    }
    if let Some(limit) = limits.get("memory") {
        if quantity_bytes(limit).is_ok_and(|b| b != 0 && b < MIN_MEMORY_LIMIT) {
            v.invalid(
                format!("{path}.limits[memory]"),
                &limit.0,
                "must be at least 6Mi: podctl's minimum, since runc's own init process is \
                 charged to the container's memory cgroup before the container starts",
            );
        }
    }
}

/// `validateContainerResourceName`: a name without a domain must be a standard resource
/// for containers; one with a domain is an extended resource (device plugins).
fn resource_name(v: &mut Errors, path: &str, name: &str) {
    let standard =
        matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-");
    if !name.contains('/') && !standard {
        v.invalid(path, name, "must be a standard resource for containers");
    }
}

/// Huge pages and extended resources cannot be overcommitted (`IsOvercommitAllowed`).
fn overcommit_allowed(name: &str) -> bool {
    !name.starts_with("hugepages-") && !name.contains('/')
}

/// `ValidateResourceQuantityValue`: a quantity, not negative; and one podctl can write
/// into a cgroup file.
fn resource_quantity(v: &mut Errors, path: &str, name: &str, q: &Quantity) {
    let parsed = if name == "cpu" {
        quantity_milli(q)
    } else {
        quantity_bytes(q)
    };
    let detail = match parsed {
        Ok(n) if n <= i64::MAX as u64 => return,
        Ok(_) | Err(QuantityError::TooLarge) if name == "cpu" => {
            format!("must be at most {}m", i64::MAX)
        }
        Ok(_) | Err(QuantityError::TooLarge) => "must be less than 8Ei".to_owned(),
        Err(e) => e.to_string(),
    };
    v.invalid(path, &q.0, &detail);
}

/// Two quantities in order (at milli precision, else whole units for huge ones); `None`
/// when either does not parse (already reported).
fn compare_quantities(a: &Quantity, b: &Quantity) -> Option<Ordering> {
    match (quantity_milli(a), quantity_milli(b)) {
        (Ok(a), Ok(b)) => Some(a.cmp(&b)),
        _ => Some(quantity_bytes(a).ok()?.cmp(&quantity_bytes(b).ok()?)),
    }
}

/// apimachinery's `IsValidIP`.
fn valid_ip(v: &mut Errors, path: &str, ip: &str) {
    if ip.parse::<std::net::IpAddr>().is_err() {
        v.invalid(
            path,
            ip,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        );
    }
}

/// `ValidateDNS1123Subdomain`.
fn dns_subdomain(v: &mut Errors, path: &str, name: &str) {
    for msg in dns1123_subdomain(name) {
        v.invalid(path, name, msg);
    }
}

/// A string list as Go's `%#v` prints it in kubectl's messages.
fn go_strings(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

fn unique_name<'a>(v: &mut Errors, path: &str, c: &'a Container, seen: &mut HashSet<&'a str>) {
    if !c.name.is_empty() && !seen.insert(c.name.as_str()) {
        v.push(
            format!("{path}.name"),
            format!("Duplicate value: {:?}", c.name),
        );
    }
}

/// Rules shared by init and regular containers.
fn container(
    v: &mut Errors,
    path: &str,
    c: &Container,
    volumes: &HashSet<&str>,
    containers: &HashSet<&str>,
) {
    v.dns_label(&format!("{path}.name"), &c.name);
    if let Some(sc) = &c.security_context {
        container_security(v, &format!("{path}.securityContext"), sc);
    }
    if let Some(r) = &c.resources {
        resources(v, &format!("{path}.resources"), r);
    }

    let image = c.image.as_deref().unwrap_or_default();
    if image.trim().is_empty() {
        v.push(format!("{path}.image"), "Required value");
    } else if image.trim() != image {
        v.invalid(
            format!("{path}.image"),
            image,
            "must not have leading or trailing whitespace",
        );
    } else if let Err(e) = crate::reference::normalize(image) {
        // `podctl run` would refuse it when pulling or looking the image up: say it now.
        v.invalid(format!("{path}.image"), image, &reference_reason(image, &e));
    }

    v.one_of(
        &format!("{path}.imagePullPolicy"),
        c.image_pull_policy.as_deref(),
        &["Always", "IfNotPresent", "Never"],
    );
    v.one_of(
        &format!("{path}.terminationMessagePolicy"),
        c.termination_message_policy.as_deref(),
        &["File", "FallbackToLogsOnError"],
    );

    for (i, env) in c.env.iter().flatten().enumerate() {
        let name_path = format!("{path}.env[{i}].name");
        if env.name.is_empty() {
            v.push(name_path, "Required value");
        } else if !is_env_var_name(&env.name) {
            v.invalid(name_path, &env.name, ENV_VAR_NAME_FMT);
        }
        if let Some(from) = &env.value_from {
            sources::env_value_from(
                v,
                &format!("{path}.env[{i}].valueFrom"),
                env.value.as_deref(),
                from,
                containers,
            );
        }
    }
    if let Some(list) = &c.env_from {
        sources::env_from(v, &format!("{path}.envFrom"), list);
    }

    let mut port_names = HashSet::new();
    for (i, port) in c.ports.iter().flatten().enumerate() {
        container_port(v, &format!("{path}.ports[{i}]"), port, &mut port_names);
    }

    let mut mount_paths = HashSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        volume_mount(
            v,
            &format!("{path}.volumeMounts[{i}]"),
            m,
            volumes,
            &mut mount_paths,
        );
    }
}

/// The reason of a [`ReferenceError`] without its `invalid image reference "<ref>": ` lead,
/// which the field error already says as `Invalid value: "<ref>": `.
fn reference_reason(image: &str, e: &ReferenceError) -> String {
    let text = e.to_string();
    let lead = format!("invalid image reference {image:?}: ");
    match text.strip_prefix(&lead) {
        Some(reason) => reason.to_owned(),
        None => text,
    }
}

/// Init containers run to completion: hooks and probes only make sense for sidecars
/// (`restartPolicy: Always`), where they are validated as for regular containers.
fn init_container(v: &mut Errors, path: &str, c: &Container, grace: Option<i64>) {
    match c.restart_policy.as_deref() {
        Some("Always") => {
            hooks_and_probes(v, path, c, grace);
            return;
        }
        Some(other) => v.unsupported(format!("{path}.restartPolicy"), other, &["Always"]),
        None => {}
    }
    let set = [
        ("lifecycle", c.lifecycle.is_some()),
        ("livenessProbe", c.liveness_probe.is_some()),
        ("readinessProbe", c.readiness_probe.is_some()),
        ("startupProbe", c.startup_probe.is_some()),
    ];
    for (field, is_set) in set {
        if is_set {
            v.push(
                format!("{path}.{field}"),
                "Forbidden: may not be set for init containers without restartPolicy=Always",
            );
        }
    }
}

/// `lifecycle` and the three probes of a regular container or a sidecar; `grace` bounds a
/// sleep action (`None`: the pod's grace period is itself invalid).
fn hooks_and_probes(v: &mut Errors, path: &str, c: &Container, grace: Option<i64>) {
    if let Some(l) = &c.lifecycle {
        lifecycle(v, &format!("{path}.lifecycle"), l, grace);
    }
    let probes = [
        ("livenessProbe", &c.liveness_probe, ProbeKind::Liveness),
        ("readinessProbe", &c.readiness_probe, ProbeKind::Readiness),
        ("startupProbe", &c.startup_probe, ProbeKind::Startup),
    ];
    for (field, p, kind) in probes {
        if let Some(p) = p {
            probe(v, &format!("{path}.{field}"), p, kind);
        }
    }
}

#[derive(Clone, Copy)]
enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

/// `validateProbe` plus the rule of its kind (`validateLivenessProbe` ...).
fn probe(v: &mut Errors, path: &str, p: &Probe, kind: ProbeKind) {
    let actions = [
        ("exec", p.exec.as_ref().map(Action::Exec)),
        ("httpGet", p.http_get.as_ref().map(Action::HttpGet)),
        ("tcpSocket", p.tcp_socket.as_ref().map(Action::TcpSocket)),
        ("grpc", p.grpc.as_ref().map(Action::Grpc)),
    ];
    handler(v, path, actions, None);

    // Zero means the default (1, 10, 1 and 3) for all but initialDelaySeconds, whose default
    // is 0; either way only a negative value is left to refuse.
    let counts = [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ];
    for (field, value) in counts {
        if let Some(n) = value.filter(|n| *n < 0) {
            v.invalid_number(
                format!("{path}.{field}"),
                n,
                "must be greater than or equal to 0",
            );
        }
    }
    let grace_path = format!("{path}.terminationGracePeriodSeconds");
    if let Some(secs) = p.termination_grace_period_seconds.filter(|s| *s <= 0) {
        v.invalid_number(&grace_path, secs, "must be greater than 0");
    }
    match kind {
        ProbeKind::Liveness | ProbeKind::Startup => {
            let success = p.success_threshold.filter(|n| *n != 0).unwrap_or(1);
            if success != 1 {
                v.invalid_number(format!("{path}.successThreshold"), success, "must be 1");
            }
        }
        ProbeKind::Readiness => {
            if let Some(secs) = p.termination_grace_period_seconds {
                v.invalid_number(grace_path, secs, "must not be set for readinessProbes");
            }
        }
    }
}

/// `validateLifecycle`: each hook present needs exactly one handler.
fn lifecycle(v: &mut Errors, path: &str, l: &Lifecycle, grace: Option<i64>) {
    let hooks = [("postStart", &l.post_start), ("preStop", &l.pre_stop)];
    for (field, hook) in hooks {
        if let Some(LifecycleHandler {
            exec,
            http_get,
            sleep,
            tcp_socket,
        }) = hook
        {
            // `tcpSocket` is kept by the API for compatibility and validated like the others,
            // although the kubelet never runs it.
            let actions = [
                ("exec", exec.as_ref().map(Action::Exec)),
                ("httpGet", http_get.as_ref().map(Action::HttpGet)),
                ("tcpSocket", tcp_socket.as_ref().map(Action::TcpSocket)),
                ("sleep", sleep.as_ref().map(Action::Sleep)),
            ];
            handler(v, &format!("{path}.{field}"), actions, grace);
        }
    }
}

/// One handler of a probe or a hook.
#[derive(Clone, Copy)]
enum Action<'a> {
    Exec(&'a ExecAction),
    HttpGet(&'a HTTPGetAction),
    TcpSocket(&'a TCPSocketAction),
    Grpc(&'a GRPCAction),
    Sleep(&'a SleepAction),
}

/// `validateHandler`: the first handler set (in validation.go's order, which `actions`
/// follows) is validated, every further one is forbidden, none at all is required.
fn handler<const N: usize>(
    v: &mut Errors,
    path: &str,
    actions: [(&str, Option<Action<'_>>); N],
    grace: Option<i64>,
) {
    let mut set = actions
        .into_iter()
        .filter_map(|(field, action)| Some((field, action?)));
    match set.next() {
        None => v.push(path, "Required value: must specify a handler type"),
        Some((field, action)) => action_rules(v, &format!("{path}.{field}"), action, grace),
    }
    for (field, _) in set {
        v.push(
            format!("{path}.{field}"),
            "Forbidden: may not specify more than 1 handler type",
        );
    }
}

fn action_rules(v: &mut Errors, path: &str, action: Action<'_>, grace: Option<i64>) {
    match action {
        Action::Exec(e) => {
            if e.command.as_deref().unwrap_or_default().is_empty() {
                v.push(format!("{path}.command"), "Required value");
            }
        }
        Action::HttpGet(h) => {
            // An empty path is defaulted to "/" first, so `path: Required value` never fires.
            port_num_or_name(v, &format!("{path}.port"), &h.port);
            v.one_of(
                &format!("{path}.scheme"),
                h.scheme.as_deref(),
                &["HTTP", "HTTPS"],
            );
            for header in h.http_headers.iter().flatten() {
                if !is_http_header_name(&header.name) {
                    v.invalid(
                        format!("{path}.httpHeaders"),
                        &header.name,
                        HTTP_HEADER_NAME_FMT,
                    );
                }
            }
        }
        Action::TcpSocket(t) => port_num_or_name(v, &format!("{path}.port"), &t.port),
        Action::Grpc(g) => port_num_or_name(v, &format!("{path}.port"), &IntOrString::Int(g.port)),
        Action::Sleep(s) => {
            if let Some(grace) = grace {
                if s.seconds < 0 || s.seconds > grace {
                    v.invalid_number(
                        path,
                        s.seconds,
                        &format!(
                            "must be non-negative and less than terminationGracePeriodSeconds \
                             ({grace})"
                        ),
                    );
                }
            }
        }
    }
}

/// `ValidatePortNumOrName`: a number in 1-65535 or an IANA service name. A name is not
/// looked up among the container's ports here, as the API server does not either.
fn port_num_or_name(v: &mut Errors, path: &str, port: &IntOrString) {
    match port {
        IntOrString::Int(n) => {
            if !(1..=65535).contains(n) {
                v.invalid_number(path, n, "must be between 1 and 65535, inclusive");
            }
        }
        IntOrString::String(name) => {
            for msg in port_name(name) {
                v.invalid(path, name, msg);
            }
        }
    }
}

fn container_port<'a>(
    v: &mut Errors,
    path: &str,
    port: &'a ContainerPort,
    names: &mut HashSet<&'a str>,
) {
    if port.container_port == 0 {
        v.push(format!("{path}.containerPort"), "Required value");
    } else if !(1..=65535).contains(&port.container_port) {
        v.push(
            format!("{path}.containerPort"),
            format!(
                "Invalid value: {}: must be between 1 and 65535, inclusive",
                port.container_port
            ),
        );
    }
    if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
        for msg in port_name(name) {
            v.invalid(format!("{path}.name"), name, msg);
        }
        if !names.insert(name) {
            v.push(format!("{path}.name"), format!("Duplicate value: {name:?}"));
        }
    }
    v.one_of(
        &format!("{path}.protocol"),
        port.protocol.as_deref(),
        &["SCTP", "TCP", "UDP"],
    );
}

/// Each port of the pod's containers that binds a port of the host: its list
/// (`spec.containers`), path (`spec.containers[0].ports[1]`) and host port, the `hostPort`
/// or, with `hostNetwork`, the `containerPort` (the default the API server fills in).
pub(super) fn host_bound_ports(
    spec: &PodSpec,
) -> impl Iterator<Item = (&'static str, String, &ContainerPort, i32)> {
    let host_network = spec.host_network.unwrap_or(false);
    let lists = [
        (
            "spec.initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
        ),
        ("spec.containers", spec.containers.as_slice()),
    ];
    lists.into_iter().flat_map(move |(list, containers)| {
        containers.iter().enumerate().flat_map(move |(ci, c)| {
            c.ports
                .iter()
                .flatten()
                .enumerate()
                .filter_map(move |(pi, p)| {
                    let mut host_port = p.host_port.unwrap_or(0);
                    if host_network && host_port == 0 {
                        host_port = p.container_port;
                    }
                    (host_port != 0)
                        .then(|| (list, format!("{list}[{ci}].ports[{pi}]"), p, host_port))
                })
        })
    })
}

/// hostPorts as the API server checks them: in range; with `hostNetwork`, equal to the
/// containerPort (the default it fills in); unique per protocol, hostIP and port within each
/// list of containers (`AccumulateUniqueHostPorts`). podctl also wants a hostIP it can bind.
fn host_ports(v: &mut Errors, spec: &PodSpec) {
    let host_network = spec.host_network.unwrap_or(false);
    let mut seen = HashSet::new();
    let mut list_seen = "";
    for (list, path, p, host_port) in host_bound_ports(spec) {
        if list != list_seen {
            // Unique within each list of containers.
            seen.clear();
            list_seen = list;
        }
        if !(1..=65535).contains(&host_port) {
            v.invalid_number(
                format!("{path}.hostPort"),
                host_port,
                "must be between 1 and 65535, inclusive",
            );
        } else if host_network && host_port != p.container_port {
            v.invalid_number(
                format!("{path}.hostPort"),
                host_port,
                "must match `containerPort` when `hostNetwork` is true",
            );
        }
        let host_ip = p.host_ip.as_deref().unwrap_or_default();
        if !host_ip.is_empty() && host_ip.parse::<std::net::IpAddr>().is_err() {
            v.invalid(
                format!("{path}.hostIP"),
                host_ip,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            );
        }
        let protocol = p
            .protocol
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or("TCP");
        let key = format!("{protocol}/{host_ip}/{host_port}");
        if !seen.insert(key.clone()) {
            v.push(
                format!("{path}.hostPort"),
                format!("Duplicate value: {key:?}"),
            );
        }
    }
}

fn volume_mount<'a>(
    v: &mut Errors,
    path: &str,
    m: &'a VolumeMount,
    volumes: &HashSet<&str>,
    mount_paths: &mut HashSet<&'a str>,
) {
    if m.name.is_empty() {
        v.push(format!("{path}.name"), "Required value");
    } else if !volumes.contains(m.name.as_str()) {
        v.push(format!("{path}.name"), format!("Not found: {:?}", m.name));
    }

    let mount_path = format!("{path}.mountPath");
    if m.mount_path.is_empty() {
        v.push(mount_path, "Required value");
    } else {
        if !mount_paths.insert(m.mount_path.as_str()) {
            v.invalid(&mount_path, &m.mount_path, "must be unique");
        } else if !m.mount_path.starts_with('/') {
            // The API leaves this to the runtime; podctl mounts into the rootfs, so say it now.
            v.invalid(&mount_path, &m.mount_path, "must be an absolute path");
        }
    }

    if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
        local_descending_path(v, &format!("{path}.subPath"), sub);
    }
}

/// kubelet's `validateLocalDescendingPath`: stays inside the volume.
pub(super) fn local_descending_path(v: &mut Errors, path: &str, p: &str) {
    if p.starts_with('/') {
        v.invalid(path, p, "must be a relative path");
    }
    if has_backsteps(p) {
        v.invalid(path, p, "must not contain '..'");
    }
}

fn has_backsteps(p: &str) -> bool {
    Path::new(p)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
}

fn volume(v: &mut Errors, path: &str, vol: &Volume, containers: &HashSet<&str>) {
    v.dns_label(&format!("{path}.name"), &vol.name);
    sources::volume(v, path, vol, containers);

    let sources = volume_sources(vol);
    match sources.as_slice() {
        [] => v.push(path, "Required value: must specify a volume type"),
        [_] => {}
        [_, rest @ ..] => {
            for source in rest {
                v.push(
                    format!("{path}.{source}"),
                    "Forbidden: may not specify more than 1 volume type",
                );
            }
        }
    }
    if let Some(e) = &vol.empty_dir {
        empty_dir(v, &format!("{path}.emptyDir"), e);
    }
    if let Some(h) = &vol.host_path {
        host_path(v, &format!("{path}.hostPath"), h);
    }
    // The API server's only rule for the source (`validatePersistentClaimVolumeSource`);
    // the claim itself is looked up when the pod is admitted.
    if vol
        .persistent_volume_claim
        .as_ref()
        .is_some_and(|c| c.claim_name.is_empty())
    {
        v.push(
            format!("{path}.persistentVolumeClaim.claimName"),
            "Required value",
        );
    }
}

fn empty_dir(v: &mut Errors, path: &str, e: &EmptyDirVolumeSource) {
    match e.medium.as_deref() {
        None | Some("") | Some("Memory") => {}
        Some(m) if m.starts_with("HugePages") => v.push(
            format!("{path}.medium"),
            "Forbidden: not supported by podctl yet",
        ),
        Some(m) => v.unsupported(format!("{path}.medium"), m, &["", "Memory"]),
    }
    if let Some(q) = &e.size_limit {
        let detail = match quantity_bytes(q) {
            Ok(_) => {
                // Kubernetes enforces it on a disk-backed emptyDir by evicting the pod;
                // podctl has no such monitor, and a tmpfs is the only size it can set.
                if matches!(e.medium.as_deref(), None | Some("")) {
                    v.push(
                        format!("{path}.sizeLimit"),
                        "Forbidden: not supported by podctl yet for a disk-backed emptyDir \
                         (only with medium: Memory, where it sizes the tmpfs)",
                    );
                }
                return;
            }
            Err(QuantityError::TooLarge) => "must be less than 16Ei".to_owned(),
            Err(err) => err.to_string(),
        };
        v.invalid(format!("{path}.sizeLimit"), &q.0, &detail);
    }
}

fn host_path(v: &mut Errors, path: &str, h: &HostPathVolumeSource) {
    let p = format!("{path}.path");
    if h.path.is_empty() {
        v.push(p, "Required value");
    } else {
        if has_backsteps(&h.path) {
            v.invalid(&p, &h.path, "must not contain '..'");
        }
        if !h.path.starts_with('/') {
            // kubelet would resolve it against its own working directory: never meant.
            v.invalid(&p, &h.path, "must be an absolute path");
        }
    }
    v.one_of(&format!("{path}.type"), h.type_.as_deref(), HOST_PATH_TYPES);
}

/// The sources a volume sets, by their field names; the destructuring is exhaustive so a
/// new source in `k8s-openapi` must be classified here before the code compiles.
pub(super) fn volume_sources(vol: &Volume) -> Vec<&'static str> {
    let Volume {
        name: _,
        aws_elastic_block_store,
        azure_disk,
        azure_file,
        cephfs,
        cinder,
        config_map,
        csi,
        downward_api,
        empty_dir,
        ephemeral,
        fc,
        flex_volume,
        flocker,
        gce_persistent_disk,
        git_repo,
        glusterfs,
        host_path,
        image,
        iscsi,
        nfs,
        persistent_volume_claim,
        photon_persistent_disk,
        portworx_volume,
        projected,
        quobyte,
        rbd,
        scale_io,
        secret,
        storageos,
        vsphere_volume,
    } = vol;
    // In the order validation.go checks them, so the same one is called the extra one.
    [
        ("hostPath", host_path.is_some()),
        ("emptyDir", empty_dir.is_some()),
        ("gcePersistentDisk", gce_persistent_disk.is_some()),
        ("awsElasticBlockStore", aws_elastic_block_store.is_some()),
        ("gitRepo", git_repo.is_some()),
        ("secret", secret.is_some()),
        ("nfs", nfs.is_some()),
        ("iscsi", iscsi.is_some()),
        ("glusterfs", glusterfs.is_some()),
        ("persistentVolumeClaim", persistent_volume_claim.is_some()),
        ("rbd", rbd.is_some()),
        ("flexVolume", flex_volume.is_some()),
        ("cinder", cinder.is_some()),
        ("cephfs", cephfs.is_some()),
        ("flocker", flocker.is_some()),
        ("downwardAPI", downward_api.is_some()),
        ("fc", fc.is_some()),
        ("azureFile", azure_file.is_some()),
        ("configMap", config_map.is_some()),
        ("vsphereVolume", vsphere_volume.is_some()),
        ("quobyte", quobyte.is_some()),
        ("azureDisk", azure_disk.is_some()),
        ("photonPersistentDisk", photon_persistent_disk.is_some()),
        ("projected", projected.is_some()),
        ("portworxVolume", portworx_volume.is_some()),
        ("scaleIO", scale_io.is_some()),
        ("storageos", storageos.is_some()),
        ("csi", csi.is_some()),
        ("ephemeral", ephemeral.is_some()),
        ("image", image.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect()
}

/// apimachinery's `IsDNS1123Label`: the reasons `s` is not one.
pub(super) fn dns1123_label(s: &str) -> Vec<&'static str> {
    let mut problems = Vec::new();
    if s.len() > 63 {
        problems.push("must be no more than 63 characters");
    }
    if !is_label(s) {
        // A valid subdomain of the right length can only fail by its dots.
        problems.push(if s.split('.').all(is_label) {
            "must not contain dots"
        } else {
            DNS1123_LABEL_FMT
        });
    }
    problems
}

/// apimachinery's `IsDNS1123Subdomain`.
pub(super) fn dns1123_subdomain(s: &str) -> Vec<&'static str> {
    let mut problems = Vec::new();
    if s.len() > 253 {
        problems.push("must be no more than 253 characters");
    }
    if !s.split('.').all(is_label) {
        problems.push(DNS1123_SUBDOMAIN_FMT);
    }
    problems
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, any length.
fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            alnum(first) && alnum(last) && b.iter().all(|c| alnum(c) || *c == b'-')
        }
        _ => false,
    }
}

/// `[-._a-zA-Z][-._a-zA-Z0-9]*`.
pub(crate) fn is_env_var_name(s: &str) -> bool {
    let mut chars = s.bytes();
    let word = |c: u8| c.is_ascii_alphabetic() || matches!(c, b'-' | b'.' | b'_');
    match chars.next() {
        Some(first) if word(first) => chars.all(|c| word(c) || c.is_ascii_digit()),
        _ => false,
    }
}

/// apimachinery's `IsConfigMapKey`: the key of a ConfigMap or Secret.
pub(super) fn config_key(v: &mut Errors, path: &str, key: &str) {
    if key.len() > 253 {
        v.invalid(path, key, "must be no more than 253 characters");
    }
    let valid = !key.is_empty()
        && key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if !valid {
        v.invalid(
            path,
            key,
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' \
             (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is \
             '[-._a-zA-Z0-9]+')",
        );
    }
    if key == "." {
        v.invalid(path, key, "must not be '.'");
    } else if key == ".." {
        v.invalid(path, key, "must not be '..'");
    } else if key.starts_with("..") {
        v.invalid(path, key, "must not start with '..'");
    }
}

/// apimachinery's `IsQualifiedName` (a label key): `[prefix/]name`.
pub(super) fn is_qualified_name(s: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            problems.push("prefix part must be non-empty".to_owned());
        } else {
            problems.extend(
                dns1123_subdomain(prefix)
                    .into_iter()
                    .map(|m| format!("prefix part {m}")),
            );
        }
    }
    let part = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.');
    let b = name.as_bytes();
    if name.is_empty() {
        problems.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        problems.push("name part must be no more than 63 characters".to_owned());
    } else if !(b.iter().all(|c| part(*c))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric())
    {
        problems.push(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start \
             and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or \
             '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
                .to_owned(),
        );
    }
    problems
}

/// `[-A-Za-z0-9]+`: apimachinery's `IsHTTPHeaderName`.
fn is_http_header_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
}

/// apimachinery's `IsValidPortName` (an IANA service name).
fn port_name(s: &str) -> Vec<&'static str> {
    let mut problems = Vec::new();
    if s.len() > 15 {
        problems.push("must be no more than 15 characters");
    }
    if s.is_empty()
        || !s
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        problems.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if !s.bytes().any(|c| c.is_ascii_lowercase()) {
        problems.push("must contain at least one letter (a-z)");
    }
    if s.contains("--") {
        problems.push("must not contain consecutive hyphens");
    }
    if s.starts_with('-') || s.ends_with('-') {
        problems.push("must not begin or end with a hyphen");
    }
    problems
}
