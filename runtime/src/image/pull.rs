//! Pulling an image from its registry into containerd, stored exactly as an import stores it:
//! documents and layers in the content store under one lease, with the gc labels that tie
//! them to the image record; layers unpacked into snapshots; the record written last.
//!
//! Layers already in the content store are not downloaded again. The others download
//! concurrently, each streamed straight into a content-store write that containerd commits
//! only with the expected digest and size; podctl checks both as the bytes arrive too, so a
//! corrupt or truncated blob is named before containerd sees its end. On any failure the
//! writes are aborted and the lease dropped, leaving no record and no content behind.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;

use super::archive::MAX_DOCUMENT;
use super::document::{self, ConfigHead, Index, Manifest};
use super::registry::{RegistryConfig, Remote};
use super::unpack::{self, Layer};
use super::{create_lease, release_lease, Cancel, ImageError, Progress};
use crate::containerd::{Client, Descriptor, Lease};
use crate::reference;

/// Layers downloaded at once, as containerd's default.
const CONCURRENT_DOWNLOADS: usize = 3;

/// containerd's label naming where a blob came from (`…source.<registry>` = repository).
const DISTRIBUTION_SOURCE: &str = "containerd.io/distribution.source";

/// Options of [`pull`].
#[derive(Debug, Clone)]
pub struct PullOptions {
    pub registries: RegistryConfig,
    /// Names of the pod's `imagePullSecrets`, looked up before the host's credentials.
    pub pull_secrets: Vec<String>,
    pub snapshotter: String,
    pub progress: Progress<PullStep>,
    /// Stops the pull at its next chunk; it then unwinds like a failure.
    pub cancel: Cancel,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            registries: RegistryConfig::default(),
            pull_secrets: Vec::new(),
            snapshotter: super::DEFAULT_SNAPSHOTTER.to_string(),
            progress: Progress::default(),
            cancel: Cancel::default(),
        }
    }
}

/// A layer as a pull plans it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLayer {
    pub digest: String,
    pub size: u64,
    /// In the content store already: not downloaded.
    pub present: bool,
}

/// A step of [`pull`], as it happens.
#[derive(Debug, Clone)]
pub enum PullStep {
    /// The manifest for this host is known; `platform` is set when it was chosen from an
    /// index.
    Resolved {
        reference: String,
        digest: String,
        platform: Option<String>,
        layers: Vec<PlannedLayer>,
    },
    /// Bytes of a layer arrived: `done` of `size`.
    Downloading {
        digest: String,
        done: u64,
        size: u64,
    },
    /// A layer is in the content store, verified.
    Downloaded {
        digest: String,
        size: u64,
        elapsed: Duration,
    },
    /// The layers are unpacked into snapshots.
    Unpacked { layers: usize },
}

/// What [`pull`] recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// Normalized name.
    pub name: String,
    /// Digest of the record's target (the manifest, or the index it was chosen from).
    pub digest: String,
    pub layers: usize,
    /// Bytes of config and layers of the host platform's manifest.
    pub size: u64,
    /// Bytes downloaded (layers that were not present).
    pub downloaded: u64,
}

/// A document fetched from the registry, to store with its gc labels.
struct Document {
    media_type: String,
    digest: String,
    bytes: Bytes,
    labels: HashMap<String, String>,
}

/// What the registry says the image is, for this host.
struct RemoteImage {
    /// What the record points at: the manifest, or the index it was chosen from.
    target: Descriptor,
    /// Index (when there is one), manifest and config.
    documents: Vec<Document>,
    layers: Vec<Layer>,
    platform: Option<String>,
    size: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
}

/// Pulls `name` from its registry (see the module doc); re-pulling an image whose content is
/// all present only fetches its manifest and rewrites the record.
pub async fn pull(
    client: &Client,
    name: &str,
    opts: &PullOptions,
) -> Result<PulledImage, ImageError> {
    let started = Instant::now();
    let name = reference::normalize(name)?;
    let remote = Remote::new(&name, &opts.registries, &opts.pull_secrets)?;
    tracing::debug!(image = %name, elapsed = ?started.elapsed(), "registry client ready");
    let image = resolve(&remote, &name, &opts.snapshotter).await?;
    let lease = create_lease(client, "pull", &name).await?;
    let result = async {
        let present = present_layers(client, &image.layers, &lease)
            .await
            .map_err(|source| ImageError::Containerd {
                action: format!("looking up the layers of {name} in the content store"),
                source,
            })?;
        report_resolved(opts, &name, &image, &present, started);
        store(client, &remote, &name, &image, &present, opts, &lease).await
    }
    .await;
    release_lease(client, &lease, result.is_err()).await;
    let downloaded = result?;
    tracing::info!(image = %name, digest = %image.target.digest, downloaded, elapsed = ?started.elapsed(), "pulled");
    Ok(PulledImage {
        name,
        digest: image.target.digest,
        layers: image.layers.len(),
        size: image.size,
        downloaded,
    })
}

