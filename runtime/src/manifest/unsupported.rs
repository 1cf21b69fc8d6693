//! What podctl refuses because it does not implement it (yet): an allow-list walk.
//!
//! Every struct is destructured without `..`, so a field added by a newer `k8s-openapi`
//! stops the build until someone decides whether podctl honours it; until then the choice
//! here is to refuse. A refused field is only reported when it carries something: absent,
//! empty, or equal to the value Kubernetes would default it to (manifests exported with
//! `kubectl get -o yaml` carry `dnsPolicy: ClusterFirst`, `schedulerName: default-scheduler`,
//! `terminationMessagePath: /dev/termination-log`, `securityContext: {}` ...).
//!
//! Probes and lifecycle hooks (on regular containers and sidecars; on other init containers
//! the rules forbid them whole) are walked down to their handlers: `exec`, `tcpSocket` and
//! `httpGet` (plain HTTP) probes, `exec`, `httpGet` and `sleep` hooks are implemented. A
//! `host` is honoured only when it needs no name resolution (empty, an IP address or
//! `localhost`): podctl probes from inside the pod's network namespace and resolves no names.
//!
//! Container `resources` are honoured for `cpu` and `memory` (cgroup values, see
//! `crate::cgroups`); a `requests[ephemeral-storage]` is accepted and ignored (it only
//! informs a scheduler and the kubelet's eviction ranking); an ephemeral-storage limit,
//! huge pages, extended resources and `claims` are refused with their reason. Pod-level
//! `spec.resources` and `resizePolicy` are refused by name.
//!
//! Accepted and ignored, as the API server does on create: `status` and the metadata the
//! server sets itself (`uid`, `creationTimestamp`, `generation`, `managedFields`, `selfLink`,
//! `deletionTimestamp`, `deletionGracePeriodSeconds`). podctl assigns its own uid.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, DownwardAPIVolumeFile, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    ExecAction, HTTPGetAction, HTTPHeader, HostPathVolumeSource, KeyToPath, Lifecycle,
    LifecycleHandler, PersistentVolumeClaimVolumeSource, PodOS, PodSecurityContext, PodSpec, Probe,
    ResourceRequirements, SecurityContext, SleepAction, TCPSocketAction, Volume, VolumeMount,
    VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::error::FieldError;
use super::Pod;

const NOT_SUPPORTED: &str = "Forbidden: not supported by podctl yet";

/// Every field of `pod` that is set to something podctl cannot honour.
pub(super) fn refusals(pod: &Pod) -> Vec<FieldError> {
    let mut r = Refusals::default();
    let Pod {
        metadata,
        spec,
        status: _,
    } = pod;
    object_meta(&mut r, metadata);
    if let Some(spec) = spec {
        pod_spec(&mut r, spec);
    }
    r.0
}

#[derive(Default)]
struct Refusals(Vec<FieldError>);

impl Refusals {
    fn refuse(&mut self, path: String) {
        self.0.push(FieldError::new(path, NOT_SUPPORTED));
    }

    /// Refused whenever present.
    fn present<T>(&mut self, path: &str, field: &str, value: &Option<T>) {
        if value.is_some() {
            self.refuse(join(path, field));
        }
    }

    /// Refused unless it serialises to nothing: `{}`, `[]`, nested empties or null.
    fn non_empty<T: Serialize>(&mut self, path: &str, field: &str, value: &Option<T>) {
        if value.as_ref().is_some_and(|v| !is_empty(v)) {
            self.refuse(join(path, field));
        }
    }

