//! The files of a configMap, secret, downwardAPI or projected volume, computed as the
//! kubelet's volume plugins do (`MakePayload` of `pkg/volume/configmap` and
//! `pkg/volume/secret`, `CollectData` of `pkg/volume/downwardapi`, `collectData` of
//! `pkg/volume/projected`). Pure: the objects come from [`Objects`], the pod's live fields
//! from [`LiveFields`].

use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, KeyToPath, Pod, Volume, VolumeProjection,
};

use super::projection::{FileProjection, Payload};
use super::SandboxError;
use crate::downward::{self, LiveFields};
use crate::manifest::Objects;

/// The API's default for `defaultMode`: 0644.
const DEFAULT_MODE: i32 = 0o644;

/// Refuses what no payload can be made for, from the spec alone (no objects needed): the
/// projected sources podctl cannot honour (a standalone node has no API server to issue
/// tokens or certificates) and the alpha `defaultUser`/`user` fields.
pub(crate) fn check(volume: &Volume) -> Result<(), SandboxError> {
    let unsupported = |what: &str| SandboxError::UnsupportedVolume {
        volume: volume.name.clone(),
        reason: format!("{what} is not supported"),
    };
    let default_user = volume
        .config_map
        .as_ref()
        .and_then(|c| c.default_user)
        .or(volume.secret.as_ref().and_then(|s| s.default_user))
        .or(volume.downward_api.as_ref().and_then(|d| d.default_user))
        .or(volume.projected.as_ref().and_then(|p| p.default_user));
    if default_user.is_some() {
        return Err(unsupported("defaultUser"));
    }
    let key_users = |items: Option<&Vec<KeyToPath>>| {
        items.is_some_and(|items| items.iter().any(|i| i.user.is_some()))
    };
    let file_users = |items: Option<&Vec<DownwardAPIVolumeFile>>| {
        items.is_some_and(|items| items.iter().any(|i| i.user.is_some()))
    };
    if key_users(volume.config_map.as_ref().and_then(|c| c.items.as_ref()))
        || key_users(volume.secret.as_ref().and_then(|s| s.items.as_ref()))
        || file_users(volume.downward_api.as_ref().and_then(|d| d.items.as_ref()))
    {
        return Err(unsupported("items[].user"));
    }
    let sources = volume
        .projected
        .as_ref()
        .and_then(|p| p.sources.as_deref())
        .unwrap_or_default();
    for source in sources {
        if source.service_account_token.is_some() {
            return Err(unsupported("projected source serviceAccountToken"));
        }
        if source.cluster_trust_bundle.is_some() {
            return Err(unsupported("projected source clusterTrustBundle"));
        }
        if source.pod_certificate.is_some() {
            return Err(unsupported("projected source podCertificate"));
        }
        if key_users(source.config_map.as_ref().and_then(|c| c.items.as_ref()))
            || key_users(source.secret.as_ref().and_then(|s| s.items.as_ref()))
            || file_users(source.downward_api.as_ref().and_then(|d| d.items.as_ref()))
        {
            return Err(unsupported("items[].user"));
        }
    }
    Ok(())
}

