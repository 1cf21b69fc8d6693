//! Layers into a chain of committed snapshots, named by chain id as containerd names them, so
//! images sharing base layers share snapshots (with podctl's and with `ctr`'s unpacks alike).

use std::collections::HashMap;

use sha2::{Digest as _, Sha256};

use super::document::Manifest;
use super::ImageError;
use crate::containerd::{Client, Descriptor, Lease};

/// One layer to apply: its blob descriptor and the digest of its uncompressed tar.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub diff_id: String,
}

/// The layers of `manifest` paired with the diff ids of its config; the problem, worded for an
/// error message, when their counts differ.
pub(crate) fn layers_of(manifest: &Manifest, diff_ids: &[String]) -> Result<Vec<Layer>, String> {
    if manifest.layers.len() != diff_ids.len() {
        return Err(format!(
            "its manifest has {} layers but its config {} lists {} diff ids",
            manifest.layers.len(),
            manifest.config.digest,
            diff_ids.len()
        ));
    }
    Ok(manifest
        .layers
        .iter()
        .zip(diff_ids)
        .map(|(l, diff_id)| Layer {
            media_type: l.media_type.clone(),
            digest: l.digest.clone(),
            size: l.size,
            diff_id: diff_id.clone(),
        })
        .collect())
}

/// Chain ids of a layer stack: `chain_0 = diff_0`, `chain_n = sha256(chain_{n-1} + " " + diff_n)`.
pub(crate) fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chains: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let chain = match chains.last() {
            None => diff_id.clone(),
            Some(parent) => {
                let mut h = Sha256::new();
                h.update(parent.as_bytes());
                h.update(b" ");
                h.update(diff_id.as_bytes());
                format!("sha256:{}", hex::encode(h.finalize()))
            }
        };
        chains.push(chain);
    }
    chains
}

/// Makes sure every snapshot of the chain exists in `snapshotter`, applying the missing layers
/// on top of the deepest one present; returns the top chain id ("" for an image without
/// layers). The layer blobs must be in the content store.
///
/// Work happens under `lease`, so a crash leaves nothing beyond the lease's expiry; the caller
/// must make the image config reference the top snapshot (gc label) before dropping the lease.
/// Idempotent: snapshots already committed (by an earlier import, another image or a concurrent
/// unpack) are reused.
pub(crate) async fn unpack(
    client: &Client,
    reference: &str,
    snapshotter: &str,
    layers: &[Layer],
    lease: &Lease,
) -> Result<String, ImageError> {
    let mut unpacker = Unpacker::new(client, reference, snapshotter, layers, lease).await?;
    for i in unpacker.next()..layers.len() {
        unpacker.apply(i).await?;
    }
    Ok(unpacker.top())
}

/// Applies a layer stack one layer at a time, bottom up, so that a pull can unpack each layer
/// as soon as its blob (and those below it) are stored, while the rest still download.
pub(crate) struct Unpacker<'a> {
    client: &'a Client,
    reference: &'a str,
    snapshotter: &'a str,
    layers: &'a [Layer],
    chains: Vec<String>,
    lease: &'a Lease,
    /// Index of the first layer whose snapshot is not there yet.
    next: usize,
}

