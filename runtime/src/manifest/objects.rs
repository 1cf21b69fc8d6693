//! The objects a pod can draw on besides itself: ConfigMaps and Secrets given in the same
//! file, in `--configmap`/`--secret` files, or in the daemon's manifests dir; their
//! validation (the API server's `ValidateConfigMap`/`ValidateSecret`) and the check that
//! what a pod refers to is there.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Volume};
use k8s_openapi::ByteString;
use serde::{Deserialize, Serialize};

use super::error::{FieldError, ManifestError};
use super::validate::{config_key, Errors};

/// The most data a ConfigMap or Secret may hold (`core.MaxSecretSize`).
const MAX_SIZE: usize = 1024 * 1024;

/// ConfigMaps and Secrets by name, as one pod sees them (one namespace).
///
/// A Secret's `stringData` is already merged into its `data` (as the API server stores it),
/// so readers look at `data` alone.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Objects {
    #[serde(rename = "configMaps")]
    pub config_maps: BTreeMap<String, ConfigMap>,
    pub secrets: BTreeMap<String, Secret>,
}

impl Objects {
    /// Whether there are no objects at all.
    pub fn is_empty(&self) -> bool {
        self.config_maps.is_empty() && self.secrets.is_empty()
    }

    /// Validates `cm` and adds it.
    pub(super) fn add_config_map(&mut self, cm: ConfigMap) -> Result<(), ManifestError> {
        let name = cm.metadata.name.clone().unwrap_or_default();
        invalid("ConfigMap", &name, validate_config_map(&cm))?;
        self.config_maps.insert(name, cm);
        Ok(())
    }

    /// Merges `stringData` into `data`, validates the Secret and adds it.
    pub(super) fn add_secret(&mut self, mut s: Secret) -> Result<(), ManifestError> {
        let name = s.metadata.name.clone().unwrap_or_default();
        // The API server converts stringData into data before it validates (stringData wins).
        if let Some(strings) = s.string_data.take() {
            let data = s.data.get_or_insert_with(BTreeMap::new);
            for (k, v) in strings {
                data.insert(k, ByteString(v.into_bytes()));
            }
        }
        invalid("Secret", &name, validate_secret(&s))?;
        self.secrets.insert(name, s);
        Ok(())
    }

    /// Only the objects `pod` refers to: what its sandbox keeps.
    pub fn used_by(&self, pod: &Pod) -> Objects {
        let refs = references(pod);
        let pick = |kind: Kind| -> Vec<&str> {
            refs.iter()
                .filter(|r| r.kind == kind)
                .map(|r| r.name.as_str())
                .collect()
        };
        let config_maps = pick(Kind::ConfigMap);
        let secrets = pick(Kind::Secret);
        Objects {
            config_maps: self
                .config_maps
                .iter()
                .filter(|(n, _)| config_maps.contains(&n.as_str()))
                .map(|(n, o)| (n.clone(), o.clone()))
                .collect(),
            secrets: self
                .secrets
                .iter()
                .filter(|(n, _)| secrets.contains(&n.as_str()))
                .map(|(n, o)| (n.clone(), o.clone()))
                .collect(),
        }
    }

    /// The keys of a ConfigMap's `data` (what env can read), or `None` when it is not given.
    fn config_map_keys(&self, name: &str) -> Option<Vec<&str>> {
        let cm = self.config_maps.get(name)?;
        Some(cm.data.iter().flatten().map(|(k, _)| k.as_str()).collect())
    }

    /// The keys a ConfigMap volume can project: `data` and `binaryData`.
    fn config_map_file_keys(&self, name: &str) -> Option<Vec<&str>> {
        let cm = self.config_maps.get(name)?;
        let data = cm.data.iter().flatten().map(|(k, _)| k.as_str());
        let binary = cm.binary_data.iter().flatten().map(|(k, _)| k.as_str());
        Some(data.chain(binary).collect())
    }

    fn secret_keys(&self, name: &str) -> Option<Vec<&str>> {
        let s = self.secrets.get(name)?;
        Some(s.data.iter().flatten().map(|(k, _)| k.as_str()).collect())
    }

