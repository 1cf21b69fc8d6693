//! The pod manifest: reading a `v1 Pod` YAML (or JSON) strictly, and refusing before anything
//! is created what Kubernetes would reject or podctl cannot honour yet.
//!
//! Layers, each reporting every problem it finds rather than the first:
//! - [`parse`]: YAML syntax, one document, `apiVersion: v1` / `kind: Pod`, no unknown keys
//!   (`k8s-openapi` would drop them silently), every value of the right type;
//! - [`validate`]: the API server's rules (kubectl's wording, see K8S-SEMANTICS §10) plus
//!   podctl's own limits: a field podctl does not implement is refused with its path
//!   instead of being ignored.
//!
//! `status` in a manifest (as `kubectl get -o yaml` exports it) is accepted and ignored, as
//! `kubectl apply` ignores it; so is the metadata the API server sets on create (`uid`,
//! `creationTimestamp`, `generation`, `managedFields`, ...): podctl assigns its own uid.

mod error;
mod parse;
mod quantity;
mod sysctls;
mod unsupported;
mod validate;

use std::io::Read;
use std::path::Path;

pub use error::{FieldError, ManifestError};
pub use k8s_openapi::api::core::v1::Pod;
pub use quantity::{quantity_bytes, quantity_milli, QuantityError};
pub use sysctls::with_dots as sysctl_with_dots;

/// Reads a manifest from a file path, or stdin when path is "-".
pub fn load(path: &Path) -> Result<Pod, ManifestError> {
    let (text, source) = read(path)?;
    parse(&text, &source)
}

/// The text of a manifest file (stdin when path is "-") and the name errors give it.
pub fn read(path: &Path) -> Result<(String, String), ManifestError> {
    let read_error = |source| ManifestError::Read {
        path: path.to_owned(),
        source,
    };
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(read_error)?;
        Ok((text, "<stdin>".to_string()))
    } else {
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        Ok((text, path.display().to_string()))
    }
}

/// Parses YAML (or JSON) text strictly; `source` names the file in errors.
pub fn parse(text: &str, source: &str) -> Result<Pod, ManifestError> {
    parse::parse(text, source)
}

/// Runs every validation rule; collects ALL field errors (not just the first).
///
/// Kubernetes' rules come first, then the fields podctl refuses; a field already reported
/// by a rule is not reported again as unsupported.
pub fn validate(pod: &Pod) -> Result<(), ManifestError> {
    let mut errors = validate::rules(pod);
    for e in unsupported::refusals(pod) {
        if !errors.iter().any(|known| known.path == e.path) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ManifestError::Invalid {
            pod: pod.metadata.name.clone().unwrap_or_default(),
            errors,
        })
    }
}

/// load + validate.
pub fn load_valid(path: &Path) -> Result<Pod, ManifestError> {
    let (text, source) = read(path)?;
    parse_valid(&text, &source)
}

/// parse + validate: what `podctl run` accepts, from text.
pub fn parse_valid(text: &str, source: &str) -> Result<Pod, ManifestError> {
    let pod = parse(text, source)?;
    validate(&pod)?;
    Ok(pod)
}

#[cfg(test)]
mod tests;

/// Whether `name` is a DNS-1123 label, the form of pod and container names podctl accepts.
pub fn is_dns_label(name: &str) -> bool {
    validate::dns1123_label(name).is_empty()
}