/// The files of `volume` (a configMap, secret, downwardAPI or projected volume of `pod`).
///
/// A missing object is an error unless the volume (or projected source) is `optional`,
/// then it is empty; so is a missing key named in `items`, which an optional one skips.
pub(crate) fn payload(
    volume: &Volume,
    pod: &Pod,
    objects: &Objects,
    live: &LiveFields,
) -> Result<Payload, SandboxError> {
    check(volume)?;
    let name = volume.name.as_str();
    let mut payload = Payload::new();
    if let Some(cm) = &volume.config_map {
        let mode = cm.default_mode.unwrap_or(DEFAULT_MODE);
        config_map_files(
            name,
            &cm.name,
            cm.items.as_deref(),
            cm.optional,
            mode,
            objects,
            &mut payload,
        )?;
    } else if let Some(secret) = &volume.secret {
        let mode = secret.default_mode.unwrap_or(DEFAULT_MODE);
        let secret_name = secret.secret_name.as_deref().unwrap_or_default();
        secret_files(
            name,
            secret_name,
            secret.items.as_deref(),
            secret.optional,
            mode,
            objects,
            &mut payload,
        )?;
    } else if let Some(d) = &volume.downward_api {
        let mode = d.default_mode.unwrap_or(DEFAULT_MODE);
        downward_files(
            name,
            d.items.as_deref().unwrap_or_default(),
            mode,
            pod,
            live,
            &mut payload,
        )?;
    } else if let Some(p) = &volume.projected {
        let mode = p.default_mode.unwrap_or(DEFAULT_MODE);
        for source in p.sources.as_deref().unwrap_or_default() {
            // Every source writes into the same map: a later source's path replaces an
            // earlier one's, as the kubelet's merge does.
            projected_source(name, source, mode, pod, objects, live, &mut payload)?;
        }
    } else {
        return Err(SandboxError::UnsupportedVolume {
            volume: volume.name.clone(),
            reason: "not a configMap, secret, downwardAPI or projected volume".into(),
        });
    }
    Ok(payload)
}

fn projected_source(
    volume: &str,
    source: &VolumeProjection,
    default_mode: i32,
    pod: &Pod,
    objects: &Objects,
    live: &LiveFields,
    payload: &mut Payload,
) -> Result<(), SandboxError> {
    if let Some(cm) = &source.config_map {
        config_map_files(
            volume,
            &cm.name,
            cm.items.as_deref(),
            cm.optional,
            default_mode,
            objects,
            payload,
        )
    } else if let Some(secret) = &source.secret {
        secret_files(
            volume,
            &secret.name,
            secret.items.as_deref(),
            secret.optional,
            default_mode,
            objects,
            payload,
        )
    } else if let Some(d) = &source.downward_api {
        downward_files(
            volume,
            d.items.as_deref().unwrap_or_default(),
            default_mode,
            pod,
            live,
            payload,
        )
    } else {
        // `check` refused the other kinds; an empty source projects nothing.
        Ok(())
    }
}

/// The kubelet's `configmap.MakePayload`: every key of `data` and `binaryData`, or only
/// `items`.
fn config_map_files(
    volume: &str,
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
    default_mode: i32,
    objects: &Objects,
    payload: &mut Payload,
) -> Result<(), SandboxError> {
    let keys = objects.config_maps.get(name).map(|cm| {
        let strings = cm
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()));
        let binary = cm
            .binary_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()));
        strings.chain(binary).collect()
    });
    let source = KeySource {
        volume,
        name,
        secret: false,
    };
    source.files(keys, items, optional, default_mode, payload)
}

/// The kubelet's `secret.MakePayload`: every key of `data` (with `stringData` merged in),
/// or only `items`.
fn secret_files(
    volume: &str,
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
    default_mode: i32,
    objects: &Objects,
    payload: &mut Payload,
) -> Result<(), SandboxError> {
    let keys = objects.secrets.get(name).map(|s| {
        s.data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect()
    });
    let source = KeySource {
        volume,
        name,
        secret: true,
    };
    source.files(keys, items, optional, default_mode, payload)
}

/// A ConfigMap or Secret a volume projects, named for errors.
struct KeySource<'a> {
    volume: &'a str,
    name: &'a str,
    secret: bool,
}

