//! Kubernetes `$(VAR)` expansion and the environment/command a container really gets.
//!
//! The rules are the kubelet's (`third_party/forked/golang/expansion/expand.go`,
//! `makeEnvironmentVariables`, `ExpandContainerCommandAndArgs`) followed by what containerd's
//! CRI plugin adds on top (`WithProcessArgs`, the `HOSTNAME` variable, image env first).
//! Users port manifests from real clusters, so any divergence here changes what their
//! processes see; the tests pin the corner cases.

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::downward::LiveFields;
use crate::manifest::Objects;

/// `PATH` containerd puts in every container whose image does not set one
/// (`oci.WithDefaultPathEnv`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why no process can be started for a container.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExpandError {
    /// Neither the pod nor the image says what to run (containerd: "no command specified").
    #[error(
        "no command specified: the container has no command/args and the image no Entrypoint/Cmd"
    )]
    NoCommand,
    /// A ConfigMap or Secret `envFrom` or `valueFrom` names is not there (validation checks
    /// this before admission; an object can still go away in the daemon's manifests dir).
    #[error("{kind} {name:?} not found")]
    ObjectNotFound { kind: &'static str, name: String },
    /// The kubelet's `CreateContainerConfigError` message.
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    KeyNotFound {
        kind: &'static str,
        namespace: String,
        name: String,
        key: String,
    },
    /// A `fieldRef` or `resourceFieldRef` that validation would refuse.
    #[error("{0}")]
    Downward(String),
}

/// What `valueFrom` and `envFrom` read: the pod itself, the ConfigMaps and Secrets given
/// with it, and the fields only known on the host.
#[derive(Debug, Clone, Copy)]
pub struct EnvSources<'a> {
    pub pod: &'a Pod,
    pub objects: &'a Objects,
    pub live: &'a LiveFields,
}

impl EnvSources<'_> {
    fn config_map_data(&self, name: &str) -> Option<Vec<(String, String)>> {
        let cm = self.objects.config_maps.get(name)?;
        Some(cm.data.clone().unwrap_or_default().into_iter().collect())
    }

    /// A Secret's values as text, as the kubelet converts them (`string(bytes)`: invalid
    /// UTF-8 is kept byte for byte by Go; here it is replaced, as a Rust string must be).
    fn secret_data(&self, name: &str) -> Option<Vec<(String, String)>> {
        let s = self.objects.secrets.get(name)?;
        Some(
            s.data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
                .collect(),
        )
    }
}

/// Expands `$(NAME)` references the way the kubelet does.
///
/// `$(NAME)` becomes `lookup(NAME)` when that is `Some`, and stays literally `$(NAME)`
/// otherwise; `$$` is an escaped `$` (so `$$(NAME)` yields `$(NAME)`); a `$` followed by
/// anything else, a trailing `$` and an unterminated `$(` are kept. Substituted values are
/// never re-scanned. The name is everything up to the first `)`, so `$(A$(B))` looks up
/// `A$(B` (which, not being a valid variable name, is normally left alone).
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    // Start of the input not yet copied to `out`. Every index we cut at is either the
    // position of an ASCII byte or one past it, so slicing stays on char boundaries.
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            match bytes[cursor + 1] {
                b'$' => {
                    out.push('$');
                    cursor += 2;
                }
                b'(' => match input[cursor + 2..].find(')') {
                    Some(len) => {
                        let name = &input[cursor + 2..cursor + 2 + len];
                        match lookup(name) {
                            Some(value) => out.push_str(&value),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        cursor += 2 + len + 1;
                    }
                    None => {
                        // Unterminated: keep "$(" and go on scanning after it, as the
                        // kubelet does (a later `$(X)` can still expand).
                        out.push_str("$(");
                        cursor += 2;
                    }
                },
                // `$` followed by anything else: keep the `$` and let the next character be
                // copied as ordinary input (it may be multi-byte, so do not consume it here).
                _ => {
                    out.push('$');
                    cursor += 1;
                }
            }
            checkpoint = cursor;
        } else {
            cursor += 1;
        }
    }
    out.push_str(&input[checkpoint..]);
    out
}

