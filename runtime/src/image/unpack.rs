//! Layers into a chain of committed snapshots, named by chain id as containerd names them, so
//! images sharing base layers share snapshots (with podctl's and with `ctr`'s unpacks alike).

use std::collections::HashMap;

use sha2::{Digest as _, Sha256};

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
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let chains = chain_ids(&diff_ids);
    let unpack_err = |layer: &Layer, chain: &str, source| ImageError::Unpack {
        reference: reference.to_string(),
        layer: layer.digest.clone(),
        chain_id: chain.to_string(),
        source: Box::new(source),
    };

    // Find the deepest snapshot already there, top down: a fully unpacked image costs one call.
    let mut present = 0;
    for (i, chain) in chains.iter().enumerate().rev() {
        let found = client
            .stat_snapshot(snapshotter, chain)
            .await
            .map_err(|e| unpack_err(&layers[i], chain, e))?;
        if found.is_some() {
            present = i + 1;
            break;
        }
    }

    for i in present..layers.len() {
        let (layer, chain) = (&layers[i], &chains[i]);
        let parent = if i == 0 { "" } else { chains[i - 1].as_str() };
        let key = format!("podctl-extract-{:016x}-{chain}", rand::random::<u64>());
        let mounts = client
            .prepare_snapshot(snapshotter, &key, parent, HashMap::new(), Some(lease))
            .await
            .map_err(|e| unpack_err(layer, chain, e))?;
        match apply_and_commit(
            client,
            reference,
            snapshotter,
            layer,
            chain,
            &key,
            mounts,
            lease,
        )
        .await
        {
            Ok(()) => {}
            Err(e) => {
                if let Err(cleanup) = client.remove_snapshot(snapshotter, &key).await {
                    tracing::warn!(snapshot = %key, error = %cleanup, "cannot remove the snapshot of a failed unpack (its lease will expire)");
                }
                return Err(e);
            }
        }
    }
    Ok(chains.last().cloned().unwrap_or_default())
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
        // A concurrent unpack committed the same chain first: theirs is as good as ours.
        Err(e) if e.is_already_exists() => {
            let _ = client.remove_snapshot(snapshotter, key).await;
            Ok(())
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
