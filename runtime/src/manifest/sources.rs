//! The API server's rules for what a pod reads from elsewhere: `env[].valueFrom`, `envFrom`,
//! and the configMap, secret, downwardAPI and projected volumes (`validateEnvVarValueFrom`,
//! `ValidateEnvFrom`, `validateConfigMapVolumeSource` ... in validation.go).

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeFile, EnvFromSource, EnvVarSource, KeyToPath, ObjectFieldSelector,
    ResourceFieldSelector, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::quantity::{quantity_bytes, quantity_milli};
use super::validate::{
    config_key, dns1123_subdomain, is_env_var_name, is_qualified_name, local_descending_path,
    Errors, ENV_VAR_NAME_FMT,
};

/// `fieldRef` paths env may read (`validEnvDownwardAPIFieldPathExpressions`).
const ENV_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// `fieldRef` paths a downwardAPI volume may project
/// (`validVolumeDownwardAPIFieldPathExpressions`).
const VOLUME_FIELDS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];

/// `resourceFieldRef` resources (`validContainerResourceFieldPathExpressions`).
const RESOURCES: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

const FILE_MODE: &str = "must be a number between 0 and 0777 (octal), both inclusive";

/// `env[i].valueFrom` of `c`; `containers` are the names of every container of the pod.
pub(super) fn env_value_from(
    v: &mut Errors,
    path: &str,
    value: Option<&str>,
    from: &EnvVarSource,
    containers: &HashSet<&str>,
) {
    let EnvVarSource {
        config_map_key_ref,
        field_ref,
        file_key_ref,
        resource_field_ref,
        secret_key_ref,
    } = from;
    let mut sources = 0;
    if let Some(f) = field_ref {
        sources += 1;
        field_selector(v, &format!("{path}.fieldRef"), f, ENV_FIELDS);
    }
    if let Some(r) = resource_field_ref {
        sources += 1;
        resource_selector(v, &format!("{path}.resourceFieldRef"), r, false, containers);
    }
    if let Some(k) = config_map_key_ref {
        sources += 1;
        key_selector(v, &format!("{path}.configMapKeyRef"), &k.name, &k.key);
    }
    if let Some(k) = secret_key_ref {
        sources += 1;
        key_selector(v, &format!("{path}.secretKeyRef"), &k.name, &k.key);
    }
    if file_key_ref.is_some() {
        sources += 1;
    }
    if sources == 0 {
        v.invalid(
            path,
            "",
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        );
    } else if value.is_some_and(|s| !s.is_empty()) {
        v.invalid(path, "", "may not be specified when `value` is not empty");
    } else if sources > 1 {
        v.invalid(
            path,
            "",
            "may not have more than one field specified at a time",
        );
    }
}

/// `envFrom` of a container.
pub(super) fn env_from(v: &mut Errors, path: &str, list: &[EnvFromSource]) {
    for (i, e) in list.iter().enumerate() {
        let item = format!("{path}[{i}]");
        if let Some(prefix) = e.prefix.as_deref().filter(|p| !p.is_empty()) {
            if !is_env_var_name(prefix) {
                v.invalid(format!("{item}.prefix"), prefix, ENV_VAR_NAME_FMT);
            }
        }
        let mut sources = 0;
        if let Some(r) = &e.config_map_ref {
            sources += 1;
            object_name(v, &format!("{item}.configMapRef.name"), &r.name);
        }
        if let Some(r) = &e.secret_ref {
            sources += 1;
            object_name(v, &format!("{item}.secretRef.name"), &r.name);
        }
        match sources {
            0 => v.invalid(
                path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ),
            1 => {}
            _ => v.invalid(
                path,
                "",
                "may not have more than one field specified at a time",
            ),
        }
    }
}

