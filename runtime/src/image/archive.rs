//! Reading an image tarball into a plan: which blobs to write (verified, in dependency order,
//! with their gc labels) and which image records to create.
//!
//! The tarball is extracted into a private temp dir (removed when the [`Archive`] drops, on
//! every path) so layers are streamed from disk, never held in memory. Everything here is
//! blocking file work: run it on a blocking thread.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::document::{self, ConfigHead, Descriptor, Index, Manifest, Platform};
use super::unpack::{self, Layer};
use super::ImageError;
use crate::reference;

/// Largest JSON document (index, manifest, config) podctl reads into memory.
pub(crate) const MAX_DOCUMENT: u64 = 16 << 20;

/// A blob to write into the content store.
#[derive(Debug)]
pub(crate) struct PlannedBlob {
    pub digest: String,
    pub size: u64,
    pub labels: HashMap<String, String>,
    pub source: BlobSource,
}

#[derive(Debug)]
pub(crate) enum BlobSource {
    /// A verified file of the extracted archive.
    File(PathBuf),
    /// A document podctl synthesized (the manifest of a `docker save` image).
    Bytes(Vec<u8>),
}

/// An image record to create, and what unpacking it needs.
#[derive(Debug)]
pub(crate) struct PlannedImage {
    /// Normalized names, at least one.
    pub names: Vec<String>,
    /// What the record points at: the manifest, or the index it was chosen from.
    pub target: Descriptor,
    pub layers: Vec<Layer>,
    /// Sum of the config and layer sizes of the host's manifest.
    pub size: u64,
}

/// An extracted, verified archive.
#[derive(Debug)]
pub(crate) struct Archive {
    /// Blobs in write order (children before the documents referencing them), each once.
    pub blobs: Vec<PlannedBlob>,
    pub images: Vec<PlannedImage>,
    /// The tarball, for errors.
    pub file: PathBuf,
    /// Kept for its `Drop`, which removes the extracted files.
    _dir: tempfile::TempDir,
}

/// Extracts `file` and plans its import; `name` is the `--name` override.
pub(crate) fn read(
    file: &Path,
    name: Option<&str>,
    snapshotter: &str,
    cancel: &super::Cancel,
) -> Result<Archive, ImageError> {
    let dir = tempfile::Builder::new()
        .prefix("podctl-import-")
        .tempdir()
        .map_err(|source| ImageError::Io {
            action: "creating a temp dir for",
            path: file.to_path_buf(),
            source,
        })?;
    extract(file, dir.path(), cancel)?;
    let root = dir.path().canonicalize().map_err(|source| ImageError::Io {
        action: "resolving",
        path: dir.path().to_path_buf(),
        source,
    })?;
    let mut reader = Reader {
        file: file.to_path_buf(),
        root,
        verified: HashSet::new(),
        blobs: Vec::new(),
        snapshotter: snapshotter.to_string(),
    };
    let candidates = if reader.member("index.json").is_some() {
        reader.oci_candidates()?
    } else if reader.member("manifest.json").is_some() {
        reader.docker_candidates()?
    } else {
        return Err(ImageError::NotAnImage {
            file: file.to_path_buf(),
        });
    };
    let images = name_images(file, candidates, name)?;
    let mut blobs = Vec::new();
    let mut index_of: HashMap<String, usize> = HashMap::new();
    for blob in reader.blobs {
        match index_of.get(&blob.digest) {
            Some(&i) => {
                let existing: &mut PlannedBlob = &mut blobs[i];
                existing.labels.extend(blob.labels);
            }
            None => {
                index_of.insert(blob.digest.clone(), blobs.len());
                blobs.push(blob);
            }
        }
    }
    Ok(Archive {
        blobs,
        images,
        file: file.to_path_buf(),
        _dir: dir,
    })
}