    /// Each reference of `pod` to an object or key not given here (and not `optional`),
    /// worded as the kubelet reports it.
    pub fn missing(&self, pod: &Pod) -> Vec<FieldError> {
        let namespace = crate::downward::namespace(pod);
        let mut errors = Vec::new();
        for r in references(pod) {
            let keys = match (r.kind, r.file_keys) {
                (Kind::ConfigMap, false) => self.config_map_keys(&r.name),
                (Kind::ConfigMap, true) => self.config_map_file_keys(&r.name),
                (Kind::Secret, _) => self.secret_keys(&r.name),
            };
            let (plural, kind) = match r.kind {
                Kind::ConfigMap => ("configmaps", "ConfigMap"),
                Kind::Secret => ("secrets", "Secret"),
            };
            match (keys, &r.key) {
                _ if r.optional => {}
                (None, _) => errors.push(FieldError::new(
                    &r.path,
                    format!("{plural} {:?} not found", r.name),
                )),
                (Some(keys), Some(key)) if !keys.contains(&key.as_str()) => {
                    errors.push(FieldError::new(
                        &r.path,
                        format!("couldn't find key {key} in {kind} {namespace}/{}", r.name),
                    ))
                }
                _ => {}
            }
        }
        errors
    }

    /// The objects as JSON, for the pod's state (Secrets included: the caller keeps it off
    /// disk).
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }

    /// Reads what [`Objects::to_json`] wrote.
    pub fn from_json(bytes: &[u8]) -> serde_json::Result<Objects> {
        serde_json::from_slice(bytes)
    }
}

/// `Invalid` with the kind's name when there are errors.
fn invalid(kind: &'static str, name: &str, errors: Vec<FieldError>) -> Result<(), ManifestError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ManifestError::Invalid {
            kind,
            name: name.to_owned(),
            errors,
        })
    }
}

/// Validates a PersistentVolumeClaim: the API server's rules (`ValidatePersistentVolumeClaim`)
/// and what a claim backed by a local directory can honour.
pub(super) fn validate_claim(pvc: &PersistentVolumeClaim) -> Result<(), ManifestError> {
    const MODES: &[&str] = &[
        "ReadOnlyMany",
        "ReadWriteMany",
        "ReadWriteOnce",
        "ReadWriteOncePod",
    ];
    let mut v = Errors::default();
    v.object_name(&pvc.metadata);
    let name = pvc.metadata.name.clone().unwrap_or_default();
    let Some(spec) = &pvc.spec else {
        v.push(
            "spec.accessModes",
            "Required value: at least 1 access mode is required",
        );
        v.push("spec.resources[storage]", "Required value");
        return invalid("PersistentVolumeClaim", &name, v.into_errors());
    };
    let modes = spec.access_modes.as_deref().unwrap_or_default();
    if modes.is_empty() {
        v.push(
            "spec.accessModes",
            "Required value: at least 1 access mode is required",
        );
    }
    for mode in modes {
        if !MODES.contains(&mode.as_str()) {
            v.unsupported("spec.accessModes", mode, MODES);
        }
    }
    if modes.len() > 1 && modes.iter().any(|m| m == "ReadWriteOncePod") {
        v.push(
            "spec.accessModes",
            "Forbidden: may not use ReadWriteOncePod with other access modes",
        );
    }
    match spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
    {
        None => v.push("spec.resources[storage]", "Required value"),
        Some(q) => match super::quantity_bytes(q) {
            Ok(0) => v.invalid("spec.resources[storage]", &q.0, "must be greater than zero"),
            Ok(_) => {}
            Err(e) => v.invalid("spec.resources[storage]", &q.0, &e.to_string()),
        },
    }
    v.one_of(
        "spec.volumeMode",
        spec.volume_mode.as_deref(),
        &["Block", "Filesystem"],
    );
    // A local directory is a filesystem, made empty: nothing to bind to or copy from.
    if spec.volume_mode.as_deref() == Some("Block") {
        v.push("spec.volumeMode", "Forbidden: not supported by podctl yet");
    }
    let refused = [
        ("dataSource", spec.data_source.is_some()),
        ("dataSourceRef", spec.data_source_ref.is_some()),
        ("selector", spec.selector.is_some()),
        (
            "volumeName",
            spec.volume_name.as_deref().is_some_and(|n| !n.is_empty()),
        ),
        (
            "volumeAttributesClassName",
            spec.volume_attributes_class_name.is_some(),
        ),
        (
            "resources.limits",
            spec.resources
                .as_ref()
                .and_then(|r| r.limits.as_ref())
                .is_some_and(|l| !l.is_empty()),
        ),
    ];
    for (field, set) in refused {
        if set {
            v.push(
                format!("spec.{field}"),
                "Forbidden: not supported by podctl yet",
            );
        }
    }
    invalid("PersistentVolumeClaim", &name, v.into_errors())
}

