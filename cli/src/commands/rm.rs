//! `podctl rm`: removes pods, through the API of the daemon that runs a pod when one does.

use std::path::Path;

use podctl_proto::v1;
use podctl_runtime::containerd::Client;
use podctl_runtime::{lifecycle, pods};

use crate::Global;

/// Arguments of `podctl rm`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Names of the pods to remove
    #[arg(required = true)]
    pods: Vec<String>,
    /// Kill the pod's containers first if they still run
    #[arg(short, long)]
    force: bool,
}

pub async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let mut containerd: Option<Client> = None;
    let mut failed = false;
    for pod in &args.pods {
        let result = match daemon_socket(g, pod) {
            // The daemon must stop supervising the pod before it goes.
            Some(socket) => remove_through(&socket, pod, args.force)
                .await
                .map_err(|e| podctl_runtime::describe(e.as_ref())),
            None => {
                let client = match &containerd {
                    Some(c) => c,
                    None => containerd.insert(super::connect(g).await?),
                };
                lifecycle::remove(client, &g.root, pod, args.force)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        match result {
            Ok(()) => println!("{pod}"),
            Err(e) => {
                eprintln!("podctl: {e}");
                failed = true;
            }
        }
    }
    Ok(u8::from(failed))
}

/// The API socket of the daemon supervising `pod`, when one does.
fn daemon_socket(g: &Global, pod: &str) -> Option<std::path::PathBuf> {
    pods::get(&g.root, &g.namespace, pod)
        .ok()?
        .supervisor?
        .socket
}

/// Asks the daemon on `socket` to remove the pod; it refuses a running pod without `force`.
async fn remove_through(socket: &Path, pod: &str, force: bool) -> anyhow::Result<()> {
    let mut client = podctl_proto::connect(socket).await?;
    let request = v1::RemoveRequest {
        name: pod.to_string(),
        force,
    };
    client
        .remove(request)
        .await
        .map_err(|status| super::api_error(socket, status))?;
    Ok(())
}