/// The variables the kubelet computes for a container (`makeEnvironmentVariables`): first
/// each `envFrom` source in order (keys with their `prefix`; keys that are no valid variable
/// names skipped, see [`env_from_skipped`]), then `env` in declaration order, a later
/// declaration of a name replacing the earlier value in place. A `value` is expanded against
/// the variables set before it; a `valueFrom` is read as is: a ConfigMap or Secret key, a
/// pod field (`fieldRef`) or a resource (`resourceFieldRef`). An `optional` source or key
/// that is missing leaves the variable unset.
///
/// Image variables and `HOSTNAME` are not part of it: the kubelet does not know the image
/// environment (containerd adds it later), so `$(PATH)` only expands if the container itself
/// declares `PATH` earlier.
pub fn kubelet_env(
    container: &Container,
    sources: &EnvSources<'_>,
) -> Result<Vec<(String, String)>, ExpandError> {
    let namespace = crate::downward::namespace(sources.pod);
    let mut env: Vec<(String, String)> = Vec::new();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let (kind, name, optional, data) = if let Some(r) = &from.config_map_ref {
            let data = sources.config_map_data(&r.name);
            ("configmaps", &r.name, r.optional, data)
        } else if let Some(r) = &from.secret_ref {
            let data = sources.secret_data(&r.name);
            ("secrets", &r.name, r.optional, data)
        } else {
            continue;
        };
        let Some(data) = data else {
            if optional.unwrap_or(false) {
                continue;
            }
            return Err(ExpandError::ObjectNotFound {
                kind,
                name: name.clone(),
            });
        };
        for (key, value) in data {
            let key = format!("{prefix}{key}");
            if crate::manifest::is_env_var_name(&key) {
                set_var(&mut env, &key, value);
            }
        }
    }
    for var in container.env.iter().flatten() {
        let raw = var.value.as_deref().unwrap_or("");
        let value = if !raw.is_empty() {
            expand(raw, |name| lookup(&env, name))
        } else if let Some(from) = &var.value_from {
            match value_from(container, from, sources, namespace)? {
                Some(v) => v,
                None => continue,
            }
        } else {
            String::new()
        };
        set_var(&mut env, &var.name, value);
    }
    Ok(env)
}

/// One `valueFrom`; `None`: an optional source or key that is missing.
fn value_from(
    container: &Container,
    from: &k8s_openapi::api::core::v1::EnvVarSource,
    sources: &EnvSources<'_>,
    namespace: &str,
) -> Result<Option<String>, ExpandError> {
    if let Some(f) = &from.field_ref {
        return crate::downward::field_value(sources.pod, &f.field_path, sources.live)
            .map(Some)
            .ok_or_else(|| {
                ExpandError::Downward(format!("unsupported fieldPath: {}", f.field_path))
            });
    }
    if let Some(r) = &from.resource_field_ref {
        let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
            None => container,
            Some(name) => sources
                .pod
                .spec
                .iter()
                .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
                .find(|c| c.name == name)
                .ok_or_else(|| ExpandError::Downward(format!("container {name:?} not found")))?,
        };
        return crate::downward::resource_value(target, r)
            .map(Some)
            .map_err(|e| ExpandError::Downward(e.to_string()));
    }
    let (kind, plural, name, key, optional, data) = if let Some(k) = &from.config_map_key_ref {
        let data = sources.config_map_data(&k.name);
        ("ConfigMap", "configmaps", &k.name, &k.key, k.optional, data)
    } else if let Some(k) = &from.secret_key_ref {
        let data = sources.secret_data(&k.name);
        ("Secret", "secrets", &k.name, &k.key, k.optional, data)
    } else {
        return Ok(None);
    };
    let optional = optional.unwrap_or(false);
    let Some(data) = data else {
        if optional {
            return Ok(None);
        }
        return Err(ExpandError::ObjectNotFound {
            kind: plural,
            name: name.clone(),
        });
    };
    match data.into_iter().find(|(k, _)| k == key) {
        Some((_, value)) => Ok(Some(value)),
        None if optional => Ok(None),
        None => Err(ExpandError::KeyNotFound {
            kind,
            namespace: namespace.to_owned(),
            name: name.clone(),
            key: key.clone(),
        }),
    }
}

