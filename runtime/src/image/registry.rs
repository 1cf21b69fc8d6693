//! One image's registry, through `oci-client`: its manifests, and its blobs as verified streams
//! that resume where they broke off when the connection drops.
//!
//! Plain HTTP is used only for registries on loopback and for those named as insecure;
//! everything else is HTTPS with the system's roots.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use oci_client::client::{BlobResponse, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;
use sha2::{Digest as _, Sha256};

use super::auth::{Credential, CredentialSources};
use super::ImageError;

/// Media types a manifest request accepts: OCI and Docker schema 2, manifests and indexes.
const ACCEPTED: &[&str] = &[
    super::document::OCI_INDEX,
    super::document::OCI_MANIFEST,
    super::document::DOCKER_MANIFEST_LIST,
    super::document::DOCKER_MANIFEST,
];

/// How often a blob download is retried after a broken connection or a server error.
const ATTEMPTS: u32 = 4;

/// How registries are reached: credentials and the registries allowed over plain HTTP.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    pub credentials: CredentialSources,
    /// Registries (`host[:port]`) spoken to over plain HTTP besides loopback ones
    /// (`--insecure-registry`).
    pub insecure: Vec<String>,
}

/// oci-client's form of a normalized reference (`registry/repository[:tag][@digest]`), built
/// from its parts: parsing it with `Reference`'s own parser compiles a large regex, ~35 ms of
/// a pull's start for a name that [`crate::reference::normalize`] already checked.
fn split_reference(normalized: &str) -> Reference {
    let (rest, digest) = match normalized.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest.to_string())),
        None => (normalized, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (
            &rest[..last_slash + i],
            Some(rest[last_slash + i + 1..].to_string()),
        ),
        None => (rest, None),
    };
    let (registry, repository) = name.split_once('/').unwrap_or(("docker.io", name));
    let (registry, repository) = (registry.to_string(), repository.to_string());
    match (tag, digest) {
        (Some(tag), Some(digest)) => {
            Reference::with_tag_and_digest(registry, repository, tag, digest)
        }
        (None, Some(digest)) => Reference::with_digest(registry, repository, digest),
        (tag, None) => {
            Reference::with_tag(registry, repository, tag.unwrap_or_else(|| "latest".into()))
        }
    }
}

/// Whether `registry` (`host[:port]`) is on this machine's loopback.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => registry.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The registry of one image reference.
pub(crate) struct Remote {
    client: oci_client::Client,
    reference: Reference,
    auth: RegistryAuth,
    /// The normalized reference, for errors.
    name: String,
    /// Where the credential came from, for errors.
    credential_source: Option<PathBuf>,
    plain_http: bool,
}