/// The configMap, secret, downwardAPI and projected sources of a volume.
pub(super) fn volume(v: &mut Errors, path: &str, vol: &Volume, containers: &HashSet<&str>) {
    if let Some(cm) = &vol.config_map {
        let path = format!("{path}.configMap");
        object_name(v, &format!("{path}.name"), &cm.name);
        mode(v, &format!("{path}.defaultMode"), cm.default_mode);
        key_to_paths(v, &path, cm.items.as_deref().unwrap_or_default());
    }
    if let Some(s) = &vol.secret {
        let path = format!("{path}.secret");
        object_name(
            v,
            &format!("{path}.secretName"),
            s.secret_name.as_deref().unwrap_or_default(),
        );
        mode(v, &format!("{path}.defaultMode"), s.default_mode);
        key_to_paths(v, &path, s.items.as_deref().unwrap_or_default());
    }
    if let Some(d) = &vol.downward_api {
        let path = format!("{path}.downwardAPI");
        mode(v, &format!("{path}.defaultMode"), d.default_mode);
        downward_files(v, &path, d.items.as_deref().unwrap_or_default(), containers);
    }
    if let Some(p) = &vol.projected {
        let path = format!("{path}.projected");
        mode(v, &format!("{path}.defaultMode"), p.default_mode);
        let mut paths = HashSet::new();
        for (i, source) in p.sources.iter().flatten().enumerate() {
            let src = format!("{path}.sources[{i}]");
            let kinds = [
                ("configMap", source.config_map.is_some()),
                ("secret", source.secret.is_some()),
                ("downwardAPI", source.downward_api.is_some()),
                (
                    "serviceAccountToken",
                    source.service_account_token.is_some(),
                ),
                ("clusterTrustBundle", source.cluster_trust_bundle.is_some()),
                ("podCertificate", source.pod_certificate.is_some()),
            ];
            let set: Vec<&str> = kinds.iter().filter(|(_, s)| *s).map(|(k, _)| *k).collect();
            if set.len() > 1 {
                for kind in &set[1..] {
                    v.push(
                        format!("{src}.{kind}"),
                        "Forbidden: may not specify more than 1 volume type per source",
                    );
                }
            }
            let mut item_paths = Vec::new();
            if let Some(cm) = &source.config_map {
                let p = format!("{src}.configMap");
                object_name(v, &format!("{p}.name"), &cm.name);
                let items = cm.items.as_deref().unwrap_or_default();
                key_to_paths(v, &p, items);
                item_paths.extend(items.iter().map(|i| (format!("{p}.items"), i.path.clone())));
            }
            if let Some(s) = &source.secret {
                let p = format!("{src}.secret");
                object_name(v, &format!("{p}.name"), &s.name);
                let items = s.items.as_deref().unwrap_or_default();
                key_to_paths(v, &p, items);
                item_paths.extend(items.iter().map(|i| (format!("{p}.items"), i.path.clone())));
            }
            if let Some(d) = &source.downward_api {
                let p = format!("{src}.downwardAPI");
                let items = d.items.as_deref().unwrap_or_default();
                downward_files(v, &p, items, containers);
                item_paths.extend(items.iter().map(|i| (format!("{p}.items"), i.path.clone())));
            }
            for (items_path, item) in item_paths {
                if !paths.insert(item.clone()) {
                    v.invalid(items_path, &item, "conflicting duplicate paths");
                }
            }
        }
    }
}

/// A ConfigMap or Secret name (`ValidateConfigMapName`, `ValidateSecretName`).
fn object_name(v: &mut Errors, path: &str, name: &str) {
    if name.is_empty() {
        v.push(path, "Required value");
    }
    for msg in dns1123_subdomain(name)
        .into_iter()
        .filter(|_| !name.is_empty())
    {
        v.invalid(path, name, msg);
    }
}

fn key_selector(v: &mut Errors, path: &str, name: &str, key: &str) {
    object_name(v, &format!("{path}.name"), name);
    if key.is_empty() {
        v.push(format!("{path}.key"), "Required value");
    } else {
        config_key(v, &format!("{path}.key"), key);
    }
}

fn mode(v: &mut Errors, path: &str, mode: Option<i32>) {
    if let Some(m) = mode.filter(|m| !(0..=0o777).contains(m)) {
        v.invalid_number(path, m, FILE_MODE);
    }
}

/// `items` of a configMap or secret source (`validateKeyToPath`).
fn key_to_paths(v: &mut Errors, path: &str, items: &[KeyToPath]) {
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}.items[{i}]");
        if item.key.is_empty() {
            v.push(format!("{p}.key"), "Required value");
        }
        file_path(v, &format!("{p}.path"), &item.path);
        mode(v, &format!("{p}.mode"), item.mode);
    }
}

/// A file's path inside the volume (`validateLocalNonReservedPath`).
fn file_path(v: &mut Errors, path: &str, p: &str) {
    if p.is_empty() {
        v.push(path, "Required value");
        return;
    }
    local_descending_path(v, path, p);
    if p.starts_with("..") {
        v.invalid(path, p, "must not start with '..'");
    }
}

