//! Images in containerd: import from a tarball, unpack into snapshots, list, remove, and
//! resolve a name into what a container needs (its config and the top snapshot of its layers).
//!
//! Everything is stored the way containerd's own tools store it, so `ctr images ls` and
//! containerd's gc agree with podctl:
//! - blobs go into the content store under one lease per operation, committed with the gc
//!   labels that make an image record keep its whole tree alive (index -> manifests ->
//!   config + layers -> snapshot chain);
//! - layers are unpacked with Diff.Apply into committed snapshots named by chain id;
//! - removing an image record with `sync` lets gc collect whatever no other image shares.
//!
//! Names are normalized ([`crate::reference::normalize`]) before they are stored or looked up.

mod archive;
pub mod auth;
mod document;
mod error;
mod policy;
mod pull;
mod registry;
mod store;
mod unpack;

use std::path::Path;
use std::time::{Duration, SystemTime};

pub use error::ImageError;
pub use policy::{ensure, Ensured, PullPolicy};
pub use pull::{pull, PlannedLayer, PullOptions, PullStep, PulledImage};
pub use registry::RegistryConfig;

use crate::containerd::{Client, Descriptor, Lease};

/// The snapshotter podctl unpacks into unless told otherwise.
pub const DEFAULT_SNAPSHOTTER: &str = "overlayfs";

/// How long containerd keeps an import's or unpack's lease if podctl dies before deleting it.
const LEASE_EXPIRY: Duration = Duration::from_secs(3600);

/// Options of [`import`].
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Name for the archive's image, replacing the names in the archive (`--name`); the
    /// archive must then hold exactly one image.
    pub name: Option<String>,
    /// Snapshotter to unpack the layers into.
    pub snapshotter: String,
    /// Told about each step, for a progress display.
    pub progress: Progress<ImportStep>,
    /// Set from elsewhere (a signal handler) to stop the import at its next step; it then
    /// unwinds like a failure, leaving nothing behind.
    pub cancel: Cancel,
}

/// A flag that asks a long operation to stop and clean up.
#[derive(Debug, Clone, Default)]
pub struct Cancel(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Cancel {
    /// Asks the operation to stop.
    pub fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a stop was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            name: None,
            snapshotter: DEFAULT_SNAPSHOTTER.to_string(),
            progress: Progress::default(),
            cancel: Cancel::default(),
        }
    }
}

/// A step of [`import`], as it happens.
#[derive(Debug, Clone)]
pub enum ImportStep {
    /// The archive is read and every blob's digest and size checked.
    Verified { blobs: usize, bytes: u64 },
    /// A blob is in the content store; `stored` is false when it was there already.
    Blob {
        digest: String,
        size: u64,
        stored: bool,
    },
    /// An image's layers are unpacked into snapshots.
    Unpacked { image: String, layers: usize },
}

type StepFn<S> = dyn Fn(&S) + Send + Sync;

/// Receives the steps `S` of a long operation ([`ImportStep`], [`PullStep`]); does nothing by
/// default.
pub struct Progress<S>(Option<std::sync::Arc<StepFn<S>>>);

impl<S> Progress<S> {
    /// Calls `f` for every step.
    pub fn new(f: impl Fn(&S) + Send + Sync + 'static) -> Self {
        Self(Some(std::sync::Arc::new(f)))
    }

    fn report(&self, step: S) {
        if let Some(f) = &self.0 {
            f(&step);
        }
    }
}

impl<S> Default for Progress<S> {
    fn default() -> Self {
        Self(None)
    }
}

impl<S> Clone for Progress<S> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<S> std::fmt::Debug for Progress<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(..)"
        } else {
            "Progress(none)"
        })
    }
}

/// One image record created (or updated) by [`import`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedImage {
    /// Normalized name.
    pub name: String,
    /// Digest of the record's target (the manifest, or the index it was chosen from).
    pub digest: String,
    /// Number of layers unpacked (or found unpacked already).
    pub layers: usize,
    /// Bytes of config and layers of the host platform's manifest.
    pub size: u64,
}

/// An image record as [`list`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// Normalized name (see [`crate::reference::familiar`] for display).
    pub name: String,
    /// Digest of the record's target.
    pub digest: String,
    /// Sum of the config and layer sizes of the host platform's manifest (0 when its content
    /// is missing from the store).
    pub size: u64,
    /// `created` of the image config, when it has one.
    pub created: Option<SystemTime>,
}

/// What the pod lifecycle needs to run a container from an image.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// Normalized name.
    pub name: String,
    pub config: oci_spec::image::ImageConfiguration,
    /// Committed snapshot of the top layer, to prepare the container's rootfs on ("" for an
    /// image without layers).
    pub chain_id: String,
    pub snapshotter: String,
}

