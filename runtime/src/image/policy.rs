//! `imagePullPolicy`: whether a container's image is pulled, used as present, or required to
//! be present, with Kubernetes' default.

use std::time::{Duration, Instant};

use super::pull::{pull, PullOptions, PulledImage};
use super::{resolve, ImageError, ResolvedImage};
use crate::containerd::Client;

/// A container's `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Ask the registry every time; content already present is not downloaded again.
    Always,
    /// Pull only when the image is not in containerd.
    IfNotPresent,
    /// Never pull; the image must be present.
    Never,
}

impl PullPolicy {
    /// The policy of a container: the field when set, else Kubernetes' default for the
    /// (normalized) image: `Always` for the `latest` tag (which a reference with neither tag
    /// nor digest has), `IfNotPresent` otherwise.
    pub fn of(field: Option<&str>, normalized_image: &str) -> Self {
        match field {
            Some("Always") => Self::Always,
            Some("Never") => Self::Never,
            Some("IfNotPresent") => Self::IfNotPresent,
            _ => {
                let name = normalized_image
                    .split_once('@')
                    .map_or(normalized_image, |(n, _)| n);
                let last = name.rsplit('/').next().unwrap_or(name);
                match last.split_once(':') {
                    Some((_, "latest")) => Self::Always,
                    _ => Self::IfNotPresent,
                }
            }
        }
    }
}

/// An image ready to run, and how it got there.
#[derive(Debug, Clone)]
pub struct Ensured {
    /// Shared by every container naming the image.
    pub image: std::sync::Arc<ResolvedImage>,
    /// Set when the image was pulled (under `Always`, possibly without downloading a byte).
    pub pulled: Option<PulledImage>,
    /// Time spent pulling.
    pub elapsed: Duration,
}

/// Makes `name` (normalized) available per `policy`: pulls it when the policy says so, then
/// resolves it for `opts.snapshotter`.
pub async fn ensure(
    client: &Client,
    name: &str,
    policy: PullPolicy,
    opts: &PullOptions,
) -> Result<Ensured, ImageError> {
    let present = |image| Ensured {
        image: std::sync::Arc::new(image),
        pulled: None,
        elapsed: Duration::ZERO,
    };
    match policy {
        PullPolicy::Never => match resolve(client, name, &opts.snapshotter).await {
            Err(ImageError::NotFound { reference, .. }) => Err(ImageError::NeverPull { reference }),
            other => other.map(present),
        },
        PullPolicy::IfNotPresent => match resolve(client, name, &opts.snapshotter).await {
            Err(ImageError::NotFound { .. }) => pull_and_resolve(client, name, opts).await,
            other => other.map(present),
        },
        PullPolicy::Always => pull_and_resolve(client, name, opts).await,
    }
}

async fn pull_and_resolve(
    client: &Client,
    name: &str,
    opts: &PullOptions,
) -> Result<Ensured, ImageError> {
    let started = Instant::now();
    let pulled = pull(client, name, opts).await?;
    let image = resolve(client, name, &opts.snapshotter).await?;
    Ok(Ensured {
        image: std::sync::Arc::new(image),
        pulled: Some(pulled),
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_kubernetes() {
        let of = |f, i| PullPolicy::of(f, i);
        assert_eq!(
            of(None, "docker.io/library/busybox:latest"),
            PullPolicy::Always
        );
        assert_eq!(
            of(None, "docker.io/library/busybox:1.36"),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            of(None, "localhost:5000/app@sha256:0123"),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            of(None, "localhost:5000/app:latest@sha256:0123"),
            PullPolicy::Always
        );
        // A registry port is not a tag.
        assert_eq!(of(None, "localhost:5000/app:v1"), PullPolicy::IfNotPresent);
        assert_eq!(
            of(Some("Never"), "docker.io/library/busybox:latest"),
            PullPolicy::Never
        );
        assert_eq!(
            of(Some("Always"), "docker.io/library/busybox:1"),
            PullPolicy::Always
        );
    }
}
