//! Strict decoding of a manifest file's documents into Kubernetes objects.
//!
//! The text is cut into YAML documents first (at `---` and `...` lines, which YAML forbids
//! inside any scalar at column 0), so every error keeps its line in the file. Each document
//! then gets two passes: a generic one (YAML syntax, `apiVersion` and `kind`, which
//! `k8s-openapi` would accept missing) and a typed one into the kind's `k8s-openapi` type
//! that records every key the schema does not know (`k8s-openapi` drops them silently) and
//! the path of a wrongly typed value.

use std::borrow::Cow;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret};
use serde::de::DeserializeOwned;
use serde_saphyr::MessageFormatter;

use super::error::{FieldError, ManifestError};
use super::Pod;

/// One object of a file, decoded.
#[derive(Debug)]
pub(super) enum Object {
    Pod(Box<Pod>),
    ConfigMap(Box<ConfigMap>),
    Secret(Box<Secret>),
    Claim(Box<PersistentVolumeClaim>),
    /// A Deployment, ReplicaSet, StatefulSet, DaemonSet, Job or CronJob.
    Workload(Workload),
    /// A kind podctl has no use for on one host (a Service ...), skipped with a warning.
    Skipped {
        kind: String,
        name: String,
    },
}

/// A workload object as decoded.
#[derive(Debug)]
pub(super) enum Workload {
    Deployment(Box<Deployment>),
    ReplicaSet(Box<ReplicaSet>),
    StatefulSet(Box<StatefulSet>),
    DaemonSet(Box<DaemonSet>),
    Job(Box<Job>),
    CronJob(Box<CronJob>),
}

/// A decoded document and where it is.
#[derive(Debug)]
pub(super) struct Document {
    /// Names the document in messages: the file, and which document when it has several.
    pub location: String,
    pub object: Object,
}

/// What podctl does with a kind.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Handling {
    Read,
    /// Cluster plumbing with no meaning for pods on one host.
    Skip,
}

/// Every kind podctl recognizes, with its `apiVersion`.
const KINDS: &[(&str, &str, Handling)] = &[
    ("v1", "Pod", Handling::Read),
    ("v1", "ConfigMap", Handling::Read),
    ("v1", "Secret", Handling::Read),
    ("v1", "PersistentVolumeClaim", Handling::Read),
    ("apps/v1", "Deployment", Handling::Read),
    ("apps/v1", "StatefulSet", Handling::Read),
    ("apps/v1", "DaemonSet", Handling::Read),
    ("apps/v1", "ReplicaSet", Handling::Read),
    ("batch/v1", "Job", Handling::Read),
    ("batch/v1", "CronJob", Handling::Read),
    ("v1", "Service", Handling::Skip),
    ("v1", "ServiceAccount", Handling::Skip),
    ("v1", "Namespace", Handling::Skip),
    ("v1", "Endpoints", Handling::Skip),
    ("v1", "LimitRange", Handling::Skip),
    ("v1", "ResourceQuota", Handling::Skip),
    ("v1", "PersistentVolume", Handling::Skip),
    ("networking.k8s.io/v1", "Ingress", Handling::Skip),
    ("networking.k8s.io/v1", "IngressClass", Handling::Skip),
    ("networking.k8s.io/v1", "NetworkPolicy", Handling::Skip),
    ("discovery.k8s.io/v1", "EndpointSlice", Handling::Skip),
    ("policy/v1", "PodDisruptionBudget", Handling::Skip),
    ("autoscaling/v2", "HorizontalPodAutoscaler", Handling::Skip),
    ("autoscaling/v1", "HorizontalPodAutoscaler", Handling::Skip),
    ("rbac.authorization.k8s.io/v1", "Role", Handling::Skip),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        Handling::Skip,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        Handling::Skip,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        Handling::Skip,
    ),
    ("storage.k8s.io/v1", "StorageClass", Handling::Skip),
    ("scheduling.k8s.io/v1", "PriorityClass", Handling::Skip),
];