/// Unpacks the tarball (plain or gzip, sniffed) into `dir`. Only files, directories and links
/// are extracted, and never outside `dir`: an archive is untrusted input.
fn extract(file: &Path, dir: &Path, cancel: &super::Cancel) -> Result<(), ImageError> {
    let archive_err = |what: &str, source| ImageError::Archive {
        file: file.to_path_buf(),
        what: what.to_string(),
        source,
    };
    let mut input = BufReader::new(File::open(file).map_err(|e| archive_err("opening it", e))?);
    let gzip = {
        let head =
            std::io::BufRead::fill_buf(&mut input).map_err(|e| archive_err("reading it", e))?;
        head.starts_with(&[0x1f, 0x8b])
    };
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(input))
    } else {
        Box::new(input)
    };
    let mut tar = tar::Archive::new(reader);
    tar.set_preserve_permissions(false);
    tar.set_unpack_xattrs(false);
    tar.set_overwrite(true);
    let entries = tar
        .entries()
        .map_err(|e| archive_err("reading its entries", e))?;
    for entry in entries {
        if cancel.is_cancelled() {
            return Err(ImageError::Cancelled {
                file: file.to_path_buf(),
            });
        }
        let mut entry = entry.map_err(|e| archive_err("reading an entry", e))?;
        use tar::EntryType as T;
        match entry.header().entry_type() {
            T::Regular | T::Continuous | T::Directory | T::Symlink | T::Link => {}
            _ => continue,
        }
        let path = entry
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        entry
            .unpack_in(dir)
            .map_err(|e| archive_err(&format!("extracting {path}"), e))?;
    }
    Ok(())
}

/// An image found in the archive, before naming: one per distinct target.
#[derive(Debug)]
struct Candidate {
    /// Name sources of the archive's entries pointing at this target, in archive order.
    names: Vec<NameSource>,
    image: PlannedImage,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum NameSource {
    /// A full reference (to normalize).
    Full(String),
    /// A bare tag, which needs a repository from `--name`.
    Tag(String),
    None,
}

/// Applies `--name` or the archive's names, normalized.
fn name_images(
    file: &Path,
    candidates: Vec<Candidate>,
    name: Option<&str>,
) -> Result<Vec<PlannedImage>, ImageError> {
    let bad_name = |source| ImageError::BadName {
        file: file.to_path_buf(),
        source,
    };
    if let Some(name) = name {
        let normalized = reference::normalize(name).map_err(bad_name)?;
        let mut candidates = candidates;
        if candidates.len() != 1 {
            return Err(ImageError::NameForSeveralImages {
                file: file.to_path_buf(),
                count: candidates.len(),
                digests: candidates
                    .iter()
                    .map(|c| c.image.target.digest.clone())
                    .collect(),
            });
        }
        let mut image = candidates.remove(0).image;
        image.names = vec![normalized];
        return Ok(vec![image]);
    }
    let mut images = Vec::new();
    for candidate in candidates {
        let mut image = candidate.image;
        let mut tag = None;
        for source in candidate.names {
            match source {
                NameSource::Full(n) => {
                    let n = reference::normalize(&n).map_err(bad_name)?;
                    if !image.names.contains(&n) {
                        image.names.push(n);
                    }
                }
                NameSource::Tag(t) => tag = Some(t),
                NameSource::None => {}
            }
        }
        if image.names.is_empty() {
            return Err(ImageError::Unnamed {
                file: file.to_path_buf(),
                digest: image.target.digest,
                tag,
            });
        }
        images.push(image);
    }
    Ok(images)
}

/// How a `docker save` archive lists an image.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

struct Reader {
    file: PathBuf,
    /// Canonical path of the extracted archive.
    root: PathBuf,
    /// Digests whose files were already checked.
    verified: HashSet<String>,
    /// Blobs to write, in order, possibly repeated (merged by the caller).
    blobs: Vec<PlannedBlob>,
    snapshotter: String,
}

impl Reader {
    /// The regular file at `rel` inside the archive, following symlinks only within it.
    fn member(&self, rel: &str) -> Option<PathBuf> {
        let path = self.root.join(rel).canonicalize().ok()?;
        (path.starts_with(&self.root) && path.is_file()).then_some(path)
    }

    fn bad_document(
        &self,
        member: &str,
        kind: &'static str,
    ) -> impl FnOnce(serde_json::Error) -> ImageError {
        let file = self.file.clone();
        let member = member.to_string();
        move |source| ImageError::BadDocument {
            file,
            member,
            kind,
            source,
        }
    }

    fn inconsistent(&self, member: &str, problem: String) -> ImageError {
        ImageError::Inconsistent {
            file: self.file.clone(),
            member: member.to_string(),
            problem,
        }
    }