fn validate_config_map(cm: &ConfigMap) -> Vec<FieldError> {
    let mut v = Errors::default();
    v.object_name(&cm.metadata);
    let mut size = 0;
    for (key, value) in cm.data.iter().flatten() {
        let path = format!("data[{key}]");
        config_key(&mut v, &path, key);
        if cm.binary_data.as_ref().is_some_and(|b| b.contains_key(key)) {
            v.invalid(&path, key, "duplicate of key present in binaryData");
        }
        size += value.len();
    }
    for (key, value) in cm.binary_data.iter().flatten() {
        config_key(&mut v, &format!("binaryData[{key}]"), key);
        size += value.0.len();
    }
    if size > MAX_SIZE {
        v.push("", format!("Too long: must have at most {MAX_SIZE} bytes"));
    }
    v.into_errors()
}

/// The API server's Secret rules, over `data` with `stringData` merged in.
fn validate_secret(s: &Secret) -> Vec<FieldError> {
    let mut v = Errors::default();
    v.object_name(&s.metadata);
    let data = s.data.clone().unwrap_or_default();
    let mut size = 0;
    for (key, value) in &data {
        config_key(&mut v, &format!("data[{key}]"), key);
        size += value.0.len();
    }
    if size > MAX_SIZE {
        v.push(
            "data",
            format!("Too long: must have at most {MAX_SIZE} bytes"),
        );
    }
    let required = |v: &mut Errors, key: &str| {
        if !data.contains_key(key) {
            v.push(format!("data[{key}]"), "Required value");
        }
    };
    let json = |v: &mut Errors, key: &str| {
        if let Some(value) = data.get(key) {
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(&value.0) {
                v.push(
                    format!("data[{key}]"),
                    format!("Invalid value: \"<secret contents redacted>\": {e}"),
                );
            }
        }
    };
    match s.type_.as_deref().unwrap_or("Opaque") {
        "" | "Opaque" => {}
        "kubernetes.io/tls" => {
            required(&mut v, "tls.crt");
            required(&mut v, "tls.key");
        }
        "kubernetes.io/basic-auth"
            if !data.contains_key("username") && !data.contains_key("password") =>
        {
            required(&mut v, "username");
            required(&mut v, "password");
        }
        "kubernetes.io/ssh-auth" => required(&mut v, "ssh-privatekey"),
        "kubernetes.io/dockercfg" => {
            required(&mut v, ".dockercfg");
            json(&mut v, ".dockercfg");
        }
        "kubernetes.io/dockerconfigjson" => {
            required(&mut v, ".dockerconfigjson");
            json(&mut v, ".dockerconfigjson");
        }
        // A token the cluster would mint for a ServiceAccount podctl does not have.
        "kubernetes.io/service-account-token" | "bootstrap.kubernetes.io/token" => {
            v.push("type", "Forbidden: not supported by podctl yet");
        }
        // Any other type is the user's own, as the API server allows.
        _ => {}
    }
    v.into_errors()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ConfigMap,
    Secret,
}

/// One reference of a pod to an object, with the field that makes it.
struct Reference {
    path: String,
    kind: Kind,
    name: String,
    /// A key that must be in it, when the reference names one.
    key: Option<String>,
    optional: bool,
    /// A volume projects binaryData too; env reads only data.
    file_keys: bool,
}