/// Decodes every document of `text`; `file` names it in errors. Empty documents (a leading
/// or trailing `---`, comments only) are skipped, as kubectl skips them. Every document is
/// decoded, and the errors of all of them are reported together.
pub(super) fn parse(text: &str, file: &str) -> Result<Vec<Document>, ManifestError> {
    let chunks = split_documents(text);
    let mut documents = Vec::new();
    let mut errors = Vec::new();
    let mut generic = Vec::new();
    for chunk in &chunks {
        match serde_saphyr::from_str_with_options::<serde_json::Value>(chunk.text, yaml_options()) {
            Ok(serde_json::Value::Null) => {}
            Ok(root) => generic.push((chunk, root)),
            Err(e) => errors.push(yaml_error(&e, chunk, file)),
        }
    }
    let several = generic.len() > 1;
    for (n, (chunk, root)) in generic.iter().enumerate() {
        let location = if several {
            let named = |key| root.get("metadata")?.get(key)?.as_str();
            match (root.get("kind").and_then(|k| k.as_str()), named("name")) {
                (Some(kind), Some(name)) => format!("{file}, document {} ({kind} {name:?})", n + 1),
                _ => format!("{file}, document {}", n + 1),
            }
        } else {
            file.to_owned()
        };
        match document(chunk, root, file, location) {
            Ok(d) => documents.push(d),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 if documents.is_empty() => Err(ManifestError::Empty {
            file: file.to_owned(),
        }),
        0 => Ok(documents),
        1 => Err(errors.remove(0)),
        _ => Err(ManifestError::Several(errors)),
    }
}

/// How manifests are read: as kubectl reads them (YAML 1.1 integers, so the ubiquitous
/// `defaultMode: 0400` is octal 256, not an error).
fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.legacy_octal_numbers = true;
    options
}

/// One document's text and the line of the file it starts on (0-based).
struct Chunk<'t> {
    text: &'t str,
    first_line: u64,
    /// Whether anything but markers, directives and comments is in it.
    has_content: bool,
}

/// Cuts `text` at its document markers. A `---` line starts a new document (and stays in
/// it: it may carry content); a `...` line ends one. Markers before any content (directives,
/// comments) do not cut.
fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let marker = |line: &str, m: &str| {
        line.strip_prefix(m)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
    };
    let content = |line: &str| {
        let t = line.trim();
        !(t.is_empty() || t.starts_with('#') || t.starts_with('%') || t == "---")
    };
    let mut chunks = Vec::new();
    let (mut start, mut start_line, mut has_content) = (0, 0u64, false);
    let mut offset = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let n = n as u64;
        if marker(line, "---") && has_content {
            chunks.push(Chunk {
                text: &text[start..offset],
                first_line: start_line,
                has_content,
            });
            (start, start_line, has_content) = (offset, n, false);
        }
        if marker(line, "...") {
            chunks.push(Chunk {
                text: &text[start..offset],
                first_line: start_line,
                has_content,
            });
            (start, start_line, has_content) = (offset + line.len(), n + 1, false);
        } else if content(line) || (marker(line, "---") && content(&line[3..])) {
            has_content = true;
        }
        offset += line.len();
    }
    chunks.push(Chunk {
        text: &text[start..],
        first_line: start_line,
        has_content,
    });
    chunks.retain(|c| c.has_content);
    chunks
}