    fn read_small(&self, path: &Path, member: &str) -> Result<Vec<u8>, ImageError> {
        let f = File::open(path).map_err(|source| ImageError::Archive {
            file: self.file.clone(),
            what: format!("opening {member}"),
            source,
        })?;
        let mut data = Vec::new();
        f.take(MAX_DOCUMENT + 1)
            .read_to_end(&mut data)
            .map_err(|source| ImageError::Archive {
                file: self.file.clone(),
                what: format!("reading {member}"),
                source,
            })?;
        if data.len() as u64 > MAX_DOCUMENT {
            return Err(self.inconsistent(member, format!("larger than {MAX_DOCUMENT} bytes")));
        }
        Ok(data)
    }

    /// The path of the OCI layout blob `digest`, checked against the descriptor.
    fn oci_blob(&mut self, d: &Descriptor, what: &'static str) -> Result<PathBuf, ImageError> {
        let hex = sha256_hex(&self.file, &d.digest)?;
        let path =
            self.member(&format!("blobs/sha256/{hex}"))
                .ok_or_else(|| ImageError::MissingBlob {
                    file: self.file.clone(),
                    digest: d.digest.clone(),
                    what,
                })?;
        if !self.verified.contains(&d.digest) {
            let (actual, actual_size) = hash_file(&self.file, &path)?;
            if actual != hex || actual_size != d.size {
                return Err(ImageError::CorruptBlob {
                    file: self.file.clone(),
                    digest: d.digest.clone(),
                    what,
                    size: d.size,
                    actual_sha256: actual,
                    actual_size,
                });
            }
            self.verified.insert(d.digest.clone());
        }
        Ok(path)
    }

    fn oci_document<T: for<'de> Deserialize<'de>>(
        &mut self,
        d: &Descriptor,
        kind: &'static str,
    ) -> Result<(PathBuf, T), ImageError> {
        let path = self.oci_blob(d, kind)?;
        let data = self.read_small(&path, &d.digest)?;
        let doc = serde_json::from_slice(&data).map_err(self.bad_document(&d.digest, kind))?;
        Ok((path, doc))
    }

    /// The images of an OCI layout: `index.json` entries grouped by name, one platform picked
    /// per group, then one candidate per distinct target.
    fn oci_candidates(&mut self) -> Result<Vec<Candidate>, ImageError> {
        let path = self.member("index.json").expect("checked by the caller");
        let data = self.read_small(&path, "index.json")?;
        let index: Index = serde_json::from_slice(&data)
            .map_err(self.bad_document("index.json", "OCI image index"))?;
        if index.manifests.is_empty() {
            return Err(self.inconsistent("index.json", "lists no image".into()));
        }

        let mut groups: BTreeMap<NameSource, Vec<Descriptor>> = BTreeMap::new();
        let mut order = Vec::new();
        for entry in index.manifests {
            let source = name_source(&entry);
            if !groups.contains_key(&source) {
                order.push(source.clone());
            }
            groups.entry(source).or_default().push(entry);
        }

        let mut candidates: Vec<Candidate> = Vec::new();
        for source in order {
            let entries = groups.remove(&source).unwrap_or_default();
            let target = if entries.len() == 1 {
                entries.into_iter().next().expect("one entry")
            } else {
                let mut with_platform = Vec::new();
                for e in entries {
                    let p = self.entry_platform(&e)?;
                    with_platform.push((e, p));
                }
                document::pick_platform(with_platform).map_err(|available| {
                    ImageError::NoMatchingPlatform {
                        what: format!("{}: index.json", self.file.display()),
                        wanted: document::host_platform().to_string(),
                        available,
                    }
                })?
            };
            match candidates
                .iter_mut()
                .find(|c| c.image.target.digest == target.digest)
            {
                Some(c) => c.names.push(source),
                None => {
                    let image = self.oci_image(target)?;
                    candidates.push(Candidate {
                        names: vec![source],
                        image,
                    });
                }
            }
        }
        Ok(candidates)
    }

