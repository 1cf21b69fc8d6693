//! The few fields of OCI and Docker image documents podctl follows.
//!
//! Own lenient structs rather than `oci_spec`'s: the same shapes must read OCI and Docker
//! schema2 documents alike, and unknown fields or media types must pass through untouched.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::unpack::chain_ids;
use crate::containerd::labels;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Full image name as containerd writes it into an exported index.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// OCI's reference annotation: usually a bare tag, sometimes a full reference.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image manifest (OCI or Docker schema2).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// An image index (OCI) or manifest list (Docker); also the shape of a layout's `index.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// The parts of an image config used to pick a platform and chain layers.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfigHead {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

pub fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

/// The platform podctl runs containers for, in Go's names (what image platforms use).
pub fn host_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "loongarch64" => "loong64",
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        other => other,
    };
    Platform {
        architecture: architecture.to_string(),
        os: std::env::consts::OS.to_string(),
        variant: None,
    }
}

/// Whether an image for `p` runs on the host: same os and architecture (variants are only a
/// preference, see [`pick_platform`]).
pub fn matches_host(p: &Platform) -> bool {
    let host = host_platform();
    p.os == host.os && p.architecture == host.architecture
}

/// Picks the host's entry among `candidates` (each with its platform, when known); an entry
/// without a variant wins over one with, so a plain image beats an exotic sub-architecture.
pub fn pick_platform<T>(candidates: Vec<(T, Option<Platform>)>) -> Result<T, Vec<String>> {
    let mut available = Vec::new();
    let mut best: Option<(T, bool)> = None;
    for (item, platform) in candidates {
        match platform {
            Some(p) if matches_host(&p) => {
                let plain = p
                    .variant
                    .as_deref()
                    .is_none_or(|v| v.is_empty() || v == "v8");
                if best
                    .as_ref()
                    .is_none_or(|(_, best_plain)| plain && !best_plain)
                {
                    best = Some((item, plain));
                }
            }
            Some(p) => available.push(p.to_string()),
            None => available.push("unknown".to_string()),
        }
    }
    best.map(|(item, _)| item).ok_or(available)
}

/// The host's entry of an index, with its position; `what` names the index in the error that
/// lists the platforms it has otherwise.
pub(crate) fn pick_from_index(
    index: &Index,
    what: impl FnOnce() -> String,
) -> Result<(usize, Descriptor), super::ImageError> {
    let candidates = index
        .manifests
        .iter()
        .enumerate()
        .map(|(i, m)| ((i, m.clone()), m.platform.clone()))
        .collect();
    pick_platform(candidates).map_err(|available| super::ImageError::NoMatchingPlatform {
        what: what(),
        wanted: host_platform().to_string(),
        available,
    })
}

/// gc labels of a layer blob: its uncompressed digest, as containerd records it.
pub(crate) fn layer_labels(diff_id: &str) -> HashMap<String, String> {
    HashMap::from([(labels::UNCOMPRESSED.to_string(), diff_id.to_string())])
}

/// gc labels of an image config: it keeps the top snapshot of its layers alive in
/// `snapshotter`.
pub(crate) fn config_labels(diff_ids: &[String], snapshotter: &str) -> HashMap<String, String> {
    chain_ids(diff_ids)
        .pop()
        .map(|top| (format!("{}.{snapshotter}", labels::GC_REF_SNAPSHOT), top))
        .into_iter()
        .collect()
}

/// gc labels of a manifest: it keeps its config and layers alive.
pub(crate) fn manifest_labels(manifest: &Manifest) -> HashMap<String, String> {
    let mut out = HashMap::from([(
        format!("{}.config", labels::GC_REF_CONTENT),
        manifest.config.digest.clone(),
    )]);
    for (i, l) in manifest.layers.iter().enumerate() {
        out.insert(
            format!("{}.l.{i}", labels::GC_REF_CONTENT),
            l.digest.clone(),
        );
    }
    out
}

/// gc labels of an index: it keeps the manifest chosen from it (entry `i`) alive.
pub(crate) fn index_labels(i: usize, manifest_digest: &str) -> HashMap<String, String> {
    HashMap::from([(
        format!("{}.m.{i}", labels::GC_REF_CONTENT),
        manifest_digest.to_string(),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(os: &str, arch: &str, variant: Option<&str>) -> Option<Platform> {
        Some(Platform {
            architecture: arch.into(),
            os: os.into(),
            variant: variant.map(Into::into),
        })
    }

    #[test]
    fn host_platform_uses_go_names() {
        let host = host_platform();
        assert_eq!(host.os, "linux");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(host.architecture, "amd64");
        }
    }

    #[test]
    fn pick_platform_prefers_the_host_and_names_the_others() {
        let host = host_platform();
        let arch = host.architecture.as_str();
        let picked = pick_platform(vec![
            (1, p("linux", "s390x", None)),
            (2, p("linux", arch, Some("v9"))),
            (3, p("linux", arch, None)),
            (4, p("windows", arch, None)),
        ]);
        assert_eq!(picked, Ok(3));
        let none = pick_platform(vec![(1, p("linux", "s390x", None)), (2, None)]);
        assert_eq!(
            none,
            Err(vec!["linux/s390x".to_string(), "unknown".to_string()])
        );
    }

    #[test]
    fn documents_parse_leniently() {
        let m: Manifest = serde_json::from_str(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
               "config":{"mediaType":"x","digest":"sha256:aa","size":3},
               "layers":[{"mediaType":"y","digest":"sha256:bb","size":4,"urls":["u"]}]}"#,
        )
        .unwrap();
        assert_eq!(m.layers[0].size, 4);
        let c: ConfigHead = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:cc"]},
               "container_config":{}}"#,
        )
        .unwrap();
        assert_eq!(c.rootfs.diff_ids, vec!["sha256:cc"]);
    }
}