/// Checks a document's header and decodes it as its kind.
fn document(
    chunk: &Chunk<'_>,
    root: &serde_json::Value,
    file: &str,
    location: String,
) -> Result<Document, ManifestError> {
    let Some(map) = root.as_object() else {
        // The typed pass reports the wrong type with its line.
        decode::<Pod>(chunk, file, &location)?;
        unreachable!("a document that is not a mapping cannot decode as a Pod");
    };
    let (_, kind) = check_header(map, &location)?;
    let object = match kind {
        "Pod" => Object::Pod(Box::new(decode(chunk, file, &location)?)),
        "ConfigMap" => Object::ConfigMap(Box::new(decode(chunk, file, &location)?)),
        "Secret" => Object::Secret(Box::new(decode(chunk, file, &location)?)),
        "PersistentVolumeClaim" => Object::Claim(Box::new(decode(chunk, file, &location)?)),
        "Deployment" => workload(Workload::Deployment(Box::new(decode(
            chunk, file, &location,
        )?))),
        "ReplicaSet" => workload(Workload::ReplicaSet(Box::new(decode(
            chunk, file, &location,
        )?))),
        "StatefulSet" => workload(Workload::StatefulSet(Box::new(decode(
            chunk, file, &location,
        )?))),
        "DaemonSet" => workload(Workload::DaemonSet(Box::new(decode(
            chunk, file, &location,
        )?))),
        "Job" => workload(Workload::Job(Box::new(decode(chunk, file, &location)?))),
        "CronJob" => workload(Workload::CronJob(Box::new(decode(chunk, file, &location)?))),
        _ => {
            let name = map
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .to_owned();
            Object::Skipped {
                kind: kind.to_owned(),
                name,
            }
        }
    };
    Ok(Document { location, object })
}

fn workload(w: Workload) -> Object {
    Object::Workload(w)
}

/// Decodes one document strictly into `T`.
fn decode<T: DeserializeOwned>(
    chunk: &Chunk<'_>,
    file: &str,
    location: &str,
) -> Result<T, ManifestError> {
    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let result =
        serde_saphyr::with_deserializer_from_str_with_options(chunk.text, yaml_options(), |de| {
            let de = serde_path_to_error::Deserializer::new(de, &mut track);
            serde_ignored::deserialize::<_, _, T>(de, |path| unknown.push(ignored_path(&path)))
        });
    let object = match result {
        Ok(object) => object,
        Err(e) => {
            let path = error_path(&track.path());
            return Err(wrong_type(&e, chunk, file, path));
        }
    };
    // `status` is ignored (see the module docs), so is what this schema version lacks in it.
    unknown.retain(|p: &String| {
        p != "status" && !p.starts_with("status.") && !p.starts_with("status[")
    });
    if !unknown.is_empty() {
        return Err(ManifestError::UnknownFields {
            file: location.to_owned(),
            errors: unknown
                .into_iter()
                .map(|p| FieldError::new(p, "unknown field"))
                .collect(),
        });
    }
    Ok(object)
}

/// `k8s-openapi` accepts a document without `apiVersion`/`kind`; kubectl does not. Returns
/// both once they name a kind podctl knows.
fn check_header<'v>(
    map: &'v serde_json::Map<String, serde_json::Value>,
    location: &str,
) -> Result<(&'v str, &'v str), ManifestError> {
    let mut errors = Vec::new();
    let mut field = |key: &str| match map.get(key) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.as_str()),
        None | Some(serde_json::Value::Null) | Some(serde_json::Value::String(_)) => {
            errors.push(FieldError::new(key, "Required value"));
            None
        }
        Some(other) => {
            errors.push(FieldError::new(
                key,
                format!("Invalid value: {}: must be a string", json_scalar(other)),
            ));
            None
        }
    };
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    if let (Some(api_version), Some(kind)) = (api_version, kind) {
        let versions: Vec<&str> = KINDS
            .iter()
            .filter(|(_, k, _)| *k == kind)
            .map(|(v, _, _)| *v)
            .collect();
        if versions.is_empty() {
            let kinds: Vec<String> = KINDS
                .iter()
                .filter(|(_, _, h)| *h == Handling::Read)
                .map(|(_, k, _)| format!("{k:?}"))
                .collect();
            errors.push(FieldError::new(
                "kind",
                format!(
                    "Unsupported value: {kind:?}: podctl reads {} (and skips cluster objects such as Service)",
                    kinds.join(", ")
                ),
            ));
        } else if !versions.contains(&api_version) {
            let supported: Vec<String> = versions.iter().map(|v| format!("{v:?}")).collect();
            errors.push(FieldError::new(
                "apiVersion",
                format!(
                    "Unsupported value: {api_version:?}: supported values for kind {kind}: {}",
                    supported.join(", ")
                ),
            ));
        } else {
            return Ok((api_version, kind));
        }
    }
    Err(ManifestError::BadHeader {
        file: location.to_owned(),
        errors,
    })
}