    /// The platform of an index entry: its descriptor's, else its config's.
    fn entry_platform(&mut self, d: &Descriptor) -> Result<Option<Platform>, ImageError> {
        if d.platform.is_some() || !document::is_manifest(&d.media_type) {
            return Ok(d.platform.clone());
        }
        let (_, manifest): (_, Manifest) = self.oci_document(d, "manifest")?;
        let (_, config): (_, ConfigHead) = self.oci_document(&manifest.config, "config")?;
        Ok(Some(Platform {
            architecture: config.architecture,
            os: config.os,
            variant: config.variant,
        }))
    }

    /// Plans the blobs of the image `target` (a manifest, or an index to pick from).
    fn oci_image(&mut self, target: Descriptor) -> Result<PlannedImage, ImageError> {
        let manifest_desc = if document::is_index(&target.media_type) {
            let (path, index): (_, Index) = self.oci_document(&target, "index")?;
            let (i, chosen) = document::pick_from_index(&index, || {
                format!("{}: index {}", self.file.display(), target.digest)
            })?;
            let manifest_desc = chosen;
            let planned = self.oci_manifest(&manifest_desc)?;
            self.blobs.push(PlannedBlob {
                digest: target.digest.clone(),
                size: target.size,
                labels: document::index_labels(i, &manifest_desc.digest),
                source: BlobSource::File(path),
            });
            return Ok(PlannedImage {
                names: vec![],
                target,
                layers: planned.0,
                size: planned.1,
            });
        } else if document::is_manifest(&target.media_type) {
            target.clone()
        } else {
            return Err(ImageError::UnsupportedMediaType {
                what: format!("{}: index.json", self.file.display()),
                digest: target.digest,
                media_type: target.media_type,
            });
        };
        let (layers, size) = self.oci_manifest(&manifest_desc)?;
        Ok(PlannedImage {
            names: vec![],
            target,
            layers,
            size,
        })
    }

    /// Verifies and plans a manifest with its config and layers; returns the layers to unpack
    /// and the image size.
    fn oci_manifest(&mut self, d: &Descriptor) -> Result<(Vec<Layer>, u64), ImageError> {
        let (manifest_path, manifest): (_, Manifest) = self.oci_document(d, "manifest")?;
        let (config_path, config): (_, ConfigHead) =
            self.oci_document(&manifest.config, "config")?;
        let mut layer_paths = Vec::new();
        for layer in &manifest.layers {
            layer_paths.push(self.oci_blob(layer, "layer")?);
        }
        let layers = self.layers_of(&d.digest, &manifest, &config)?;
        for (layer, path) in layers.iter().zip(layer_paths) {
            self.push_layer(layer, BlobSource::File(path));
        }
        self.push_config(&manifest.config, &layers, BlobSource::File(config_path));
        self.push_manifest(d, &manifest, BlobSource::File(manifest_path));
        Ok((layers, image_size(&manifest)))
    }

    fn layers_of(
        &self,
        manifest_digest: &str,
        manifest: &Manifest,
        config: &ConfigHead,
    ) -> Result<Vec<Layer>, ImageError> {
        unpack::layers_of(manifest, &config.rootfs.diff_ids)
            .map_err(|problem| self.inconsistent(manifest_digest, problem))
    }

    fn push_layer(&mut self, layer: &Layer, source: BlobSource) {
        self.blobs.push(PlannedBlob {
            digest: layer.digest.clone(),
            size: layer.size,
            labels: document::layer_labels(&layer.diff_id),
            source,
        });
    }

    fn push_config(&mut self, d: &Descriptor, layers: &[Layer], source: BlobSource) {
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
        self.blobs.push(PlannedBlob {
            digest: d.digest.clone(),
            size: d.size,
            labels: document::config_labels(&diff_ids, &self.snapshotter),
            source,
        });
    }

    fn push_manifest(&mut self, d: &Descriptor, manifest: &Manifest, source: BlobSource) {
        self.blobs.push(PlannedBlob {
            digest: d.digest.clone(),
            size: d.size,
            labels: document::manifest_labels(manifest),
            source,
        });
    }