    /// Refused unless absent or one of `accepted` (Kubernetes' default, `""` where the API
    /// server defaults an empty string, and values that mean the same on one host).
    fn unless<T: PartialEq + ?Sized>(
        &mut self,
        path: &str,
        field: &str,
        value: Option<&T>,
        accepted: &[&T],
    ) {
        if value.is_some_and(|v| !accepted.contains(&v)) {
            self.refuse(join(path, field));
        }
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// True when `value` holds no data at any depth.
fn is_empty<T: Serialize>(value: &T) -> bool {
    fn empty(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Null => true,
            serde_json::Value::String(s) => s.is_empty(),
            serde_json::Value::Array(a) => a.iter().all(empty),
            serde_json::Value::Object(o) => o.values().all(empty),
            _ => false,
        }
    }
    // A value that cannot be serialised is not known to be empty: refuse it.
    serde_json::to_value(value).is_ok_and(|v| empty(&v))
}

fn object_meta(r: &mut Refusals, meta: &ObjectMeta) {
    let ObjectMeta {
        // Used, or informational (kept for status and listings).
        name: _,
        namespace: _,
        labels: _,
        annotations: _,
        // Set by the server on create, whatever the manifest says.
        uid: _,
        creation_timestamp: _,
        generation: _,
        managed_fields: _,
        self_link: _,
        deletion_timestamp: _,
        deletion_grace_period_seconds: _,
        generate_name,
        owner_references,
        finalizers,
        resource_version,
    } = meta;
    let p = "metadata";
    r.non_empty(p, "generateName", generate_name);
    r.non_empty(p, "ownerReferences", owner_references);
    r.non_empty(p, "finalizers", finalizers);
    if resource_version.as_deref().is_some_and(|v| !v.is_empty()) {
        // The API server refuses it on create too.
        r.0.push(FieldError::new(
            "metadata.resourceVersion",
            "Forbidden: should not be set on objects to be created",
        ));
    }
}

fn pod_spec(r: &mut Refusals, spec: &PodSpec) {
    let PodSpec {
        containers,
        init_containers,
        volumes,
        restart_policy: _,
        termination_grace_period_seconds: _,
        host_network,
        // No services on one host: no service link variables either way.
        enable_service_links: _,
        // Enforced by the lifecycle engine (phase Failed, reason DeadlineExceeded).
        active_deadline_seconds: _,
        affinity,
        automount_service_account_token,
        // Written into the pod's resolv.conf and hosts file (sandbox::dns, sandbox::files).
        dns_config: _,
        dns_policy: _,
        ephemeral_containers,
        eviction_responders,
        host_aliases: _,
        host_ipc,
        host_pid,
        host_users,
        hostname: _,
        hostname_override,
        image_pull_secrets: _,
        node_name,
        node_selector,
        os,
        overhead,
        preemption_policy,
        priority,
        priority_class_name,
        readiness_gates,
        resource_claims,
        resources,
        runtime_class_name,
        scheduler_name,
        scheduling_gates,
        scheduling_group,
        security_context,
        service_account,
        service_account_name,
        // The kernel hostname becomes the FQDN (sandbox), as the kubelet makes it.
        set_hostname_as_fqdn: _,
        // One PID namespace held by a pause process (lifecycle::pause).
        share_process_namespace: _,
        subdomain: _,
        tolerations,
        topology_spread_constraints,
    } = spec;
    let p = "spec";
    r.non_empty(p, "affinity", affinity);
    // No service account token is mounted; asking for one explicitly is refused.
    r.unless(
        p,
        "automountServiceAccountToken",
        automount_service_account_token.as_ref(),
        &[&false],
    );
    r.non_empty(p, "ephemeralContainers", ephemeral_containers);
    r.non_empty(p, "evictionResponders", eviction_responders);
    r.unless(p, "hostIPC", host_ipc.as_ref(), &[&false]);
    r.unless(p, "hostPID", host_pid.as_ref(), &[&false]);
    // Default true (the host's user namespace); false asks for a user namespace.
    r.unless(p, "hostUsers", host_users.as_ref(), &[&true]);
    r.non_empty(p, "hostnameOverride", hostname_override);
    r.non_empty(p, "nodeName", node_name);
    r.non_empty(p, "nodeSelector", node_selector);
    if let Some(PodOS { name }) = os {
        if name != "linux" {
            r.refuse("spec.os.name".to_owned());
        }
    }
    r.non_empty(p, "overhead", overhead);
    r.unless(
        p,
        "preemptionPolicy",
        preemption_policy.as_deref(),
        &["", "PreemptLowerPriority"],
    );
    r.unless(p, "priority", priority.as_ref(), &[&0]);
    r.non_empty(p, "priorityClassName", priority_class_name);
    r.non_empty(p, "readinessGates", readiness_gates);
    r.non_empty(p, "resourceClaims", resource_claims);
    r.non_empty(p, "resources", resources);
    r.non_empty(p, "runtimeClassName", runtime_class_name);
    r.unless(
        p,
        "schedulerName",
        scheduler_name.as_deref(),
        &["", "default-scheduler"],
    );
    r.non_empty(p, "schedulingGates", scheduling_gates);
    r.non_empty(p, "schedulingGroup", scheduling_group);
    if let Some(sc) = security_context {
        pod_security_context(r, &join(p, "securityContext"), sc);
    }
    // "default" is what the API server fills in; it grants nothing here.
    r.unless(
        p,
        "serviceAccount",
        service_account.as_deref(),
        &["", "default"],
    );
    r.unless(
        p,
        "serviceAccountName",
        service_account_name.as_deref(),
        &["", "default"],
    );
    r.non_empty(p, "tolerations", tolerations);
    r.non_empty(p, "topologySpreadConstraints", topology_spread_constraints);

    let host_network = host_network.unwrap_or(false);
    for (i, c) in init_containers.iter().flatten().enumerate() {
        // Native sidecars (`restartPolicy: Always`, the only valid value) may have hooks and
        // probes; on other init containers the rules forbid them.
        let sidecar = c.restart_policy.as_deref() == Some("Always");
        container(
            r,
            &format!("spec.initContainers[{i}]"),
            c,
            host_network,
            sidecar,
        );
    }
    for (i, c) in containers.iter().enumerate() {
        container(r, &format!("spec.containers[{i}]"), c, host_network, true);
    }
    for (i, v) in volumes.iter().flatten().enumerate() {
        volume(r, &format!("spec.volumes[{i}]"), v);
    }
}

/// `hooks_allowed`: whether `lifecycle` and the probes may be set at all (regular containers
/// and sidecars); elsewhere the rules report them and their content is not looked at.
fn container(r: &mut Refusals, path: &str, c: &Container, host_network: bool, hooks_allowed: bool) {
    let Container {
        name: _,
        image: _,
        command: _,
        args: _,
        working_dir: _,
        // Applied when the pod is admitted (`image::ensure`).
        image_pull_policy: _,
        // Judged per kind of container: by the rules and in `pod_spec`.
        restart_policy: _,
        env,
        env_from,
        lifecycle,
        liveness_probe,
        ports,
        readiness_probe,
        resize_policy,
        resources,
        restart_policy_rules,
        security_context,
        startup_probe,
        stdin,
        stdin_once,
        termination_message_path,
        termination_message_policy,
        tty,
        volume_devices,
        volume_mounts,
    } = c;
    for (i, e) in env.iter().flatten().enumerate() {
        let EnvVar {
            name: _,
            value: _,
            value_from,
        } = e;
        if let Some(from) = value_from {
            let EnvVarSource {
                config_map_key_ref: _,
                field_ref: _,
                resource_field_ref: _,
                secret_key_ref: _,
                file_key_ref,
            } = from;
            r.present(
                &format!("{path}.env[{i}].valueFrom"),
                "fileKeyRef",
                file_key_ref,
            );
        }
    }
    // Every field of `envFrom` is honoured (`expand::kubelet_env`).
    let _ = env_from;
    if hooks_allowed {
        if let Some(l) = lifecycle {
            container_lifecycle(r, &join(path, "lifecycle"), l);
        }
        let probes = [
            ("livenessProbe", liveness_probe),
            ("readinessProbe", readiness_probe),
            ("startupProbe", startup_probe),
        ];
        for (field, p) in probes {
            if let Some(p) = p {
                probe(r, &join(path, field), p);
            }
        }
    }
    r.non_empty(path, "resizePolicy", resize_policy);
    if let Some(res) = resources {
        container_resources(r, &join(path, "resources"), res);
    }
    r.non_empty(path, "restartPolicyRules", restart_policy_rules);
    if let Some(sc) = security_context {
        container_security_context(r, &join(path, "securityContext"), sc);
    }
    r.unless(path, "stdin", stdin.as_ref(), &[&false]);
    r.unless(path, "stdinOnce", stdin_once.as_ref(), &[&false]);
    r.unless(path, "tty", tty.as_ref(), &[&false]);
    r.unless(
        path,
        "terminationMessagePath",
        termination_message_path.as_deref(),
        &["", "/dev/termination-log"],
    );
    // A bad value is reported by the rules; only the other valid one is refused here.
    r.unless(
        path,
        "terminationMessagePolicy",
        termination_message_policy.as_deref(),
        &["", "File"],
    );
    r.non_empty(path, "volumeDevices", volume_devices);
    for (i, port) in ports.iter().flatten().enumerate() {
        container_port(r, &format!("{path}.ports[{i}]"), port, host_network);
    }
    for (i, m) in volume_mounts.iter().flatten().enumerate() {
        volume_mount(r, &format!("{path}.volumeMounts[{i}]"), m);
    }
}

/// A container's `resources`: CPU and memory are honoured, an ephemeral-storage request is
/// accepted (and means nothing on one host); other names are refused with why. A name that
/// is not a resource at all is the rules' to report.
fn container_resources(r: &mut Refusals, path: &str, res: &ResourceRequirements) {
    let ResourceRequirements {
        limits,
        requests,
        claims,
    } = res;
    for (field, list) in [("limits", limits), ("requests", requests)] {
        for name in list.iter().flatten().map(|(name, _)| name.as_str()) {
            let reason = match name {
                "cpu" | "memory" => continue,
                "ephemeral-storage" if field == "requests" => continue,
                "ephemeral-storage" => {
                    "podctl does not enforce ephemeral-storage limits (the kubelet evicts a pod \
                     over its limit; podctl evicts nothing); a request alone is accepted"
                }
                n if n.starts_with("hugepages-") => "podctl does not set up huge pages",
                n if n.contains('/') => {
                    "podctl has no extended resources (no device plugins on this host)"
                }
                _ => continue,
            };
            r.0.push(FieldError::new(
                format!("{path}.{field}[{name}]"),
                format!("{NOT_SUPPORTED}: {reason}"),
            ));
        }
    }
    // Dynamic resource allocation: the pod's `resourceClaims` are refused too.
    r.non_empty(path, "claims", claims);
}

fn probe(r: &mut Refusals, path: &str, p: &Probe) {
    let Probe {
        exec,
        http_get,
        tcp_socket,
        grpc,
        initial_delay_seconds: _,
        timeout_seconds: _,
        period_seconds: _,
        success_threshold: _,
        failure_threshold: _,
        // A failed liveness or startup probe kills with it instead of the pod's.
        termination_grace_period_seconds: _,
    } = p;
    if let Some(e) = exec {
        exec_action(e);
    }
    if let Some(h) = http_get {
        http_get_action(r, &join(path, "httpGet"), h);
    }
    if let Some(t) = tcp_socket {
        let TCPSocketAction { port: _, host } = t;
        probe_host(r, &join(path, "tcpSocket"), host.as_deref());
    }
    r.present(path, "grpc", grpc);
}

fn container_lifecycle(r: &mut Refusals, path: &str, l: &Lifecycle) {
    let Lifecycle {
        post_start,
        pre_stop,
        stop_signal,
    } = l;
    for (field, hook) in [("postStart", post_start), ("preStop", pre_stop)] {
        if let Some(h) = hook {
            lifecycle_handler(r, &join(path, field), h);
        }
    }
    // The stop signal is the image's STOPSIGNAL, else SIGTERM.
    r.present(path, "stopSignal", stop_signal);
}

fn lifecycle_handler(r: &mut Refusals, path: &str, h: &LifecycleHandler) {
    let LifecycleHandler {
        exec,
        http_get,
        sleep,
        tcp_socket,
    } = h;
    if let Some(e) = exec {
        exec_action(e);
    }
    if let Some(g) = http_get {
        http_get_action(r, &join(path, "httpGet"), g);
    }
    if let Some(s) = sleep {
        let SleepAction { seconds: _ } = s;
    }
    // The API keeps it for compatibility; the kubelet never runs it.
    r.present(path, "tcpSocket", tcp_socket);
}

fn exec_action(e: &ExecAction) {
    // Its only field is supported; named so that a new one is noticed.
    let ExecAction { command: _ } = e;
}

fn http_get_action(r: &mut Refusals, path: &str, h: &HTTPGetAction) {
    let HTTPGetAction {
        path: _,
        port: _,
        http_headers,
        host,
        scheme,
        protocol,
    } = h;
    for header in http_headers.iter().flatten() {
        let HTTPHeader { name: _, value: _ } = header;
    }
    probe_host(r, path, host.as_deref());
    // A bad value is reported by the rules; only the other valid one is refused here.
    r.unless(path, "scheme", scheme.as_deref(), &["", "HTTP"]);
    // HTTP/2 cleartext (alpha `H2CContainerProbe`).
    r.present(path, "protocol", protocol);
}

/// `host` of a `tcpSocket`/`httpGet` action: empty (the pod's address), an IP address or
/// `localhost`; a name would have to be resolved, which podctl does not do.
fn probe_host(r: &mut Refusals, path: &str, host: Option<&str>) {
    if let Some(host) = host {
        if !(host.is_empty() || host == "localhost" || host.parse::<IpAddr>().is_ok()) {
            r.refuse(join(path, "host"));
        }
    }
}

fn container_port(r: &mut Refusals, path: &str, port: &ContainerPort, host_network: bool) {
    let ContainerPort {
        container_port: _,
        name: _,
        protocol: _,
        // Published through the `portmap` CNI plugin (validated with the API server's
        // rules, including hostNetwork's hostPort == containerPort).
        host_ip,
        host_port,
    } = port;
    // The kubelet publishes the hostPorts of `spec.containers` only; an init container's
    // would be silently unpublished.
    if path.starts_with("spec.initContainers") {
        r.unless(path, "hostPort", host_port.as_ref(), &[&0]);
        r.non_empty(path, "hostIP", host_ip);
    } else if host_network {
        // The ports are the host's own: an address to bind would be ignored.
        r.non_empty(path, "hostIP", host_ip);
    }
}

fn volume_mount(r: &mut Refusals, path: &str, m: &VolumeMount) {
    let VolumeMount {
        name: _,
        mount_path: _,
        read_only: _,
        sub_path: _,
        sub_path_expr,
        mount_propagation,
        recursive_read_only,
        bind_mount_options,
    } = m;
    r.non_empty(path, "subPathExpr", sub_path_expr);
    r.unless(
        path,
        "mountPropagation",
        mount_propagation.as_deref(),
        &["", "None"],
    );
    r.unless(
        path,
        "recursiveReadOnly",
        recursive_read_only.as_deref(),
        &["", "Disabled"],
    );
    r.non_empty(path, "bindMountOptions", bind_mount_options);
}

fn volume(r: &mut Refusals, path: &str, v: &Volume) {
    for source in super::validate::volume_sources(v) {
        match source {
            "emptyDir"
            | "hostPath"
            | "configMap"
            | "secret"
            | "downwardAPI"
            | "projected"
            | "persistentVolumeClaim" => {}
            other => r.refuse(join(path, other)),
        }
    }
    api_data_volume(r, path, v);
    if let Some(EmptyDirVolumeSource {
        medium: _,
        size_limit: _,
        mode,
    }) = &v.empty_dir
    {
        r.present(&join(path, "emptyDir"), "mode", mode);
    }
    if let Some(h) = &v.host_path {
        // Both fields are supported; named so that a new one is noticed.
        let HostPathVolumeSource { path: _, type_: _ } = h;
    }
    if let Some(c) = &v.persistent_volume_claim {
        // Both fields are supported (a local directory, see `crate::claims`).
        let PersistentVolumeClaimVolumeSource {
            claim_name: _,
            read_only: _,
        } = c;
    }
}

/// The configMap, secret, downwardAPI and projected volumes (see `crate::sandbox`): all
/// honoured but the file owners (`defaultUser`, `user`), and the projected sources a cluster
/// mints (service account tokens, trust bundles, pod certificates).
fn api_data_volume(r: &mut Refusals, path: &str, v: &Volume) {
    let items = |r: &mut Refusals, path: &str, items: &Option<Vec<KeyToPath>>| {
        for (i, item) in items.iter().flatten().enumerate() {
            r.present(&format!("{path}.items[{i}]"), "user", &item.user);
        }
    };
    let files = |r: &mut Refusals, path: &str, items: &Option<Vec<DownwardAPIVolumeFile>>| {
        for (i, item) in items.iter().flatten().enumerate() {
            r.present(&format!("{path}.items[{i}]"), "user", &item.user);
        }
    };
    if let Some(cm) = &v.config_map {
        let p = join(path, "configMap");
        r.present(&p, "defaultUser", &cm.default_user);
        items(r, &p, &cm.items);
    }
    if let Some(s) = &v.secret {
        let p = join(path, "secret");
        r.present(&p, "defaultUser", &s.default_user);
        items(r, &p, &s.items);
    }
    if let Some(d) = &v.downward_api {
        let p = join(path, "downwardAPI");
        r.present(&p, "defaultUser", &d.default_user);
        files(r, &p, &d.items);
    }
    if let Some(pr) = &v.projected {
        let p = join(path, "projected");
        r.present(&p, "defaultUser", &pr.default_user);
        for (i, source) in pr.sources.iter().flatten().enumerate() {
            let VolumeProjection {
                config_map,
                secret,
                downward_api,
                service_account_token,
                cluster_trust_bundle,
                pod_certificate,
            } = source;
            let sp = format!("{p}.sources[{i}]");
            r.present(&sp, "serviceAccountToken", service_account_token);
            r.present(&sp, "clusterTrustBundle", cluster_trust_bundle);
            r.present(&sp, "podCertificate", pod_certificate);
            if let Some(cm) = config_map {
                items(r, &join(&sp, "configMap"), &cm.items);
            }
            if let Some(s) = secret {
                items(r, &join(&sp, "secret"), &s.items);
            }
            if let Some(d) = downward_api {
                files(r, &join(&sp, "downwardAPI"), &d.items);
            }
        }
    }
}

/// The pod's security context: the user and groups its processes run as (`runAsNonRoot`
/// checked in `oci::container_spec`), `fsGroup` (a supplementary group, and the group of
/// emptyDir volumes; `fsGroupChangePolicy` only matters for volumes with content, which a
/// new emptyDir has not), the default `seccompProfile` and the safe `sysctls` are honoured;
/// the rest is refused by name.
fn pod_security_context(r: &mut Refusals, path: &str, sc: &PodSecurityContext) {
    let PodSecurityContext {
        run_as_user: _,
        run_as_group: _,
        run_as_non_root: _,
        supplemental_groups: _,
        fs_group: _,
        fs_group_change_policy: _,
        seccomp_profile: _,
        sysctls: _,
        app_armor_profile,
        se_linux_change_policy,
        se_linux_options,
        supplemental_groups_policy,
        windows_options,
    } = sc;
    r.present(path, "appArmorProfile", app_armor_profile);
    r.present(path, "seLinuxChangePolicy", se_linux_change_policy);
    r.non_empty(path, "seLinuxOptions", se_linux_options);
    r.unless(
        path,
        "supplementalGroupsPolicy",
        supplemental_groups_policy.as_deref(),
        &["Merge"],
    );
    r.non_empty(path, "windowsOptions", windows_options);
}

/// A container's security context: user, groups, `runAsNonRoot`, capabilities,
/// `readOnlyRootFilesystem`, `allowPrivilegeEscalation`, `privileged` and `seccompProfile`
/// are honoured (`oci::container_spec`); `procMount: Unmasked` is refused with its reason,
/// the rest by name.
fn container_security_context(r: &mut Refusals, path: &str, sc: &SecurityContext) {
    let SecurityContext {
        run_as_user: _,
        run_as_group: _,
        run_as_non_root: _,
        read_only_root_filesystem: _,
        allow_privilege_escalation: _,
        capabilities: _,
        privileged: _,
        seccomp_profile: _,
        app_armor_profile,
        proc_mount,
        se_linux_options,
        windows_options,
    } = sc;
    r.present(path, "appArmorProfile", app_armor_profile);
    if proc_mount.as_deref() == Some("Unmasked") {
        // The API server accepts `Unmasked` only with `hostUsers: false` ("`hostUsers` must
        // be false to use `Unmasked`"): a user namespace for the pod, which podctl does not
        // support. `oci::container_spec` implements it for the day it does.
        r.0.push(FieldError::new(
            join(path, "procMount"),
            "Forbidden: not supported by podctl yet: `Unmasked` requires `hostUsers: false` \
             (a user namespace), which podctl does not support",
        ));
    }
    r.non_empty(path, "seLinuxOptions", se_linux_options);
    r.non_empty(path, "windowsOptions", windows_options);
}