/// A value as kubectl quotes it in `Unsupported value: "x"`.
fn json_scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Maps an error of the generic pass: the text is not (one document of) YAML.
fn yaml_error(e: &serde_saphyr::Error, chunk: &Chunk<'_>, file: &str) -> ManifestError {
    let (line, column) = location(e, chunk);
    ManifestError::Syntax {
        file: file.to_owned(),
        line,
        column,
        message: message(e, chunk.text),
    }
}

fn wrong_type(
    e: &serde_saphyr::Error,
    chunk: &Chunk<'_>,
    file: &str,
    path: String,
) -> ManifestError {
    let (line, column) = location(e, chunk);
    ManifestError::WrongType {
        file: file.to_owned(),
        path,
        message: message(e, chunk.text),
        line,
        column,
    }
}

/// Line (of the whole file) and column an error points at.
fn location(e: &serde_saphyr::Error, chunk: &Chunk<'_>) -> (u64, u64) {
    e.location()
        .map_or((0, 0), |l| (l.line() + chunk.first_line, l.column()))
}

/// The message alone: our errors print the location and path themselves.
fn message(e: &serde_saphyr::Error, text: &str) -> String {
    let inner = e.without_snippet();
    let msg: Cow<'_, str> = match (inner, scalar_at(e, text)) {
        // serde-saphyr says only "invalid i32"; name the value as serde would.
        (serde_saphyr::Error::InvalidScalar { ty, .. }, Some(value)) => {
            if value.parse::<f64>().is_ok() {
                Cow::Owned(format!("invalid value: {value}, expected {ty}"))
            } else {
                Cow::Owned(format!("invalid type: string {value:?}, expected {ty}"))
            }
        }
        _ => serde_saphyr::UserMessageFormatter.format_message(inner),
    };
    // The text can quote input; keep a hostile value from writing control characters.
    msg.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// The source text an error points at, when it is a one-line scalar.
fn scalar_at<'t>(e: &serde_saphyr::Error, text: &'t str) -> Option<&'t str> {
    let span = e.location()?.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len()?).ok()?;
    let raw = text.get(start..start.checked_add(len)?)?;
    let value = raw.trim_matches(|c| c == '"' || c == '\'');
    (!value.is_empty() && !value.contains('\n')).then_some(value)
}

/// `spec.?.containers.?.0.volumeMount` as kubectl writes it: `spec.containers[0].volumeMount`.
fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    fn walk(path: &serde_ignored::Path<'_>, out: &mut String) {
        use serde_ignored::Path;
        match path {
            Path::Root => {}
            Path::Seq { parent, index } => {
                walk(parent, out);
                out.push_str(&format!("[{index}]"));
            }
            Path::Map { parent, key } => {
                walk(parent, out);
                push_key(out, key);
            }
            Path::Some { parent }
            | Path::NewtypeStruct { parent }
            | Path::NewtypeVariant { parent } => walk(parent, out),
        }
    }
    let mut out = String::new();
    walk(path, &mut out);
    out
}

/// The path of a wrongly typed value, in the same notation as [`ignored_path`].
fn error_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => push_key(&mut out, key),
            Segment::Enum { variant } => push_key(&mut out, variant),
            Segment::Unknown => push_key(&mut out, "?"),
        }
    }
    out
}

/// Appends a map key; keys that are not plain names (label keys such as
/// `app.kubernetes.io/name`) are bracketed, as the API server does.
fn push_key(out: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(key);
    } else {
        out.push_str(&format!("[{key}]"));
    }
}