    /// The images of a `docker save` archive, each with a synthesized schema2 manifest.
    fn docker_candidates(&mut self) -> Result<Vec<Candidate>, ImageError> {
        let path = self.member("manifest.json").expect("checked by the caller");
        let data = self.read_small(&path, "manifest.json")?;
        let entries: Vec<DockerEntry> = serde_json::from_slice(&data)
            .map_err(self.bad_document("manifest.json", "docker save manifest"))?;
        if entries.is_empty() {
            return Err(self.inconsistent("manifest.json", "lists no image".into()));
        }
        let mut candidates: Vec<Candidate> = Vec::new();
        for entry in entries {
            let image = self.docker_image(&entry)?;
            let names = match &entry.repo_tags {
                Some(tags) if !tags.is_empty() => {
                    tags.iter().map(|t| NameSource::Full(t.clone())).collect()
                }
                _ => vec![NameSource::None],
            };
            match candidates
                .iter_mut()
                .find(|c| c.image.target.digest == image.target.digest)
            {
                Some(c) => c.names.extend(names),
                None => candidates.push(Candidate { names, image }),
            }
        }
        Ok(candidates)
    }

    fn docker_image(&mut self, entry: &DockerEntry) -> Result<PlannedImage, ImageError> {
        let missing = |what, member: &str| ImageError::MissingBlob {
            file: self.file.clone(),
            digest: member.to_string(),
            what,
        };
        let config_path = self
            .member(&entry.config)
            .ok_or_else(|| missing("config", &entry.config))?;
        let config_data = self.read_small(&config_path, &entry.config)?;
        let config: ConfigHead = serde_json::from_slice(&config_data)
            .map_err(self.bad_document(&entry.config, "image config"))?;
        let config_desc = Descriptor {
            media_type: document::DOCKER_CONFIG.to_string(),
            digest: format!("sha256:{}", hex::encode(Sha256::digest(&config_data))),
            size: config_data.len() as u64,
            annotations: HashMap::new(),
            platform: None,
        };
        let mut layer_descs = Vec::new();
        let mut layer_paths = Vec::new();
        for member in &entry.layers {
            let path = self
                .member(member)
                .ok_or_else(|| missing("layer", member))?;
            let (hex, size) = hash_file(&self.file, &path)?;
            let gzip = is_gzip(&path).map_err(|source| ImageError::Archive {
                file: self.file.clone(),
                what: format!("reading {member}"),
                source,
            })?;
            layer_descs.push(Descriptor {
                media_type: if gzip {
                    document::DOCKER_LAYER_GZIP
                } else {
                    document::DOCKER_LAYER
                }
                .to_string(),
                digest: format!("sha256:{hex}"),
                size,
                annotations: HashMap::new(),
                platform: None,
            });
            layer_paths.push((member.clone(), path, gzip));
        }
        let manifest = Manifest {
            config: config_desc.clone(),
            layers: layer_descs.clone(),
        };
        let layers = self.layers_of("manifest.json", &manifest, &config)?;
        for (layer, (member, path, gzip)) in layers.iter().zip(layer_paths) {
            // An uncompressed layer's digest is its diff id: catch corruption here, naming the
            // member, rather than after unpacking.
            if !gzip && layer.digest != layer.diff_id {
                return Err(self.inconsistent(
                    &member,
                    format!(
                        "layer content is {}, but the image config says its diff id is {}: \
                         the archive is corrupt",
                        layer.digest, layer.diff_id
                    ),
                ));
            }
            self.push_layer(layer, BlobSource::File(path));
        }
        self.push_config(&config_desc, &layers, BlobSource::File(config_path));

        let manifest_json = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": document::DOCKER_MANIFEST,
            "config": {
                "mediaType": config_desc.media_type,
                "size": config_desc.size,
                "digest": config_desc.digest,
            },
            "layers": layer_descs.iter().map(|l| serde_json::json!({
                "mediaType": l.media_type,
                "size": l.size,
                "digest": l.digest,
            })).collect::<Vec<_>>(),
        });
        let bytes = serde_json::to_vec_pretty(&manifest_json).expect("a JSON value serializes");
        let target = Descriptor {
            media_type: document::DOCKER_MANIFEST.to_string(),
            digest: format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
            size: bytes.len() as u64,
            annotations: HashMap::new(),
            platform: None,
        };
        self.push_manifest(&target, &manifest, BlobSource::Bytes(bytes));
        Ok(PlannedImage {
            names: vec![],
            target,
            layers,
            size: image_size(&manifest),
        })
    }
}