impl KeySource<'_> {
    /// What the ConfigMap and Secret `MakePayload`s share: every key (`keys`, `None` when
    /// the object is not given), or only `items`; a missing object or key is an error
    /// unless `optional`.
    fn files(
        &self,
        keys: Option<Vec<(String, Vec<u8>)>>,
        items: Option<&[KeyToPath]>,
        optional: Option<bool>,
        default_mode: i32,
        payload: &mut Payload,
    ) -> Result<(), SandboxError> {
        let optional = optional.unwrap_or(false);
        let keys = match keys {
            Some(keys) => keys,
            None if optional => Vec::new(),
            None => return Err(self.not_found(None)),
        };
        match items {
            None | Some([]) => {
                for (key, data) in keys {
                    payload.insert(key, file(data, None, default_mode));
                }
            }
            Some(items) => {
                for item in items {
                    match keys.iter().find(|(k, _)| *k == item.key) {
                        Some((_, data)) => {
                            payload.insert(
                                item.path.clone(),
                                file(data.clone(), item.mode, default_mode),
                            );
                        }
                        None if optional => {}
                        None => return Err(self.not_found(Some(&item.key))),
                    }
                }
            }
        }
        Ok(())
    }

    /// The object, or (`Some(key)`) one of its keys, is missing.
    fn not_found(&self, key: Option<&str>) -> SandboxError {
        let (volume, name) = (self.volume.to_owned(), self.name.to_owned());
        match (self.secret, key) {
            (false, None) => SandboxError::ConfigMapNotFound {
                volume,
                config_map: name,
            },
            (true, None) => SandboxError::SecretNotFound {
                volume,
                secret: name,
            },
            (false, Some(key)) => SandboxError::ConfigMapKeyNotFound {
                volume,
                config_map: name,
                key: key.to_owned(),
            },
            (true, Some(key)) => SandboxError::SecretKeyNotFound {
                volume,
                secret: name,
                key: key.to_owned(),
            },
        }
    }
}

/// The kubelet's `downwardapi.CollectData`: one file per item, its path cleaned.
fn downward_files(
    volume: &str,
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
    pod: &Pod,
    live: &LiveFields,
    payload: &mut Payload,
) -> Result<(), SandboxError> {
    for item in items {
        let path = super::projection::clean_path(volume, &item.path)?;
        let data = if let Some(field) = &item.field_ref {
            downward::field_value(pod, &field.field_path, live).ok_or_else(|| {
                SandboxError::DownwardField {
                    volume: volume.to_owned(),
                    path: item.path.clone(),
                    field_path: field.field_path.clone(),
                }
            })?
        } else if let Some(selector) = &item.resource_field_ref {
            let container_name = selector.container_name.as_deref().unwrap_or_default();
            let container = find_container(pod, container_name).ok_or_else(|| {
                SandboxError::DownwardContainer {
                    volume: volume.to_owned(),
                    path: item.path.clone(),
                    container: container_name.to_owned(),
                }
            })?;
            downward::resource_value(container, selector).map_err(|source| {
                SandboxError::DownwardResource {
                    volume: volume.to_owned(),
                    path: item.path.clone(),
                    source,
                }
            })?
        } else {
            // The kubelet writes an item with neither an empty file.
            String::new()
        };
        payload.insert(path, file(data.into_bytes(), item.mode, default_mode));
    }
    Ok(())
}

/// The kubelet's `findContainerInPod`: regular containers first, then init containers.
fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