/// Which layers the content store holds already. Each is added to `lease` before it is looked
/// up, so that gc (after an `image rm`, or a failed pull sharing the layer) cannot take it
/// between the look-up and the record.
async fn present_layers(
    client: &Client,
    layers: &[Layer],
    lease: &Lease,
) -> Result<Vec<bool>, crate::containerd::ContainerdError> {
    let checks = layers.iter().map(|l| async move {
        client
            .add_lease_resource(lease, "content", &l.digest)
            .await?;
        client.has_blob(&l.digest).await
    });
    futures::future::join_all(checks)
        .await
        .into_iter()
        .collect()
}

fn report_resolved(
    opts: &PullOptions,
    name: &str,
    image: &RemoteImage,
    present: &[bool],
    started: Instant,
) {
    tracing::debug!(image = %name, elapsed = ?started.elapsed(), "resolved");
    opts.progress.report(PullStep::Resolved {
        reference: name.to_string(),
        digest: image.target.digest.clone(),
        platform: image.platform.clone(),
        layers: image
            .layers
            .iter()
            .zip(present)
            .map(|(l, &present)| PlannedLayer {
                digest: l.digest.clone(),
                size: l.size,
                present,
            })
            .collect(),
    });
}

/// Fetches the reference's documents down to the host platform's config.
async fn resolve(
    remote: &Remote,
    name: &str,
    snapshotter: &str,
) -> Result<RemoteImage, ImageError> {
    let bad = |digest: &str, kind: &'static str| {
        let (name, digest) = (name.to_string(), digest.to_string());
        move |source| ImageError::BadRemoteDocument {
            reference: name,
            digest,
            kind,
            source,
        }
    };
    let (top, top_digest) = remote.manifest(None).await?;
    tracing::debug!(image = %name, digest = %top_digest, "manifest fetched");
    let head: Head = serde_json::from_slice(&top).map_err(bad(&top_digest, "manifest"))?;
    let top_type = head.media_type.unwrap_or_else(|| {
        if head.manifests.is_some() {
            document::OCI_INDEX
        } else {
            document::OCI_MANIFEST
        }
        .to_string()
    });
    let target = Descriptor {
        media_type: top_type.clone(),
        digest: top_digest.clone(),
        size: top.len() as i64,
        annotations: Default::default(),
    };
    let mut documents = Vec::new();
    let mut platform = None;
    let (manifest_digest, manifest_bytes) = if document::is_index(&top_type) {
        let index: Index = serde_json::from_slice(&top).map_err(bad(&top_digest, "index"))?;
        let (i, chosen) =
            document::pick_from_index(&index, || format!("image {name} (index {top_digest})"))?;
        if !document::is_manifest(&chosen.media_type) {
            return Err(ImageError::UnsupportedMediaType {
                what: format!("image {name}"),
                digest: chosen.digest,
                media_type: chosen.media_type,
            });
        }
        platform = chosen.platform.as_ref().map(|p| p.to_string());
        let (bytes, digest) = remote.manifest(Some(&chosen.digest)).await?;
        if bytes.len() as u64 != chosen.size {
            return Err(ImageError::CorruptDownload {
                reference: name.to_string(),
                registry: remote.registry().to_string(),
                digest,
                size: chosen.size,
                problem: format!("the registry sent {} bytes", bytes.len()),
            });
        }
        documents.push(Document {
            media_type: top_type.clone(),
            digest: top_digest.clone(),
            bytes: top.clone(),
            labels: document::index_labels(i, &chosen.digest),
        });
        (digest, bytes)
    } else if document::is_manifest(&top_type) {
        (top_digest.clone(), top.clone())
    } else {
        return Err(ImageError::UnsupportedMediaType {
            what: format!("image {name}"),
            digest: top_digest,
            media_type: top_type,
        });
    };
    let manifest: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(bad(&manifest_digest, "manifest"))?;
    if manifest.config.size > MAX_DOCUMENT {
        return Err(ImageError::Pull {
            reference: name.to_string(),
            action: format!("fetching config {}", manifest.config.digest),
            reason: format!(
                "it is {} bytes, more than podctl reads",
                manifest.config.size
            ),
            transient: false,
        });
    }
    let config_bytes = remote
        .small_blob(&manifest.config.digest, manifest.config.size)
        .await?;
    let config: ConfigHead =
        serde_json::from_slice(&config_bytes).map_err(bad(&manifest.config.digest, "config"))?;
    if platform.is_none() && !config.os.is_empty() {
        let p = document::Platform {
            architecture: config.architecture.clone(),
            os: config.os.clone(),
            variant: config.variant.clone(),
        };
        if !document::matches_host(&p) {
            return Err(ImageError::NoMatchingPlatform {
                what: format!("image {name} (manifest {manifest_digest})"),
                wanted: document::host_platform().to_string(),
                available: vec![p.to_string()],
            });
        }
    }
    let layers = unpack::layers_of(&manifest, &config.rootfs.diff_ids).map_err(|problem| {
        ImageError::BadStoredImage {
            reference: name.to_string(),
            problem,
        }
    })?;
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let manifest_type = manifest_media_type(&manifest_bytes, &top_type);
    documents.push(Document {
        media_type: manifest_type,
        digest: manifest_digest.clone(),
        bytes: manifest_bytes,
        labels: document::manifest_labels(&manifest),
    });
    documents.push(Document {
        media_type: manifest.config.media_type.clone(),
        digest: manifest.config.digest.clone(),
        bytes: Bytes::from(config_bytes),
        labels: document::config_labels(&diff_ids, snapshotter),
    });
    Ok(RemoteImage {
        target,
        documents,
        size: super::archive::image_size(&manifest),
        layers,
        platform,
    })
}