fn downward_files(
    v: &mut Errors,
    path: &str,
    items: &[DownwardAPIVolumeFile],
    containers: &HashSet<&str>,
) {
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}.items[{i}]");
        file_path(v, &format!("{p}.path"), &item.path);
        mode(v, &format!("{p}.mode"), item.mode);
        match (&item.field_ref, &item.resource_field_ref) {
            (Some(f), None) => field_selector(v, &format!("{p}.fieldRef"), f, VOLUME_FIELDS),
            (None, Some(r)) => {
                resource_selector(v, &format!("{p}.resourceFieldRef"), r, true, containers);
            }
            (Some(_), Some(_)) => v.invalid(
                &p,
                "resource",
                "fieldRef and resourceFieldRef can not be specified simultaneously",
            ),
            (None, None) => v.push(
                &p,
                "Required value: one of fieldRef and resourceFieldRef is required",
            ),
        }
    }
}

/// `validateObjectFieldSelector`: the path is one the downward API offers here.
fn field_selector(v: &mut Errors, path: &str, f: &ObjectFieldSelector, supported: &[&str]) {
    let ObjectFieldSelector {
        api_version,
        field_path,
    } = f;
    if let Some(version) = api_version
        .as_deref()
        .filter(|a| !a.is_empty() && *a != "v1")
    {
        v.invalid(
            format!("{path}.fieldPath"),
            field_path,
            &format!("error converting fieldPath: unsupported pod version: {version}"),
        );
        return;
    }
    if field_path.is_empty() {
        v.push(format!("{path}.fieldPath"), "Required value");
        return;
    }
    if let Some((base, key)) = crate::downward::subscripted(field_path) {
        match base {
            "metadata.annotations" => {
                for msg in is_qualified_name(&key.to_lowercase()) {
                    v.invalid(path, key, &msg);
                }
            }
            "metadata.labels" => {
                for msg in is_qualified_name(key) {
                    v.invalid(path, key, &msg);
                }
            }
            _ => v.invalid(path, base, "does not support subscript"),
        }
    } else if !supported.contains(&field_path.as_str()) {
        v.unsupported(format!("{path}.fieldPath"), field_path, supported);
    }
}

/// `validateContainerResourceFieldSelector` and the divisor rules; a `containerName` must
/// name a container of the pod (the kubelet fails the container otherwise).
fn resource_selector(
    v: &mut Errors,
    path: &str,
    r: &ResourceFieldSelector,
    volume: bool,
    containers: &HashSet<&str>,
) {
    let name = r.container_name.as_deref().unwrap_or_default();
    if volume && name.is_empty() {
        v.push(format!("{path}.containerName"), "Required value");
        return;
    }
    if !name.is_empty() && !containers.contains(name) {
        v.push(
            format!("{path}.containerName"),
            format!("Not found: {name:?}"),
        );
    }
    if r.resource.is_empty() {
        v.push(format!("{path}.resource"), "Required value");
        return;
    }
    if !RESOURCES.contains(&r.resource.as_str()) && !r.resource.starts_with("requests.hugepages-") {
        v.unsupported(format!("{path}.resource"), &r.resource, RESOURCES);
        return;
    }
    if let Some(d) = &r.divisor {
        divisor(v, path, &r.resource, d);
    }
}

/// `validateContainerResourceDivisor`: only powers of the unit.
fn divisor(v: &mut Errors, path: &str, resource: &str, d: &Quantity) {
    const MEMORY: &[u64] = &[
        1,
        1_000,
        1_000_000,
        1_000_000_000,
        1_000_000_000_000,
        1_000_000_000_000_000,
        1_000_000_000_000_000_000,
        1 << 10,
        1 << 20,
        1 << 30,
        1 << 40,
        1 << 50,
        1 << 60,
    ];
    let (ok, what) = match resource {
        "limits.cpu" | "requests.cpu" => (
            quantity_milli(d).is_ok_and(|m| m == 1 || m == 1000),
            "only divisor's values 1m and 1 are supported with the cpu resource",
        ),
        "limits.memory" | "requests.memory" => (
            quantity_bytes(d).is_ok_and(|b| MEMORY.contains(&b)),
            "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource",
        ),
        "limits.ephemeral-storage" | "requests.ephemeral-storage" => (
            quantity_bytes(d).is_ok_and(|b| MEMORY.contains(&b)),
            "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the local ephemeral storage resource",
        ),
        _ => (true, ""),
    };
    // An unset (zero) divisor means 1.
    let zero = quantity_bytes(d).is_ok_and(|b| b == 0) && quantity_milli(d).is_ok_and(|m| m == 0);
    if !ok && !zero {
        v.invalid(format!("{path}.divisor"), resource, what);
    }
}