/// The `envFrom` keys skipped as invalid variable names, per source, in the kubelet's
/// `InvalidEnvironmentVariableNames` event wording.
pub fn env_from_skipped(container: &Container, sources: &EnvSources<'_>) -> Vec<String> {
    let namespace = crate::downward::namespace(sources.pod);
    let mut out = Vec::new();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let (what, name, data) = if let Some(r) = &from.config_map_ref {
            ("configMap", &r.name, sources.config_map_data(&r.name))
        } else if let Some(r) = &from.secret_ref {
            ("secret", &r.name, sources.secret_data(&r.name))
        } else {
            continue;
        };
        let mut invalid: Vec<String> = data
            .into_iter()
            .flatten()
            .map(|(k, _)| format!("{prefix}{k}"))
            .filter(|k| !crate::manifest::is_env_var_name(k))
            .collect();
        if !invalid.is_empty() {
            invalid.sort();
            out.push(format!(
                "Keys [{}] from the EnvFrom {what} {namespace}/{name} were skipped since they are considered invalid environment variable names.",
                invalid.join(", ")
            ));
        }
    }
    out
}

/// Whether a container reads the pod's own addresses (`status.podIP(s)`), which are only
/// known once the pod network is attached.
pub fn reads_pod_ip(container: &Container) -> bool {
    container.env.iter().flatten().any(|e| {
        e.value_from
            .as_ref()
            .and_then(|f| f.field_ref.as_ref())
            .is_some_and(|f| f.field_path.starts_with("status.podIP"))
    })
}