impl<'a> Unpacker<'a> {
    /// Finds the deepest snapshot of the chain already there, top down: a fully unpacked image
    /// costs one call.
    pub async fn new(
        client: &'a Client,
        reference: &'a str,
        snapshotter: &'a str,
        layers: &'a [Layer],
        lease: &'a Lease,
    ) -> Result<Unpacker<'a>, ImageError> {
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let mut me = Unpacker {
            client,
            reference,
            snapshotter,
            layers,
            chains: chain_ids(&diff_ids),
            lease,
            next: 0,
        };
        let kind = format!("snapshots/{snapshotter}");
        for i in (0..layers.len()).rev() {
            // Held by the lease before it is looked up: gc must not take the snapshot this
            // unpack then builds on.
            client
                .add_lease_resource(lease, &kind, &me.chains[i])
                .await
                .map_err(|e| me.error(i, e))?;
            let found = client
                .stat_snapshot(snapshotter, &me.chains[i])
                .await
                .map_err(|e| me.error(i, e))?;
            if found.is_some() {
                me.next = i + 1;
                break;
            }
        }
        Ok(me)
    }

    /// The first layer still to apply (`layers.len()` when all are unpacked).
    pub fn next(&self) -> usize {
        self.next
    }

    /// The top chain id ("" for an image without layers).
    pub fn top(&self) -> String {
        self.chains.last().cloned().unwrap_or_default()
    }

    fn error(&self, i: usize, source: crate::containerd::ContainerdError) -> ImageError {
        ImageError::Unpack {
            reference: self.reference.to_string(),
            layer: self.layers[i].digest.clone(),
            chain_id: self.chains[i].clone(),
            source: Box::new(source),
        }
    }

    /// Applies layer `i`, which must be [`Unpacker::next`]; its blob must be stored.
    pub async fn apply(&mut self, i: usize) -> Result<(), ImageError> {
        debug_assert_eq!(i, self.next);
        let (layer, chain) = (&self.layers[i], &self.chains[i]);
        let parent = if i == 0 {
            ""
        } else {
            self.chains[i - 1].as_str()
        };
        let started = std::time::Instant::now();
        let key = format!("podctl-extract-{:016x}-{chain}", rand::random::<u64>());
        let (client, snapshotter) = (self.client, self.snapshotter);
        let mounts = client
            .prepare_snapshot(snapshotter, &key, parent, HashMap::new(), Some(self.lease))
            .await
            .map_err(|e| self.error(i, e))?;
        let applied = apply_and_commit(
            client,
            self.reference,
            snapshotter,
            layer,
            chain,
            &key,
            mounts,
            self.lease,
        )
        .await;
        if let Err(e) = applied {
            if let Err(cleanup) = client.remove_snapshot(snapshotter, &key).await {
                tracing::warn!(snapshot = %key, error = %cleanup, "cannot remove the snapshot of a failed unpack (its lease will expire)");
            }
            return Err(e);
        }
        tracing::debug!(layer = %layer.digest, elapsed = ?started.elapsed(), "layer unpacked");
        self.next = i + 1;
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
async fn apply_and_commit(
    client: &Client,
    reference: &str,
    snapshotter: &str,
    layer: &Layer,
    chain: &str,
    key: &str,
    mounts: Vec<crate::containerd::Mount>,
    lease: &Lease,
) -> Result<(), ImageError> {
    let unpack_err = |source| ImageError::Unpack {
        reference: reference.to_string(),
        layer: layer.digest.clone(),
        chain_id: chain.to_string(),
        source: Box::new(source),
    };
    let descriptor = Descriptor {
        media_type: layer.media_type.clone(),
        digest: layer.digest.clone(),
        size: layer.size as i64,
        annotations: HashMap::new(),
    };
    let applied = client
        .apply_diff(descriptor, mounts, Some(lease))
        .await
        .map_err(unpack_err)?;
    if applied.digest != layer.diff_id {
        return Err(ImageError::DiffIdMismatch {
            reference: reference.to_string(),
            layer: layer.digest.clone(),
            diff_id: layer.diff_id.clone(),
            actual: applied.digest,
        });
    }
    match client
        .commit_snapshot(snapshotter, chain, key, HashMap::new(), Some(lease))
        .await
    {
        Ok(()) => Ok(()),
        // A concurrent unpack committed the same chain first: theirs is as good as ours, once
        // our lease holds it too.
        Err(e) if e.is_already_exists() => {
            let _ = client.remove_snapshot(snapshotter, key).await;
            client
                .add_lease_resource(lease, &format!("snapshots/{snapshotter}"), chain)
                .await
                .map_err(unpack_err)
        }
        Err(e) => Err(unpack_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let chains = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chains[0], a);
        let expected = hex::encode(Sha256::digest(format!("{a} {b}").as_bytes()));
        assert_eq!(chains[1], format!("sha256:{expected}"));
        assert!(chain_ids(&[]).is_empty());
    }
}