fn manifest_media_type(bytes: &[u8], fallback: &str) -> String {
    serde_json::from_slice::<Head>(bytes)
        .ok()
        .and_then(|h| h.media_type)
        .unwrap_or_else(|| {
            if document::is_manifest(fallback) {
                fallback.to_string()
            } else {
                document::OCI_MANIFEST.to_string()
            }
        })
}

/// Downloads the missing layers, writes the documents, unpacks and records the image;
/// returns the bytes downloaded.
async fn store(
    client: &Client,
    remote: &Remote,
    name: &str,
    image: &RemoteImage,
    present: &[bool],
    opts: &PullOptions,
    lease: &Lease,
) -> Result<u64, ImageError> {
    let source_label = (
        format!("{DISTRIBUTION_SOURCE}.{}", remote.registry()),
        remote.repository().to_string(),
    );
    // Siblings of a failed download (or of a failed unpack) stop at their next chunk instead
    // of finishing for nothing.
    let failed = Cancel::default();
    let n = image.layers.len();
    // Indexes of the layers whose blobs are stored, in whatever order they complete.
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    for (i, _) in present.iter().enumerate().filter(|(_, &p)| p) {
        let _ = ready_tx.send(i);
    }
    // Futures built first, then run: a closure inside the stream combinators trips rustc's
    // Send inference for the daemon's spawned admission.
    let mut downloads = Vec::new();
    for (i, layer) in image
        .layers
        .iter()
        .enumerate()
        .filter(|(i, _)| !present[*i])
    {
        let mut labels = document::layer_labels(&layer.diff_id);
        labels.insert(source_label.0.clone(), source_label.1.clone());
        let (failed, ready) = (&failed, ready_tx.clone());
        downloads.push(async move {
            let r = fetch_layer(client, remote, lease, layer, labels, opts, failed).await;
            match &r {
                Ok(()) => {
                    let _ = ready.send(i);
                }
                Err(_) => failed.cancel(),
            }
            r
        });
    }
    drop(ready_tx);
    let downloaded: u64 = image
        .layers
        .iter()
        .zip(present)
        .filter(|(_, &p)| !p)
        .map(|(l, _)| l.size)
        .sum();
    let download_all = futures::stream::iter(downloads)
        .buffer_unordered(CONCURRENT_DOWNLOADS)
        .collect::<Vec<Result<(), ImageError>>>();
    // Each layer is unpacked as soon as it and every layer below it are stored.
    let unpack_all = async {
        let mut unpacker =
            unpack::Unpacker::new(client, name, &opts.snapshotter, &image.layers, lease)
                .await
                .inspect_err(|_| failed.cancel())?;
        let mut stored = vec![false; n];
        while unpacker.next() < n {
            match ready_rx.recv().await {
                Some(i) => stored[i] = true,
                // The downloads ended without every layer: their error says why.
                None => return Ok(()),
            }
            while unpacker.next() < n && stored[unpacker.next()] {
                if failed.is_cancelled() || opts.cancel.is_cancelled() {
                    return Ok(());
                }
                unpacker
                    .apply(unpacker.next())
                    .await
                    .inspect_err(|_| failed.cancel())?;
            }
        }
        Ok::<(), ImageError>(())
    };
    let (results, unpacked) = tokio::join!(download_all, unpack_all);
    tracing::debug!(image = %name, "layers stored and unpacked");
    // The first real failure, not a sibling's "stopped because another failed".
    let mut first = None;
    for r in results {
        match (r, &first) {
            (Ok(()), _) => {}
            (Err(ImageError::PullCancelled { .. }), Some(_)) => {}
            (Err(e), None) => first = Some(e),
            (Err(e), Some(ImageError::PullCancelled { .. })) if !opts.cancel.is_cancelled() => {
                first = Some(e)
            }
            (Err(_), Some(_)) => {}
        }
    }
    match (first, unpacked) {
        (Some(e @ ImageError::PullCancelled { .. }), Err(u)) if !opts.cancel.is_cancelled() => {
            drop(e);
            return Err(u);
        }
        (Some(e), _) => return Err(e),
        (None, Err(u)) => return Err(u),
        (None, Ok(())) => {}
    }
    if opts.cancel.is_cancelled() {
        return Err(ImageError::PullCancelled {
            reference: name.to_string(),
        });
    }

    for doc in image.documents.iter().rev() {
        let mut labels = doc.labels.clone();
        labels.insert(source_label.0.clone(), source_label.1.clone());
        client
            .write_blob(
                lease,
                &doc.digest,
                doc.bytes.len() as i64,
                labels,
                std::io::Cursor::new(doc.bytes.clone()),
            )
            .await
            .map_err(|source| ImageError::WriteBlob {
                digest: doc.digest.clone(),
                source,
            })?;
        tracing::debug!(image = %name, digest = %doc.digest, media_type = %doc.media_type, "document stored");
    }
    opts.progress.report(PullStep::Unpacked {
        layers: image.layers.len(),
    });
    client
        .put_image(name, image.target.clone(), Default::default())
        .await
        .map_err(|source| ImageError::Containerd {
            action: format!("recording image {name}"),
            source,
        })?;
    Ok(downloaded)
}