/// The final environment of a container's process, in order: the image's `Env` (with a
/// default `PATH` when the image has none), `HOSTNAME`, then the container's own variables
/// (`kubelet_env`, see [`kubelet_env`]).
///
/// This is containerd CRI's merge: `PATH` default, `HOSTNAME=<sandbox hostname>`, image env,
/// container env, each applied with replace-in-place semantics. Consequence kept on purpose:
/// an image that sets `HOSTNAME` wins over the pod hostname, exactly as under containerd;
/// a container `env` entry wins over both.
pub fn container_env(
    image_env: &[String],
    kubelet_env: &[(String, String)],
    pod_hostname: &str,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![("PATH".to_owned(), DEFAULT_PATH.to_owned())];
    set_var(&mut env, "HOSTNAME", pod_hostname.to_owned());
    for entry in image_env {
        // An image entry without '=' is a name with an empty value for runc's purposes.
        let (name, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
        set_var(&mut env, name, value.to_owned());
    }
    for (name, value) in kubelet_env {
        set_var(&mut env, name, value.clone());
    }
    env
}

/// The process arguments: Kubernetes `command` replaces the image ENTRYPOINT (and then the
/// image CMD is dropped), `args` replaces CMD; `command` and `args` are `$(VAR)`-expanded
/// with `env`, which must be the kubelet's view ([`kubelet_env`]), not the final process
/// environment.
///
/// Mirrors containerd CRI's `WithProcessArgs`, including that an image ENTRYPOINT of `[""]`
/// counts as none. Image values are never expanded (they are not Kubernetes strings).
pub fn command_line(
    image_entrypoint: &[String],
    image_cmd: &[String],
    command: &[String],
    args: &[String],
    env: &[(String, String)],
) -> Result<Vec<String>, ExpandError> {
    let expand_all = |items: &[String]| -> Vec<String> {
        items
            .iter()
            .map(|s| expand(s, |n| lookup(env, n)))
            .collect()
    };
    let mut command = expand_all(command);
    let mut args = expand_all(args);
    if command.is_empty() {
        if args.is_empty() {
            args = image_cmd.to_vec();
        }
        if !(image_entrypoint.len() == 1 && image_entrypoint[0].is_empty()) {
            command = image_entrypoint.to_vec();
        }
    }
    command.extend(args);
    if command.is_empty() {
        return Err(ExpandError::NoCommand);
    }
    Ok(command)
}

fn lookup(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn set_var(env: &mut Vec<(String, String)>, name: &str, value: String) {
    match env.iter_mut().find(|(k, _)| k == name) {
        Some(slot) => slot.1 = value,
        None => env.push((name.to_owned(), value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::EnvVar;

    fn vars(name: &str) -> Option<String> {
        match name {
            "VAR_A" => Some("A".into()),
            "VAR_B" => Some("B".into()),
            "VAR_C" => Some("C".into()),
            "VAR_REF" => Some("$(VAR_A)".into()),
            "VAR_EMPTY" => Some(String::new()),
            "B" => Some("b".into()),
            _ => None,
        }
    }

    #[test]
    fn expand_table() {
        // Cases from the kubelet's expand_test.go plus the podctl corner cases.
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("no refs", "no refs"),
            ("$(VAR_A)", "A"),
            ("___$(VAR_B)___", "___B___"),
            ("$(VAR_A)-$(VAR_A)", "A-A"),
            ("$(VAR_A)$(VAR_B)$(VAR_C)", "ABC"),
            ("$(VAR_EMPTY)", ""),
            ("$(VAR_REF)", "$(VAR_A)"), // no re-scan of results
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("foo $(UNKNOWN) bar", "foo $(UNKNOWN) bar"),
            ("$$(VAR_A)", "$(VAR_A)"),
            ("$$$(VAR_A)", "$A"),
            ("$$$$(VAR_A)", "$$(VAR_A)"),
            ("$$", "$"),
            ("$$$", "$$"),
            ("$", "$"),
            ("foo$", "foo$"),
            ("$x", "$x"),
            ("$VAR_A", "$VAR_A"),
            ("${VAR_A}", "${VAR_A}"),
            ("$(VAR_A", "$(VAR_A"),
            ("$(", "$("),
            ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
            ("$()", "$()"),
            ("$(date)", "$(date)"),
            ("echo $(date) $((1+1))", "echo $(date) $((1+1))"),
            ("$(A$(B))", "$(A$(B))"),
            ("$(VAR_A)é$(VAR_B)", "AéB"),
            ("$é", "$é"),
            ("é$", "é$"),
        ];
        for (input, want) in cases {
            assert_eq!(&expand(input, vars), want, "input {input:?}");
        }
    }

    fn container(env: &[(&str, &str)], command: &[&str], args: &[&str]) -> Container {
        let strings = |v: &[&str]| {
            (!v.is_empty()).then(|| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
        };
        Container {
            name: "c".into(),
            env: Some(
                env.iter()
                    .map(|(k, v)| EnvVar {
                        name: (*k).into(),
                        value: Some((*v).into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            command: strings(command),
            args: strings(args),
            ..Default::default()
        }
    }

    fn env_of(c: &Container) -> Vec<(String, String)> {
        let pod = Pod::default();
        let objects = Objects::default();
        let live = LiveFields::default();
        kubelet_env(
            c,
            &EnvSources {
                pod: &pod,
                objects: &objects,
                live: &live,
            },
        )
        .unwrap()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect()
    }

    #[test]
    fn env_sees_only_earlier_container_vars() {
        let c = container(
            &[
                ("A", "a"),
                ("B", "$(A)-$(C)-$(IMG)-$(HOSTNAME)"),
                ("C", "c"),
                ("D", "$$(A)"),
                ("A", "a2 $(A)"),
            ],
            &[],
            &[],
        );
        assert_eq!(
            env_of(&c),
            pairs(&[
                ("A", "a2 a"),
                ("B", "a-$(C)-$(IMG)-$(HOSTNAME)"),
                ("C", "c"),
                ("D", "$(A)")
            ])
        );
        let env = container_env(
            &["IMG=x".into(), "PATH=/img/bin".into()],
            &env_of(&c),
            "web",
        );
        assert_eq!(
            env,
            pairs(&[
                ("PATH", "/img/bin"),
                ("HOSTNAME", "web"),
                ("IMG", "x"),
                ("A", "a2 a"),
                ("B", "a-$(C)-$(IMG)-$(HOSTNAME)"),
                ("C", "c"),
                ("D", "$(A)"),
            ])
        );
    }

    #[test]
    fn env_defaults_and_overrides() {
        let c = container(&[("PATH", "/mine"), ("HOSTNAME", "h2")], &[], &[]);
        assert_eq!(
            container_env(&[], &[], "web"),
            pairs(&[("PATH", DEFAULT_PATH), ("HOSTNAME", "web")])
        );
        assert_eq!(
            container_env(&["NOEQ".into(), "HOSTNAME=img".into()], &env_of(&c), "web"),
            pairs(&[("PATH", "/mine"), ("HOSTNAME", "h2"), ("NOEQ", "")])
        );
        // Image HOSTNAME beats the pod hostname, as under containerd.
        assert_eq!(
            container_env(&["HOSTNAME=img".into()], &[], "web"),
            pairs(&[("PATH", DEFAULT_PATH), ("HOSTNAME", "img")])
        );
    }

    #[test]
    fn command_line_table() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let env = pairs(&[("GREETING", "hi"), ("N", "2")]);
        // (entrypoint, cmd, command, args, expected)
        type Case<'a> = (
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
        );
        let cases: &[Case] = &[
            (&["/ep"], &["c1"], &[], &[], &["/ep", "c1"]),
            (&["/ep"], &["c1"], &["/k"], &[], &["/k"]),
            (&["/ep"], &["c1"], &[], &["a"], &["/ep", "a"]),
            (&["/ep"], &["c1"], &["/k"], &["a"], &["/k", "a"]),
            (&[], &["sh"], &[], &[], &["sh"]),
            (&[""], &["sh"], &[], &[], &["sh"]),
            (&[], &[], &[], &["only-args"], &["only-args"]),
            (
                &[],
                &[],
                &["sh", "-c", "echo $(GREETING) $(date) $$(N) $(N)"],
                &["$(MISSING)"],
                &["sh", "-c", "echo hi $(date) $(N) 2", "$(MISSING)"],
            ),
            // Image values are not Kubernetes strings: never expanded.
            (
                &["/ep", "$(N)"],
                &["$(GREETING)"],
                &[],
                &[],
                &["/ep", "$(N)", "$(GREETING)"],
            ),
        ];
        for (ep, cmd, command, args, want) in cases {
            assert_eq!(
                command_line(&s(ep), &s(cmd), &s(command), &s(args), &env),
                Ok(s(want)),
                "{ep:?} {cmd:?} {command:?} {args:?}"
            );
        }
        assert_eq!(
            command_line(&[], &[], &[], &[], &env),
            Err(ExpandError::NoCommand)
        );
        assert_eq!(
            command_line(&["".into()], &[], &[], &[], &env),
            Err(ExpandError::NoCommand)
        );
    }

    #[test]
    fn command_expands_with_final_container_env() {
        let c = container(
            &[("A", "x"), ("B", "$(A)y")],
            &["echo", "$(B)"],
            &["$(A)$(B)"],
        );
        let env = env_of(&c);
        let argv = command_line(
            &[],
            &[],
            c.command.as_deref().unwrap_or_default(),
            c.args.as_deref().unwrap_or_default(),
            &env,
        );
        assert_eq!(argv, Ok(vec!["echo".into(), "xy".into(), "xxy".into()]));
    }

    /// The kubelet's order: envFrom sources in order (later wins, prefixes applied, bad
    /// names skipped), then env, whose `value` sees envFrom variables and whose `valueFrom`
    /// is never expanded; optional misses leave variables unset.
    #[test]
    fn env_from_and_value_from_precedence() {
        use k8s_openapi::api::core::v1::{
            ConfigMap, ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar,
            EnvVarSource, ObjectFieldSelector, Secret, SecretEnvSource, SecretKeySelector,
        };
        use k8s_openapi::ByteString;
        use std::collections::BTreeMap;
        let mut objects = Objects::default();
        let cm = |pairs: &[(&str, &str)]| ConfigMap {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Default::default()
        };
        objects.config_maps.insert(
            "cfg".into(),
            cm(&[
                ("MODE", "cm"),
                ("SHARED", "cm"),
                ("1BAD", "x"),
                ("REF", "$(MODE)"),
            ]),
        );
        objects.secrets.insert(
            "creds".into(),
            Secret {
                data: Some(BTreeMap::from([
                    ("SHARED".to_owned(), ByteString(b"secret".to_vec())),
                    ("password".to_owned(), ByteString(b"hunter2".to_vec())),
                ])),
                ..Default::default()
            },
        );
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        let live = LiveFields {
            pod_ips: vec!["10.85.0.9".parse().unwrap()],
            ..Default::default()
        };
        let var = |name: &str, value: Option<&str>, from: Option<EnvVarSource>| EnvVar {
            name: name.into(),
            value: value.map(Into::into),
            value_from: from,
        };
        let c = Container {
            name: "app".into(),
            env_from: Some(vec![
                EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource {
                        name: "cfg".into(),
                        optional: None,
                    }),
                    ..Default::default()
                },
                EnvFromSource {
                    secret_ref: Some(SecretEnvSource {
                        name: "creds".into(),
                        optional: None,
                    }),
                    ..Default::default()
                },
                EnvFromSource {
                    prefix: Some("P_".into()),
                    config_map_ref: Some(ConfigMapEnvSource {
                        name: "cfg".into(),
                        optional: None,
                    }),
                    ..Default::default()
                },
                EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource {
                        name: "absent".into(),
                        optional: Some(true),
                    }),
                    ..Default::default()
                },
            ]),
            env: Some(vec![
                var("MODE", Some("env $(SHARED)"), None),
                var(
                    "PASS",
                    None,
                    Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "creds".into(),
                            key: "password".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                ),
                var(
                    "RAW",
                    None,
                    Some(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "cfg".into(),
                            key: "REF".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                ),
                var(
                    "GONE",
                    None,
                    Some(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "cfg".into(),
                            key: "nope".into(),
                            optional: Some(true),
                        }),
                        ..Default::default()
                    }),
                ),
                var(
                    "IP",
                    None,
                    Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            api_version: None,
                            field_path: "status.podIP".into(),
                        }),
                        ..Default::default()
                    }),
                ),
                var("NAME_TOO", Some("$(IP)/$(P_MODE)"), None),
            ]),
            ..Default::default()
        };
        let sources = EnvSources {
            pod: &pod,
            objects: &objects,
            live: &live,
        };
        assert_eq!(
            kubelet_env(&c, &sources).unwrap(),
            pairs(&[
                ("MODE", "env secret"),
                ("REF", "$(MODE)"),
                ("SHARED", "secret"),
                ("password", "hunter2"),
                ("P_1BAD", "x"),
                ("P_MODE", "cm"),
                ("P_REF", "$(MODE)"),
                ("P_SHARED", "cm"),
                ("PASS", "hunter2"),
                ("RAW", "$(MODE)"),
                ("IP", "10.85.0.9"),
                ("NAME_TOO", "10.85.0.9/cm"),
            ])
        );
        assert_eq!(
            env_from_skipped(&c, &sources),
            vec!["Keys [1BAD] from the EnvFrom configMap default/cfg were skipped since they are considered invalid environment variable names.".to_owned()]
        );
        assert!(reads_pod_ip(&c));

        // A missing key that is not optional: the kubelet's CreateContainerConfigError.
        let mut bad = c.clone();
        bad.env = Some(vec![var(
            "X",
            None,
            Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: "cfg".into(),
                    key: "nope".into(),
                    optional: None,
                }),
                ..Default::default()
            }),
        )]);
        assert_eq!(
            kubelet_env(&bad, &sources).unwrap_err().to_string(),
            "couldn't find key nope in ConfigMap default/cfg"
        );
    }
}