/// Imports every image of an OCI image layout or `docker save` tarball (plain or gzip):
/// writes its blobs into the content store, unpacks its layers for `opts.snapshotter`, and
/// creates (or repoints) one image record per name.
///
/// The tarball is verified completely (every blob's digest and size) before containerd sees
/// a byte, so a corrupt archive records nothing. Idempotent: re-importing the same archive
/// finds its blobs and snapshots in place and only rewrites the records.
pub async fn import(
    client: &Client,
    tarball: &Path,
    opts: &ImportOptions,
) -> Result<Vec<ImportedImage>, ImageError> {
    let started = std::time::Instant::now();
    let archive = {
        let file = tarball.to_path_buf();
        let name = opts.name.clone();
        let snapshotter = opts.snapshotter.clone();
        let cancel = opts.cancel.clone();
        run_blocking(tarball, move || {
            archive::read(&file, name.as_deref(), &snapshotter, &cancel)
        })
        .await?
    };
    tracing::debug!(file = %tarball.display(), elapsed = ?started.elapsed(), "archive read and verified");
    opts.progress.report(ImportStep::Verified {
        blobs: archive.blobs.len(),
        bytes: archive.blobs.iter().map(|b| b.size).sum(),
    });

    let lease = create_lease(client, "import", &tarball.display().to_string()).await?;
    let result = write_and_record(client, &archive, opts, &lease).await;
    release_lease(client, &lease, result.is_err()).await;
    // Removing the extracted files is blocking work too.
    run_blocking(tarball, move || {
        drop(archive);
        Ok(())
    })
    .await?;
    tracing::debug!(file = %tarball.display(), elapsed = ?started.elapsed(), "import done");
    result
}

async fn write_and_record(
    client: &Client,
    archive: &archive::Archive,
    opts: &ImportOptions,
    lease: &Lease,
) -> Result<Vec<ImportedImage>, ImageError> {
    let snapshotter = opts.snapshotter.as_str();
    let check = || {
        if opts.cancel.is_cancelled() {
            Err(ImageError::Cancelled {
                file: archive.file.clone(),
            })
        } else {
            Ok(())
        }
    };
    for blob in &archive.blobs {
        check()?;
        let reader: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match &blob.source {
            archive::BlobSource::File(path) => Box::new(
                tokio::fs::File::open(path)
                    .await
                    .map_err(|source| ImageError::Io {
                        action: "opening",
                        path: path.clone(),
                        source,
                    })?,
            ),
            archive::BlobSource::Bytes(bytes) => Box::new(std::io::Cursor::new(bytes.clone())),
        };
        let stored = client
            .write_blob(
                lease,
                &blob.digest,
                blob.size as i64,
                blob.labels.clone(),
                reader,
            )
            .await
            .map_err(|source| ImageError::WriteBlob {
                digest: blob.digest.clone(),
                source,
            })?;
        opts.progress.report(ImportStep::Blob {
            digest: blob.digest.clone(),
            size: blob.size,
            stored,
        });
    }

    let mut imported = Vec::new();
    for image in &archive.images {
        check()?;
        unpack::unpack(client, &image.names[0], snapshotter, &image.layers, lease).await?;
        opts.progress.report(ImportStep::Unpacked {
            image: image.names[0].clone(),
            layers: image.layers.len(),
        });
        let target = Descriptor {
            media_type: image.target.media_type.clone(),
            digest: image.target.digest.clone(),
            size: image.target.size as i64,
            annotations: Default::default(),
        };
        for name in &image.names {
            client
                .put_image(name, target.clone(), Default::default())
                .await
                .map_err(|source| ImageError::Containerd {
                    action: format!("recording image {name}"),
                    source,
                })?;
            imported.push(ImportedImage {
                name: name.clone(),
                digest: image.target.digest.clone(),
                layers: image.layers.len(),
                size: image.size,
            });
        }
    }
    Ok(imported)
}

/// Creates the lease an operation (`purpose`: import, pull, unpack) of `what` works under.
async fn create_lease(client: &Client, purpose: &str, what: &str) -> Result<Lease, ImageError> {
    client
        .create_lease(purpose, LEASE_EXPIRY)
        .await
        .map_err(|source| ImageError::Containerd {
            action: format!("creating a lease to {purpose} {what}"),
            source,
        })
}

/// Deletes a lease at the end of an operation. After a failure, waits for gc so that what the
/// operation wrote is gone when the error is reported. A failed delete is only logged: the
/// lease expires by itself.
async fn release_lease(client: &Client, lease: &Lease, failed: bool) {
    let r = if failed {
        client.delete_lease_and_collect(lease).await
    } else {
        client.delete_lease(lease).await
    };
    if let Err(e) = r {
        tracing::warn!(lease = %lease.id, error = %e, "cannot delete lease; containerd will expire it");
    }
}

/// Runs file work on tokio's blocking pool; `file` names the archive in errors.
async fn run_blocking<T: Send + 'static>(
    file: &Path,
    f: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, ImageError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(ImageError::Io {
            action: "the runtime shut down while importing",
            path: file.to_path_buf(),
            source: std::io::Error::other(e),
        }),
    }
}

/// Every image record in the client's namespace, sorted by name.
pub async fn list(client: &Client) -> Result<Vec<ImageSummary>, ImageError> {
    store::list(client).await
}

/// Removes the image record `name` (normalized first) and waits for gc to collect the
/// content and snapshots no other image references.
pub async fn remove(client: &Client, name: &str) -> Result<(), ImageError> {
    store::remove(client, name).await
}

/// The config and top snapshot of the image `name`, unpacking it for `snapshotter` first when
/// it is not unpacked there yet (an image imported for another snapshotter, or whose
/// snapshots were removed).
pub async fn resolve(
    client: &Client,
    name: &str,
    snapshotter: &str,
) -> Result<ResolvedImage, ImageError> {
    store::resolve(client, name, snapshotter).await
}