/// Streams one layer from the registry into a content-store write.
async fn fetch_layer(
    client: &Client,
    remote: &Remote,
    lease: &Lease,
    layer: &Layer,
    labels: HashMap<String, String>,
    opts: &PullOptions,
    failed: &Cancel,
) -> Result<(), ImageError> {
    let started = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(16);
    let reader = tokio_util::io::StreamReader::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let write = client.write_blob(lease, &layer.digest, layer.size as i64, labels, reader);
    let download = async {
        let mut done = 0u64;
        let stopped = || opts.cancel.is_cancelled() || failed.is_cancelled();
        let r = remote
            .download(&layer.digest, layer.size, &stopped, |chunk| {
                done += chunk.len() as u64;
                opts.progress.report(PullStep::Downloading {
                    digest: layer.digest.clone(),
                    done,
                    size: layer.size,
                });
                let tx = tx.clone();
                async move { tx.send(Ok(chunk)).await.is_ok() }
            })
            .await;
        if let Err(e) = &r {
            // The write must fail too, so that containerd drops the partial ingest.
            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
        }
        drop(tx);
        r
    };
    let (downloaded, written) = tokio::join!(download, write);
    downloaded?;
    written.map_err(|source| ImageError::WriteBlob {
        digest: layer.digest.clone(),
        source,
    })?;
    opts.progress.report(PullStep::Downloaded {
        digest: layer.digest.clone(),
        size: layer.size,
        elapsed: started.elapsed(),
    });
    Ok(())
}
