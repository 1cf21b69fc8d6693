//! Reading image records back from containerd: list, remove, resolve.

use std::collections::HashMap;
use std::time::SystemTime;

use serde::Deserialize;

use super::document::{self, ConfigHead, Index, Manifest};
use super::unpack::{self, Layer};
use super::{create_lease, release_lease, ImageError, ImageSummary, ResolvedImage};
use crate::containerd::{labels, Client, ContainerdError, Descriptor};
use crate::reference;

/// An image record followed down to the host platform's manifest and config.
struct Stored {
    manifest: Manifest,
    config_digest: String,
    config_bytes: Vec<u8>,
    config: ConfigHead,
}

async fn read_document<T: for<'de> Deserialize<'de>>(
    client: &Client,
    reference: &str,
    digest: &str,
    kind: &'static str,
) -> Result<(Vec<u8>, T), ImageError> {
    let bytes = client
        .read_blob(digest)
        .await
        .map_err(|source| ImageError::ReadBlob {
            reference: reference.to_string(),
            digest: digest.to_string(),
            source,
        })?;
    let doc = serde_json::from_slice(&bytes).map_err(|source| ImageError::BadStoredDocument {
        reference: reference.to_string(),
        digest: digest.to_string(),
        kind,
        source,
    })?;
    Ok((bytes, doc))
}

async fn load(client: &Client, reference: &str, target: &Descriptor) -> Result<Stored, ImageError> {
    let manifest_digest = if document::is_index(&target.media_type) {
        let (_, index): (_, Index) =
            read_document(client, reference, &target.digest, "index").await?;
        document::pick_from_index(&index, || format!("image {reference}"))?
            .1
            .digest
    } else if document::is_manifest(&target.media_type) {
        target.digest.clone()
    } else {
        return Err(ImageError::UnsupportedMediaType {
            what: format!("image {reference}"),
            digest: target.digest.clone(),
            media_type: target.media_type.clone(),
        });
    };
    let (_, manifest): (_, Manifest) =
        read_document(client, reference, &manifest_digest, "manifest").await?;
    let (config_bytes, config): (_, ConfigHead) =
        read_document(client, reference, &manifest.config.digest, "config").await?;
    Ok(Stored {
        config_digest: manifest.config.digest.clone(),
        manifest,
        config_bytes,
        config,
    })
}

fn parse_created(created: Option<&str>) -> Option<SystemTime> {
    let parsed =
        time::OffsetDateTime::parse(created?, &time::format_description::well_known::Rfc3339)
            .ok()?;
    Some(parsed.into())
}

pub(super) async fn list(client: &Client) -> Result<Vec<ImageSummary>, ImageError> {
    let records = client
        .list_images()
        .await
        .map_err(|source| ImageError::Containerd {
            action: "listing images".into(),
            source,
        })?;
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        let Some(target) = record.target else {
            continue;
        };
        let (size, created) = match load(client, &record.name, &target).await {
            Ok(stored) => (
                super::archive::image_size(&stored.manifest),
                parse_created(stored.config.created.as_deref()),
            ),
            // Content another tool left incomplete: still list the record.
            Err(ImageError::ReadBlob { source, .. }) if source.is_not_found() => {
                tracing::warn!(image = %record.name, error = %source, "image content missing");
                (0, None)
            }
            Err(e) => return Err(e),
        };
        out.push(ImageSummary {
            name: record.name,
            digest: target.digest,
            size,
            created,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub(super) async fn remove(client: &Client, name: &str) -> Result<(), ImageError> {
    let name = reference::normalize(name)?;
    match client.delete_image(&name, true).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Err(not_found(client, name)),
        Err(source) => Err(ImageError::Containerd {
            action: format!("removing image {name}"),
            source,
        }),
    }
}

fn not_found(client: &Client, reference: String) -> ImageError {
    ImageError::NotFound {
        reference,
        namespace: client.namespace().to_string(),
    }
}

pub(super) async fn resolve(
    client: &Client,
    name: &str,
    snapshotter: &str,
) -> Result<ResolvedImage, ImageError> {
    let name = reference::normalize(name)?;
    let record = client
        .get_image(&name)
        .await
        .map_err(|source| ImageError::Containerd {
            action: format!("looking up image {name}"),
            source,
        })?
        .ok_or_else(|| not_found(client, name.clone()))?;
    let target = record.target.ok_or_else(|| ImageError::Containerd {
        action: format!("looking up image {name}"),
        source: ContainerdError::Malformed {
            op: "images.get",
            field: "image.target",
        },
    })?;
    let stored = load(client, &name, &target).await?;
    let config: oci_spec::image::ImageConfiguration = serde_json::from_slice(&stored.config_bytes)
        .map_err(|source| ImageError::BadStoredDocument {
            reference: name.clone(),
            digest: stored.config_digest.clone(),
            kind: "config",
            source,
        })?;
    let diff_ids = &stored.config.rootfs.diff_ids;
    let layers = unpack::layers_of(&stored.manifest, diff_ids).map_err(|problem| {
        ImageError::BadStoredImage {
            reference: name.clone(),
            problem,
        }
    })?;
    let chain_id = unpack::chain_ids(diff_ids).pop().unwrap_or_default();
    let unpacked = chain_id.is_empty()
        || client
            .stat_snapshot(snapshotter, &chain_id)
            .await
            .map_err(|source| ImageError::Containerd {
                action: format!("looking up snapshot {chain_id} of image {name}"),
                source,
            })?
            .is_some();
    if !unpacked {
        unpack_for(client, &name, snapshotter, &layers, &stored.config_digest).await?;
    }
    Ok(ResolvedImage {
        name,
        config,
        chain_id,
        snapshotter: snapshotter.to_string(),
    })
}

/// Unpacks a stored image for `snapshotter` and makes its config keep the new chain alive.
async fn unpack_for(
    client: &Client,
    name: &str,
    snapshotter: &str,
    layers: &[Layer],
    config_digest: &str,
) -> Result<(), ImageError> {
    tracing::info!(image = %name, snapshotter, "unpacking image");
    let lease = create_lease(client, "unpack", name).await?;
    let result = async {
        let top = unpack::unpack(client, name, snapshotter, layers, &lease).await?;
        let gc_label = HashMap::from([(format!("{}.{snapshotter}", labels::GC_REF_SNAPSHOT), top)]);
        client
            .update_content_labels(config_digest, gc_label)
            .await
            .map_err(|source| ImageError::Containerd {
                action: format!("labelling config {config_digest} of image {name}"),
                source,
            })
    }
    .await;
    release_lease(client, &lease, result.is_err()).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_parses_rfc3339_with_nanoseconds() {
        let t = parse_created(Some("2023-05-18T22:34:17.223409627Z")).unwrap();
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 1684449257);
        assert_eq!(parse_created(Some("yesterday")), None);
        assert_eq!(parse_created(None), None);
    }
}
