use std::path::PathBuf;

use crate::containerd::ContainerdError;
use crate::reference::ReferenceError;

/// Why an image could not be imported, unpacked, listed, removed or resolved.
///
/// Archive problems name the tarball (`file`) and the blob or member at fault; containerd
/// failures keep the [`ContainerdError`] as their `source()` and say what podctl was doing.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The import was interrupted on request; what it had written is gone.
    #[error("import of {} interrupted; nothing was recorded", file.display())]
    Cancelled { file: PathBuf },
    /// The image record does not exist in the namespace.
    #[error(
        "image \"{reference}\" not found in containerd namespace \"{namespace}\": \
         pull it with `podctl image pull {reference}` or import it with `podctl image import FILE.tar`"
    )]
    NotFound {
        reference: String,
        namespace: String,
    },

    /// A name (from `--name`, the archive, or a manifest) is not a valid image reference.
    #[error("{file}: bad image name", file = file.display())]
    BadName {
        file: PathBuf,
        #[source]
        source: ReferenceError,
    },

    /// A name given to `list`/`remove`/`resolve` is not a valid image reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),

    /// Reading or extracting the tarball failed.
    #[error("{file}: cannot read the archive ({what})", file = file.display())]
    Archive {
        file: PathBuf,
        what: String,
        #[source]
        source: std::io::Error,
    },

    /// The tarball is neither an OCI image layout nor a `docker save` archive.
    #[error(
        "{file}: not an image archive: found neither an OCI image layout (oci-layout, index.json) \
         nor a `docker save` manifest.json",
        file = file.display()
    )]
    NotAnImage { file: PathBuf },

    /// A JSON document of the archive (index, manifest, config) does not parse.
    #[error("{file}: {member} is not a valid {kind}", file = file.display())]
    BadDocument {
        file: PathBuf,
        member: String,
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },

    /// The archive's documents are inconsistent (e.g. a manifest without a layer list that
    /// matches its config's diff ids).
    #[error("{file}: {member}: {problem}", file = file.display())]
    Inconsistent {
        file: PathBuf,
        member: String,
        problem: String,
    },

    /// A blob a descriptor refers to is not in the archive (or escapes it through a symlink).
    #[error("{file}: blob {digest} ({what}) is missing from the archive", file = file.display())]
    MissingBlob {
        file: PathBuf,
        digest: String,
        what: &'static str,
    },

    /// A blob's content does not match the digest or size its descriptor gives.
    #[error(
        "{file}: blob {digest} ({what}) is corrupt: its content is sha256:{actual_sha256}, \
         {actual_size} bytes; the descriptor says {digest}, {size} bytes",
        file = file.display()
    )]
    CorruptBlob {
        file: PathBuf,
        digest: String,
        what: &'static str,
        size: u64,
        actual_sha256: String,
        actual_size: u64,
    },

    /// Only sha256 digests are accepted.
    #[error("{file}: unsupported digest {digest} (only sha256 is supported)", file = file.display())]
    UnsupportedDigest { file: PathBuf, digest: String },

    /// The archive's image has no name and `--name` was not given.
    #[error(
        "{file}: image {digest} has no name in the archive{hint}: give one with --name",
        file = file.display(),
        hint = match tag { Some(t) => format!(" (only the tag {t:?})"), None => String::new() }
    )]
    Unnamed {
        file: PathBuf,
        digest: String,
        tag: Option<String>,
    },

    /// `--name` was given for an archive holding several images.
    #[error(
        "{file}: --name needs an archive with exactly one image; this one has {count}: {digests}",
        file = file.display(),
        digests = digests.join(", ")
    )]
    NameForSeveralImages {
        file: PathBuf,
        count: usize,
        digests: Vec<String>,
    },

    /// No manifest of an index is for this host's platform.
    #[error(
        "{what}: no manifest for platform {wanted}; available: {available}",
        available = if available.is_empty() { "none".to_string() } else { available.join(", ") }
    )]
    NoMatchingPlatform {
        what: String,
        wanted: String,
        available: Vec<String>,
    },

    /// A descriptor's media type is not one podctl knows how to follow.
    #[error("{what}: unsupported media type {media_type:?} for {digest}")]
    UnsupportedMediaType {
        what: String,
        digest: String,
        media_type: String,
    },

    /// Applying a layer produced different content than the image config promises.
    #[error(
        "layer {layer} of image {reference}: unpacked content is {actual}, the image config \
         says {diff_id}"
    )]
    DiffIdMismatch {
        reference: String,
        layer: String,
        diff_id: String,
        actual: String,
    },

    /// A document stored in containerd (manifest, index, config) does not parse.
    #[error("image {reference}: {kind} {digest} in containerd's content store is not valid")]
    BadStoredDocument {
        reference: String,
        digest: String,
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },

    /// A stored image is inconsistent (layer count differs from its config's diff ids).
    #[error("image {reference}: {problem}")]
    BadStoredImage { reference: String, problem: String },

    /// Writing a blob into containerd's content store failed.
    #[error("writing blob {digest} into containerd")]
    WriteBlob {
        digest: String,
        #[source]
        source: ContainerdError,
    },

    /// Reading a blob of an image from containerd failed.
    #[error("image {reference}: reading blob {digest} from containerd")]
    ReadBlob {
        reference: String,
        digest: String,
        #[source]
        source: ContainerdError,
    },

    /// Unpacking a layer into a snapshot failed.
    #[error("image {reference}: unpacking layer {layer} into snapshot {chain_id}")]
    Unpack {
        reference: String,
        layer: String,
        chain_id: String,
        #[source]
        source: Box<ContainerdError>,
    },

    /// Any other containerd call (leases, image records, labels) failed.
    #[error("{action}")]
    Containerd {
        action: String,
        #[source]
        source: ContainerdError,
    },

    /// Talking to the registry failed (after retries, when `transient`).
    #[error("pulling {reference}: {action}: {reason}")]
    Pull {
        reference: String,
        action: String,
        reason: String,
        /// A broken connection or a server error, worth retrying.
        transient: bool,
    },

    /// The registry cannot be reached.
    #[error(
        "pulling {reference}: cannot reach registry {registry} over {scheme}: {reason}{hint}",
        hint = if *scheme == "https" {
            " (a registry serving plain HTTP must be named with --insecure-registry)"
        } else {
            ""
        }
    )]
    Unreachable {
        reference: String,
        registry: String,
        scheme: &'static str,
        reason: String,
    },

    /// The registry refused the credentials, or asked for some and none were found.
    #[error(
        "pulling {reference}: registry {registry} refused access{hint}",
        hint = match credentials {
            Some(file) => format!(" with the credentials from {}", file.display()),
            None => " without credentials: add them to ~/.docker/config.json, a file given \
                     with --authfile, or a pull secret named in imagePullSecrets".to_string(),
        }
    )]
    Unauthorized {
        reference: String,
        registry: String,
        credentials: Option<PathBuf>,
    },

    /// The registry has no such repository, tag or digest.
    #[error("pulling {reference}: registry {registry} has no {what}")]
    RemoteNotFound {
        reference: String,
        registry: String,
        what: String,
    },

    /// The registry served a blob or manifest that does not match its descriptor.
    #[error(
        "pulling {reference}: registry {registry} served blob {digest} corrupt: {problem} \
         (the descriptor says {digest}, {size} bytes); nothing was recorded"
    )]
    CorruptDownload {
        reference: String,
        registry: String,
        digest: String,
        size: u64,
        problem: String,
    },

    /// A document served by the registry does not parse.
    #[error("pulling {reference}: the registry's {kind} {digest} is not valid")]
    BadRemoteDocument {
        reference: String,
        digest: String,
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },

    /// The pull was interrupted on request; what it had written is gone.
    #[error("pull of {reference} interrupted; nothing was recorded")]
    PullCancelled { reference: String },

    /// A credentials file (Docker config, pull secret) is malformed.
    #[error("{file}: {problem}", file = file.display())]
    BadCredentials { file: PathBuf, problem: String },

    /// The image is absent and `imagePullPolicy: Never` forbids pulling it.
    #[error(
        "container image \"{reference}\" is not present with pull policy of Never: import it \
         with `podctl image import` or pull it with `podctl image pull`"
    )]
    NeverPull { reference: String },

    /// A local file operation (temp dir, blob file) failed.
    #[error("{action} {path}", path = path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    /// Whether a pull that failed this way may succeed when tried again soon (a dropped
    /// connection, a registry restarting).
    pub fn is_transient_pull_error(&self) -> bool {
        matches!(
            self,
            Self::Pull {
                transient: true,
                ..
            } | Self::Unreachable { .. }
        )
    }
}
