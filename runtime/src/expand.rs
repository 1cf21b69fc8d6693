//! Kubernetes `$(VAR)` expansion and the environment/command a container really gets.
//!
//! The rules are the kubelet's (`third_party/forked/golang/expansion/expand.go`,
//! `makeEnvironmentVariables`, `ExpandContainerCommandAndArgs`) followed by what containerd's
//! CRI plugin adds on top (`WithProcessArgs`, the `HOSTNAME` variable, image env first).
//! Users port manifests from real clusters, so any divergence here changes what their
//! processes see; the tests pin the corner cases.

use k8s_openapi::api::core::v1::Container;

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

/// The variables the kubelet computes for a container: its `env` in declaration order, each
/// value expanded against the variables declared *before* it.
///
/// Image variables and `HOSTNAME` are not part of it: the kubelet does not know the image
/// environment (containerd adds it later), so `$(PATH)` only expands if the container itself
/// declares `PATH` earlier. A later declaration of the same name replaces the earlier value
/// in place. `valueFrom`/`envFrom` are not resolved here (validation refuses them); an entry
/// with only `valueFrom` gets the empty value, as the kubelet gives an entry with neither.
pub fn kubelet_env(container: &Container) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for var in container.env.iter().flatten() {
        let raw = var.value.as_deref().unwrap_or("");
        let value = if raw.is_empty() {
            String::new()
        } else {
            expand(raw, |name| lookup(&env, name))
        };
        set_var(&mut env, &var.name, value);
    }
    env
}

/// The final environment of a container's process, in order: the image's `Env` (with a
/// default `PATH` when the image has none), `HOSTNAME`, then the container's own variables
/// (see [`kubelet_env`]).
///
/// This is containerd CRI's merge: `PATH` default, `HOSTNAME=<sandbox hostname>`, image env,
/// container env, each applied with replace-in-place semantics. Consequence kept on purpose:
/// an image that sets `HOSTNAME` wins over the pod hostname, exactly as under containerd;
/// a container `env` entry wins over both.
pub fn container_env(
    image_env: &[String],
    container: &Container,
    pod_hostname: &str,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![("PATH".to_owned(), DEFAULT_PATH.to_owned())];
    set_var(&mut env, "HOSTNAME", pod_hostname.to_owned());
    for entry in image_env {
        // An image entry without '=' is a name with an empty value for runc's purposes.
        let (name, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
        set_var(&mut env, name, value.to_owned());
    }
    for (name, value) in kubelet_env(container) {
        set_var(&mut env, &name, value);
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
            kubelet_env(&c),
            pairs(&[
                ("A", "a2 a"),
                ("B", "a-$(C)-$(IMG)-$(HOSTNAME)"),
                ("C", "c"),
                ("D", "$(A)")
            ])
        );
        let env = container_env(&["IMG=x".into(), "PATH=/img/bin".into()], &c, "web");
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
            container_env(&[], &container(&[], &[], &[]), "web"),
            pairs(&[("PATH", DEFAULT_PATH), ("HOSTNAME", "web")])
        );
        assert_eq!(
            container_env(&["NOEQ".into(), "HOSTNAME=img".into()], &c, "web"),
            pairs(&[("PATH", "/mine"), ("HOSTNAME", "h2"), ("NOEQ", "")])
        );
        // Image HOSTNAME beats the pod hostname, as under containerd.
        assert_eq!(
            container_env(&["HOSTNAME=img".into()], &container(&[], &[], &[]), "web"),
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
        let env = kubelet_env(&c);
        let argv = command_line(
            &[],
            &[],
            c.command.as_deref().unwrap_or_default(),
            c.args.as_deref().unwrap_or_default(),
            &env,
        );
        assert_eq!(argv, Ok(vec!["echo".into(), "xy".into(), "xxy".into()]));
    }
}