/// A file with the item's `mode`, else the volume's `defaultMode`. The API allows 0..=0777;
/// like Go's `os.FileMode`, bits above are ignored.
fn file(data: Vec<u8>, mode: Option<i32>, default_mode: i32) -> FileProjection {
    FileProjection {
        data,
        mode: mode.unwrap_or(default_mode) as u32 & 0o777,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn volume(value: serde_json::Value) -> Volume {
        serde_json::from_value(value).unwrap()
    }

    fn objects() -> Objects {
        let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "cfg"},
            "data": {"app.conf": "a=1", "other": "o"},
            "binaryData": {"blob": "AAEC"},
        }))
        .unwrap();
        let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
            "metadata": {"name": "creds"},
            "data": {"user": "YWRtaW4=", "pass": "aHVudGVyMg=="},
        }))
        .unwrap();
        Objects {
            config_maps: [("cfg".to_owned(), cm)].into(),
            secrets: [("creds".to_owned(), secret)].into(),
        }
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [{"name": "init"}],
                "containers": [{"name": "c"}],
            },
        }))
        .unwrap()
    }

    fn files(p: &Payload) -> Vec<(&str, &[u8], u32)> {
        p.iter()
            .map(|(k, f)| (k.as_str(), f.data.as_slice(), f.mode))
            .collect()
    }

    fn make(v: serde_json::Value) -> Result<Payload, SandboxError> {
        payload(&volume(v), &pod(), &objects(), &LiveFields::default())
    }

    #[test]
    fn config_map_all_keys_with_default_mode() {
        let p = make(json!({"name": "v", "configMap": {"name": "cfg"}})).unwrap();
        assert_eq!(
            files(&p),
            [
                ("app.conf", &b"a=1"[..], 0o644),
                ("blob", &[0, 1, 2][..], 0o644),
                ("other", &b"o"[..], 0o644),
            ]
        );
        let p =
            make(json!({"name": "v", "configMap": {"name": "cfg", "defaultMode": 0o400}})).unwrap();
        assert!(p.values().all(|f| f.mode == 0o400));
    }

    #[test]
    fn config_map_items_map_keys_to_paths_and_modes() {
        let p = make(
            json!({"name": "v", "configMap": {"name": "cfg", "defaultMode": 0o440, "items": [
                {"key": "app.conf", "path": "etc/app/app.conf", "mode": 0o600},
                {"key": "blob", "path": "bin/blob"},
            ]}}),
        )
        .unwrap();
        assert_eq!(
            files(&p),
            [
                ("bin/blob", &[0, 1, 2][..], 0o440),
                ("etc/app/app.conf", &b"a=1"[..], 0o600),
            ]
        );
    }

    #[test]
    fn missing_config_maps_and_keys() {
        let err = make(json!({"name": "v", "configMap": {"name": "nope"}})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "volume \"v\": configmap \"nope\" not found"
        );
        let p =
            make(json!({"name": "v", "configMap": {"name": "nope", "optional": true}})).unwrap();
        assert!(p.is_empty());

        let items = json!([{"key": "missing", "path": "m"}, {"key": "other", "path": "o"}]);
        let err =
            make(json!({"name": "v", "configMap": {"name": "cfg", "items": items}})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "volume \"v\": configmap \"cfg\": configmap references non-existent config key: missing"
        );
        let p = make(
            json!({"name": "v", "configMap": {"name": "cfg", "items": items, "optional": true}}),
        )
        .unwrap();
        assert_eq!(files(&p), [("o", &b"o"[..], 0o644)]);
    }

    #[test]
    fn secret_volumes() {
        let p = make(json!({"name": "v", "secret": {"secretName": "creds"}})).unwrap();
        assert_eq!(
            files(&p),
            [
                ("pass", &b"hunter2"[..], 0o644),
                ("user", &b"admin"[..], 0o644)
            ]
        );
        let p = make(
            json!({"name": "v", "secret": {"secretName": "creds", "defaultMode": 0o400,
            "items": [{"key": "pass", "path": "db/password"}]}}),
        )
        .unwrap();
        assert_eq!(files(&p), [("db/password", &b"hunter2"[..], 0o400)]);

        let err = make(json!({"name": "v", "secret": {"secretName": "nope"}})).unwrap_err();
        assert_eq!(err.to_string(), "volume \"v\": secret \"nope\" not found");
        let p =
            make(json!({"name": "v", "secret": {"secretName": "nope", "optional": true}})).unwrap();
        assert!(p.is_empty());
        let err = make(json!({"name": "v", "secret": {"secretName": "creds",
            "items": [{"key": "token", "path": "t"}]}}))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "volume \"v\": secret \"creds\": references non-existent secret key: token"
        );
    }

    #[test]
    fn projected_sources_share_one_dir_and_later_ones_win() {
        let p = make(
            json!({"name": "v", "projected": {"defaultMode": 0o440, "sources": [
                {"configMap": {"name": "cfg", "items": [{"key": "app.conf", "path": "conf"}]}},
                {"secret": {"name": "creds", "items": [
                    {"key": "user", "path": "conf", "mode": 0o400},
                    {"key": "pass", "path": "pass"},
                ]}},
                {"configMap": {"name": "absent", "optional": true}},
                {"downwardAPI": {"items": []}},
            ]}}),
        )
        .unwrap();
        assert_eq!(
            files(&p),
            [
                ("conf", &b"admin"[..], 0o400),
                ("pass", &b"hunter2"[..], 0o440)
            ]
        );
        let err = make(json!({"name": "v", "projected": {"sources": [
            {"secret": {"name": "absent"}},
        ]}}))
        .unwrap_err();
        assert!(matches!(err, SandboxError::SecretNotFound { .. }), "{err}");
    }

    #[test]
    fn unsupported_sources_and_fields_are_named() {
        for (source, what) in [
            (
                json!({"serviceAccountToken": {"path": "token"}}),
                "serviceAccountToken",
            ),
            (
                json!({"clusterTrustBundle": {"path": "b", "name": "x"}}),
                "clusterTrustBundle",
            ),
            (
                json!({"podCertificate": {"signerName": "a/b", "keyType": "ED25519",
                "credentialBundlePath": "c"}}),
                "podCertificate",
            ),
        ] {
            let v = volume(json!({"name": "v", "projected": {"sources": [source]}}));
            let err = check(&v).unwrap_err();
            assert!(
                matches!(&err, SandboxError::UnsupportedVolume { volume, reason }
                    if volume == "v" && reason.contains(what)),
                "{err}"
            );
        }
        let v = volume(json!({"name": "v", "configMap": {"name": "cfg", "defaultUser": 1000}}));
        assert!(check(&v).unwrap_err().to_string().contains("defaultUser"));
        let v = volume(json!({"name": "v", "secret": {"secretName": "creds",
            "items": [{"key": "user", "path": "u", "user": 1000}]}}));
        assert!(check(&v).unwrap_err().to_string().contains("user"));
    }

    #[test]
    fn downward_items_without_a_source_and_unknown_containers() {
        // Neither fieldRef nor resourceFieldRef: an empty file (the kubelet's behaviour),
        // its path cleaned.
        let p = make(json!({"name": "v", "downwardAPI": {"defaultMode": 0o400,
            "items": [{"path": "./dir//empty", "mode": 0o444}]}}))
        .unwrap();
        assert_eq!(files(&p), [("dir/empty", &b""[..], 0o444)]);

        let err = make(json!({"name": "v", "downwardAPI": {"items": [
            {"path": "mem", "resourceFieldRef": {"containerName": "ghost", "resource": "limits.memory"}},
        ]}}))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "volume \"v\": item \"mem\": container \"ghost\" not found"
        );
        let err =
            make(json!({"name": "v", "downwardAPI": {"items": [{"path": "../x"}]}})).unwrap_err();
        assert!(
            matches!(err, SandboxError::InvalidProjectionPath { .. }),
            "{err}"
        );
        assert_eq!(find_container(&pod(), "init").unwrap().name, "init");
        assert_eq!(find_container(&pod(), "c").unwrap().name, "c");
    }

    /// Through `crate::downward`: the values and formats are its own.
    #[test]
    fn downward_items_take_the_pods_fields_and_resources() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "labels": {"b": "2", "a": "1"}},
            "spec": {"containers": [{"name": "c",
                "resources": {"limits": {"memory": "64Mi"}}}]},
        }))
        .unwrap();
        let v = volume(json!({"name": "v", "downwardAPI": {"items": [
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "c",
                "resource": "limits.memory", "divisor": "1Mi"}},
        ]}}));
        let p = payload(&v, &pod, &Objects::default(), &LiveFields::default()).unwrap();
        assert_eq!(
            files(&p),
            [
                ("labels", &b"a=\"1\"\nb=\"2\""[..], 0o644),
                ("mem", &b"64"[..], 0o644),
                ("name", &b"p"[..], 0o644),
            ]
        );
    }
}