impl Remote {
    /// Prepares to pull `name` (normalized), with credentials looked up for its repository.
    pub fn new(
        name: &str,
        config: &RegistryConfig,
        secrets: &[String],
    ) -> Result<Self, ImageError> {
        let reference = split_reference(name);
        let registry = reference.registry().to_string();
        let plain_http = is_loopback(&registry) || config.insecure.contains(&registry);
        let repository = format!("{registry}/{}", reference.repository());
        let found = config.credentials.find(&repository, secrets)?;
        let auth = match found.as_ref().map(|f| &f.credential) {
            None => RegistryAuth::Anonymous,
            Some(Credential::Basic { username, password }) => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Some(Credential::Bearer(token)) => RegistryAuth::Bearer(token.clone()),
        };
        let client = oci_client::Client::new(ClientConfig {
            protocol: if plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            // podctl picks the platform itself, with variants and a clear error.
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(15)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("podctl/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        });
        Ok(Self {
            client,
            reference,
            auth,
            name: name.to_string(),
            credential_source: found.map(|f| f.source),
            plain_http,
        })
    }

    /// The registry host as the reference names it.
    pub fn registry(&self) -> &str {
        self.reference.registry()
    }

    /// The repository path within the registry.
    pub fn repository(&self) -> &str {
        self.reference.repository()
    }

    /// Fetches the reference's manifest (or index), or the one with `digest` from the same
    /// repository; returns its bytes and digest, checked against the reference's digest.
    pub async fn manifest(&self, digest: Option<&str>) -> Result<(Bytes, String), ImageError> {
        let reference = match digest {
            Some(d) => self.reference.clone_with_digest(d.to_string()),
            None => self.reference.clone(),
        };
        let (what, missing) = match digest {
            Some(d) => (format!("fetching manifest {d}"), format!("manifest {d}")),
            None => (
                "fetching the manifest".to_string(),
                "such image (manifest unknown)".to_string(),
            ),
        };
        self.client
            .pull_manifest_raw(&reference, &self.auth, ACCEPTED)
            .await
            .map_err(|e| self.error(&what, &missing, e))
    }

    /// Fetches a small blob (an image config) whole, verified.
    pub async fn small_blob(&self, digest: &str, size: u64) -> Result<Vec<u8>, ImageError> {
        let mut out = Vec::with_capacity(size as usize);
        self.download(digest, size, &|| false, |chunk| {
            out.extend_from_slice(&chunk);
            std::future::ready(true)
        })
        .await?;
        Ok(out)
    }

    /// Streams the blob `digest` of `size` bytes into `sink`, which returns false to stop
    /// early (its consumer went away). A broken connection or a server error resumes from
    /// the last byte received (a range request), up to [`ATTEMPTS`] times. The content is
    /// checked as it arrives: more bytes than `size`, fewer, or another digest fail with
    /// [`ImageError::CorruptDownload`].
    pub async fn download<F, Fut>(
        &self,
        digest: &str,
        size: u64,
        stopped: &(dyn Fn() -> bool + Sync),
        mut sink: F,
    ) -> Result<(), ImageError>
    where
        F: FnMut(Bytes) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let desc = OciDescriptor {
            digest: digest.to_string(),
            size: size as i64,
            ..Default::default()
        };
        let mut hasher = Sha256::new();
        let mut offset = 0u64;
        let mut attempt = 0;
        loop {
            let offset_before = offset;
            let failure = match self
                .client
                .pull_blob_stream_partial(&self.reference, &desc, offset, None)
                .await
            {
                Err(e) => self.error(
                    &format!("downloading blob {digest}"),
                    &format!("blob {digest}"),
                    e,
                ),
                Ok(response) => {
                    let (mut stream, mut skip) = match response {
                        BlobResponse::Partial(s) => (s, 0),
                        // The registry ignored the range: drop what we already have.
                        BlobResponse::Full(s) => (s, offset),
                    };
                    let mut broken = None;
                    while let Some(chunk) = stream.next().await {
                        if stopped() {
                            return Err(ImageError::PullCancelled {
                                reference: self.name.clone(),
                            });
                        }
                        let mut chunk = match chunk {
                            Ok(c) => c,
                            Err(e) => {
                                broken = Some(e);
                                break;
                            }
                        };
                        if skip > 0 {
                            let n = skip.min(chunk.len() as u64);
                            skip -= n;
                            chunk = chunk.slice(n as usize..);
                            if chunk.is_empty() {
                                continue;
                            }
                        }
                        offset += chunk.len() as u64;
                        if offset > size {
                            return Err(self.corrupt(digest, size, None, offset));
                        }
                        hasher.update(&chunk);
                        if !sink(chunk).await {
                            return Ok(());
                        }
                    }
                    // oci-client checks a full (200) response itself and reports a mismatch
                    // as an error at its end: that is the content, not the connection.
                    let verdict = broken.as_ref().is_some_and(|e| {
                        e.get_ref()
                            .is_some_and(|inner| inner.is::<oci_client::errors::DigestError>())
                    });
                    match broken {
                        None | Some(_) if offset == size || verdict => {
                            let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
                            if offset != size {
                                return Err(self.corrupt(digest, size, None, offset));
                            }
                            if actual != digest {
                                return Err(self.corrupt(digest, size, Some(actual), offset));
                            }
                            return Ok(());
                        }
                        // A clean end before `size` is what the registry has: no retry.
                        None => return Err(self.corrupt(digest, size, None, offset)),
                        Some(e) => ImageError::Pull {
                            reference: self.name.clone(),
                            action: format!(
                                "downloading blob {digest} (at byte {offset} of {size})"
                            ),
                            reason: e.to_string(),
                            transient: true,
                        },
                    }
                }
            };
            // A flaky link that makes progress on every attempt is worth following.
            attempt = if offset > offset_before {
                1
            } else {
                attempt + 1
            };
            if attempt >= ATTEMPTS || !failure.is_transient_pull_error() {
                return Err(failure);
            }
            tracing::warn!(image = %self.name, blob = %digest, offset, error = %failure, "download broke off; resuming");
            tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
        }
    }

    fn corrupt(&self, digest: &str, size: u64, actual: Option<String>, got: u64) -> ImageError {
        ImageError::CorruptDownload {
            reference: self.name.clone(),
            registry: self.registry().to_string(),
            digest: digest.to_string(),
            size,
            problem: match actual {
                Some(actual) => format!("its content is {actual}"),
                None if got > size => format!("the registry sent more than {size} bytes"),
                None => format!("the registry sent only {got} of {size} bytes"),
            },
        }
    }

    /// Turns a client error into one that says what failed and what to do.
    /// `missing` names what a "not found" answer means is missing.
    fn error(&self, action: &str, missing: &str, e: OciDistributionError) -> ImageError {
        let registry = self.registry().to_string();
        match &e {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => ImageError::Unauthorized {
                reference: self.name.clone(),
                registry,
                credentials: self.credential_source.clone(),
            },
            OciDistributionError::ImageManifestNotFoundError(_) => ImageError::RemoteNotFound {
                reference: self.name.clone(),
                registry,
                what: missing.to_string(),
            },
            OciDistributionError::RegistryError { envelope, .. }
                if envelope.errors.iter().any(|e| {
                    matches!(
                        e.code,
                        oci_client::errors::OciErrorCode::ManifestUnknown
                            | oci_client::errors::OciErrorCode::NameUnknown
                    )
                }) =>
            {
                ImageError::RemoteNotFound {
                    reference: self.name.clone(),
                    registry,
                    what: missing.to_string(),
                }
            }
            OciDistributionError::ServerError { code: 404, .. } => ImageError::RemoteNotFound {
                reference: self.name.clone(),
                registry,
                what: missing.to_string(),
            },
            OciDistributionError::RequestError(r) if r.is_connect() || r.is_timeout() => {
                ImageError::Unreachable {
                    reference: self.name.clone(),
                    registry,
                    scheme: if self.plain_http { "http" } else { "https" },
                    reason: error_chain(r),
                }
            }
            _ => ImageError::Pull {
                reference: self.name.clone(),
                action: format!("{action} from {registry}"),
                reason: match &e {
                    OciDistributionError::RequestError(r) => error_chain(r),
                    other => other.to_string(),
                },
                transient: match &e {
                    OciDistributionError::RequestError(_) => true,
                    OciDistributionError::ServerError { code, .. } => *code >= 500,
                    _ => false,
                },
            },
        }
    }
}

/// An error and its causes on one line (reqwest's top-level message hides the OS error).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_as_oci_clients_parser_splits_them() {
        for name in [
            "docker.io/library/busybox:latest",
            "127.0.0.1:5000/team/app:1.2",
            "localhost:5000/app@sha256:0123456789012345678901234567890123456789012345678901234567890123",
            "reg.example/a/b/c:v1@sha256:0123456789012345678901234567890123456789012345678901234567890123",
        ] {
            let ours = split_reference(name);
            let theirs: Reference = name.parse().unwrap();
            assert_eq!(ours.registry(), theirs.registry(), "{name}");
            assert_eq!(ours.repository(), theirs.repository(), "{name}");
            assert_eq!(ours.tag(), theirs.tag(), "{name}");
            assert_eq!(ours.digest(), theirs.digest(), "{name}");
            assert_eq!(ours.whole(), theirs.whole(), "{name}");
        }
    }

    #[test]
    fn loopback_registries_are_recognized() {
        for r in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in [
            "docker.io",
            "10.0.0.1:5000",
            "localhost.example:5000",
            "[fe80::1]:5000",
        ] {
            assert!(!is_loopback(r), "{r}");
        }
    }
}