fn name_source(entry: &Descriptor) -> NameSource {
    if let Some(n) = entry.annotations.get(document::ANNOTATION_CONTAINERD_NAME) {
        return NameSource::Full(n.clone());
    }
    match entry.annotations.get(document::ANNOTATION_REF_NAME) {
        Some(n) if n.contains(['/', ':', '@']) => NameSource::Full(n.clone()),
        Some(n) => NameSource::Tag(n.clone()),
        None => NameSource::None,
    }
}

pub(crate) fn image_size(manifest: &Manifest) -> u64 {
    manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>()
}

/// The hex part of a sha256 digest; anything else is refused (it also becomes a path).
fn sha256_hex(file: &Path, digest: &str) -> Result<String, ImageError> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) =>
        {
            Ok(hex.to_string())
        }
        _ => Err(ImageError::UnsupportedDigest {
            file: file.to_path_buf(),
            digest: digest.to_string(),
        }),
    }
}

/// sha256 (hex) and size of a file, streamed.
fn hash_file(archive: &Path, path: &Path) -> Result<(String, u64), ImageError> {
    let read_err = |source| ImageError::Archive {
        file: archive.to_path_buf(),
        what: format!("reading {}", path.display()),
        source,
    };
    let mut f = File::open(path).map_err(read_err)?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut f, &mut hasher).map_err(read_err)?;
    Ok((hex::encode(hasher.finalize()), size))
}

fn is_gzip(path: &Path) -> std::io::Result<bool> {
    let mut magic = [0u8; 2];
    let mut f = File::open(path)?;
    let mut n = 0;
    while n < 2 {
        let r = f.read(&mut magic[n..])?;
        if r == 0 {
            break;
        }
        n += r;
    }
    Ok(n == 2 && magic == [0x1f, 0x8b])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(annotations: &[(&str, &str)]) -> Descriptor {
        Descriptor {
            media_type: document::OCI_MANIFEST.into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            size: 1,
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            platform: None,
        }
    }

    #[test]
    fn names_come_from_containerd_then_ref_annotations() {
        let both = descriptor(&[
            (
                document::ANNOTATION_CONTAINERD_NAME,
                "docker.io/library/a:1",
            ),
            (document::ANNOTATION_REF_NAME, "1"),
        ]);
        assert_eq!(
            name_source(&both),
            NameSource::Full("docker.io/library/a:1".into())
        );
        let tag = descriptor(&[(document::ANNOTATION_REF_NAME, "1.0")]);
        assert_eq!(name_source(&tag), NameSource::Tag("1.0".into()));
        let full = descriptor(&[(document::ANNOTATION_REF_NAME, "quay.io/a/b:1")]);
        assert_eq!(name_source(&full), NameSource::Full("quay.io/a/b:1".into()));
        assert_eq!(name_source(&descriptor(&[])), NameSource::None);
    }

    #[test]
    fn digests_that_are_not_plain_sha256_hex_are_refused() {
        let file = Path::new("x.tar");
        assert!(sha256_hex(file, &format!("sha256:{}", "0".repeat(64))).is_ok());
        for bad in [
            "sha256:../../etc/passwd".to_string(),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha512:{}", "0".repeat(128)),
            "0".repeat(64),
        ] {
            assert!(
                matches!(
                    sha256_hex(file, &bad),
                    Err(ImageError::UnsupportedDigest { .. })
                ),
                "{bad}"
            );
        }
    }

    /// A `docker save` archive whose layer is a symlink out of the archive must not read the
    /// host's file.
    #[test]
    fn members_cannot_escape_the_archive_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let tar_path = dir.path().join("evil.tar");
        let mut b = tar::Builder::new(File::create(&tar_path).unwrap());
        let add = |b: &mut tar::Builder<File>, name: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data).unwrap();
        };
        add(
            &mut b,
            "manifest.json",
            br#"[{"Config":"c.json","RepoTags":["evil:1"],"Layers":["l/layer.tar"]}]"#,
        );
        add(
            &mut b,
            "c.json",
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:00"]}}"#,
        );
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "l/layer.tar", "/etc/passwd").unwrap();
        b.finish().unwrap();
        drop(b);

        let err = read(
            &tar_path,
            None,
            "overlayfs",
            &super::super::Cancel::default(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, ImageError::MissingBlob { digest, .. } if digest == "l/layer.tar"),
            "{err:?}"
        );
    }
}
