//! `podctl volume`: the PersistentVolumeClaims of this host, local directories that outlive
//! the pods using them.

use std::path::PathBuf;
use std::time::SystemTime;

use podctl_runtime::claims::{self, Claim, ClaimUser, Store};
use podctl_runtime::manifest::PersistentVolumeClaim;
use serde::Serialize;

use crate::output::{print_data, table};
use crate::{Format, Global};

/// `podctl volume ...`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List the claims: NAME, ACCESS MODES (RWO, ROX, RWX, RWOP), STORAGE (the request,
    /// recorded as the capacity), USED BY (the pods on this host naming it, running or
    /// finished), AGE
    #[command(alias = "list")]
    Ls {
        /// table; json or yaml: a v1 List of the PersistentVolumeClaim objects, as `kubectl
        /// get pvc -o json` shows bound claims
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Show claims: the PersistentVolumeClaim object, its host directory, the bytes its
    /// files take on disk and the pods using it
    ///
    /// Prints a list with one entry per claim found; a name that is not a claim is reported
    /// on stderr, and podctl exits 1.
    Inspect {
        /// Names of the claims
        #[arg(required = true)]
        names: Vec<String>,
        /// yaml (the default) or json
        #[arg(short, long, value_enum, default_value_t = Output::Yaml)]
        output: Output,
    },
    /// Remove claims and their data, for good
    ///
    /// Refused while a pod recorded on this host names the claim in a volume, running or
    /// finished (as Kubernetes' PVC protection keeps a claim while a pod object uses it):
    /// `podctl rm` those pods first. Exits 1 if any claim could not be removed.
    #[command(alias = "remove")]
    Rm {
        /// Names of the claims
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// The formats `volume inspect` prints in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Yaml,
    Json,
}

/// What `volume inspect` shows of one claim.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Details {
    name: String,
    /// The host directory pods mount.
    path: PathBuf,
    /// What its files take on disk, as `du` counts.
    used_bytes: u64,
    used_by: Vec<ClaimUser>,
    claim: PersistentVolumeClaim,
}

pub async fn run(g: &Global, cmd: Command) -> anyhow::Result<u8> {
    let store = Store::new(&g.root, &g.namespace);
    match cmd {
        Command::Ls { output } => list(g, &store, output),
        Command::Inspect { names, output } => inspect(&store, &names, output),
        Command::Rm { names } => {
            let mut failed = false;
            for name in &names {
                match store.remove(name) {
                    Ok(()) => println!("{name}"),
                    Err(e) => {
                        eprintln!("podctl: {}", podctl_runtime::describe(&e));
                        failed = true;
                    }
                }
            }
            Ok(u8::from(failed))
        }
    }
}

fn list(g: &Global, store: &Store, output: Format) -> anyhow::Result<u8> {
    let claims = store.list()?;
    match output {
        Format::Table => {
            if claims.is_empty() {
                eprintln!("No volumes found in namespace {:?}.", g.namespace);
                return Ok(0);
            }
            let users = store.all_users()?;
            let now = SystemTime::now();
            let rows: Vec<Vec<String>> = claims
                .iter()
                .map(|c| row(c, users.get(c.name()).map(Vec::as_slice), now))
                .collect();
            print!(
                "{}",
                table(
                    &["NAME", "ACCESS MODES", "STORAGE", "USED BY", "AGE"],
                    &rows
                )
            );
        }
        f => print_data(
            f,
            &serde_json::json!({
                "apiVersion": "v1",
                "kind": "List",
                "metadata": {"resourceVersion": ""},
                "items": claims.iter().map(|c| &c.pvc).collect::<Vec<_>>(),
            }),
        )?,
    }
    Ok(0)
}

fn inspect(store: &Store, names: &[String], output: Output) -> anyhow::Result<u8> {
    let mut found = Vec::new();
    let mut failed = false;
    for name in names {
        let details = store.get(name).and_then(|claim| {
            Ok(Details {
                name: name.clone(),
                used_bytes: claims::used_bytes(&claim.data)?,
                used_by: store.users_of(name)?,
                path: claim.data,
                claim: claim.pvc,
            })
        });
        match details {
            Ok(d) => found.push(d),
            Err(e) => {
                eprintln!("podctl: {}", podctl_runtime::describe(&e));
                failed = true;
            }
        }
    }
    let format = match output {
        Output::Yaml => Format::Yaml,
        Output::Json => Format::Json,
    };
    print_data(format, &found)?;
    Ok(u8::from(failed))
}

/// One line of the table.
fn row(claim: &Claim, users: Option<&[ClaimUser]>, now: SystemTime) -> Vec<String> {
    let users: Vec<&str> = users
        .unwrap_or_default()
        .iter()
        .map(|u| u.pod.as_str())
        .collect();
    vec![
        claim.name().to_owned(),
        access_modes(claim.access_modes()),
        claim
            .capacity()
            .map_or_else(|| "<unset>".to_owned(), |q| q.0.clone()),
        if users.is_empty() {
            "<none>".to_owned()
        } else {
            users.join(",")
        },
        claim
            .created()
            .map_or_else(|| "<unknown>".to_owned(), |t| crate::output::age(t, now)),
    ]
}

/// kubectl's ACCESS MODES column: `RWO,RWX`.
fn access_modes(modes: &[String]) -> String {
    modes
        .iter()
        .map(|m| match m.as_str() {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_as_kubectl_prints_claims() {
        let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "data", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
                     "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Bound", "capacity": {"storage": "2Gi"}},
        }))
        .unwrap();
        let claim = Claim {
            pvc,
            data: PathBuf::from("/var/lib/podctl/podctl/claims/data/data"),
        };
        let now = podctl_runtime::pods::parse_time("2026-01-01T00:03:20Z").unwrap();
        let users = [
            ClaimUser {
                pod: "a".into(),
                finished: false,
            },
            ClaimUser {
                pod: "b".into(),
                finished: true,
            },
        ];
        assert_eq!(
            row(&claim, Some(&users), now),
            ["data", "RWO,ROX", "2Gi", "a,b", "3m20s"]
        );
        assert_eq!(row(&claim, None, now)[3], "<none>");
    }
}