/// Every reference of `pod` to a ConfigMap or Secret, in the order of the manifest.
fn references(pod: &Pod) -> Vec<Reference> {
    let mut out = Vec::new();
    let Some(spec) = &pod.spec else {
        return out;
    };
    let containers = [
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
        ),
        ("containers", spec.containers.as_slice()),
    ];
    for (field, list) in containers {
        for (i, c) in list.iter().enumerate() {
            let path = format!("spec.{field}[{i}]");
            for (j, e) in c.env_from.iter().flatten().enumerate() {
                if let Some(r) = &e.config_map_ref {
                    out.push(Reference {
                        path: format!("{path}.envFrom[{j}].configMapRef"),
                        kind: Kind::ConfigMap,
                        name: r.name.clone(),
                        key: None,
                        optional: r.optional.unwrap_or(false),
                        file_keys: false,
                    });
                }
                if let Some(r) = &e.secret_ref {
                    out.push(Reference {
                        path: format!("{path}.envFrom[{j}].secretRef"),
                        kind: Kind::Secret,
                        name: r.name.clone(),
                        key: None,
                        optional: r.optional.unwrap_or(false),
                        file_keys: false,
                    });
                }
            }
            for (j, e) in c.env.iter().flatten().enumerate() {
                let Some(from) = &e.value_from else { continue };
                if let Some(r) = &from.config_map_key_ref {
                    out.push(Reference {
                        path: format!("{path}.env[{j}].valueFrom.configMapKeyRef"),
                        kind: Kind::ConfigMap,
                        name: r.name.clone(),
                        key: Some(r.key.clone()),
                        optional: r.optional.unwrap_or(false),
                        file_keys: false,
                    });
                }
                if let Some(r) = &from.secret_key_ref {
                    out.push(Reference {
                        path: format!("{path}.env[{j}].valueFrom.secretKeyRef"),
                        kind: Kind::Secret,
                        name: r.name.clone(),
                        key: Some(r.key.clone()),
                        optional: r.optional.unwrap_or(false),
                        file_keys: false,
                    });
                }
            }
        }
    }
    for (i, vol) in spec.volumes.iter().flatten().enumerate() {
        volume_references(&mut out, &format!("spec.volumes[{i}]"), vol);
    }
    out
}

fn volume_references(out: &mut Vec<Reference>, path: &str, vol: &Volume) {
    let mut push =
        |path: String, kind, name: &str, items: Option<Vec<String>>, optional| match items {
            Some(keys) if !keys.is_empty() => {
                for (k, key) in keys.into_iter().enumerate() {
                    out.push(Reference {
                        path: format!("{path}.items[{k}].key"),
                        kind,
                        name: name.to_owned(),
                        key: Some(key),
                        optional,
                        file_keys: true,
                    });
                }
            }
            _ => out.push(Reference {
                path,
                kind,
                name: name.to_owned(),
                key: None,
                optional,
                file_keys: true,
            }),
        };
    let keys = |items: &Option<Vec<k8s_openapi::api::core::v1::KeyToPath>>| {
        items
            .as_ref()
            .map(|items| items.iter().map(|i| i.key.clone()).collect())
    };
    if let Some(cm) = &vol.config_map {
        push(
            format!("{path}.configMap"),
            Kind::ConfigMap,
            &cm.name,
            keys(&cm.items),
            cm.optional.unwrap_or(false),
        );
    }
    if let Some(s) = &vol.secret {
        push(
            format!("{path}.secret"),
            Kind::Secret,
            s.secret_name.as_deref().unwrap_or_default(),
            keys(&s.items),
            s.optional.unwrap_or(false),
        );
    }
    if let Some(p) = &vol.projected {
        for (i, source) in p.sources.iter().flatten().enumerate() {
            let path = format!("{path}.projected.sources[{i}]");
            if let Some(cm) = &source.config_map {
                push(
                    format!("{path}.configMap"),
                    Kind::ConfigMap,
                    &cm.name,
                    keys(&cm.items),
                    cm.optional.unwrap_or(false),
                );
            }
            if let Some(s) = &source.secret {
                push(
                    format!("{path}.secret"),
                    Kind::Secret,
                    &s.name,
                    keys(&s.items),
                    s.optional.unwrap_or(false),
                );
            }
        }
    }
}
