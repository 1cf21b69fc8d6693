//! `podctl daemon`: serves podctl's API and supervises the pods handed to it.

use std::path::PathBuf;

use podctl_runtime::daemon::{self, DaemonOptions};

use super::supervision::SupervisionArgs;
use crate::Global;

/// Arguments of `podctl daemon`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The API socket is --socket (PODCTL_SOCKET, default /run/podctl/podctl.sock), made mode 0600: \
the API is root's. `podctl run -d` hands pods to the daemon; `podctl stop` and `podctl rm` \
of a daemon's pod go through it. One daemon runs the pods of a root and namespace \
(<root>/<namespace>/daemon.lock): a second one is refused.

Stopping the daemon (SIGTERM, Ctrl-C) leaves its pods running; a daemon started again adopts \
them, and goes on stopping the ones it was asked to stop. A pod whose sandbox did not survive \
(the host rebooted) is started again from its manifest, unless it was being stopped or its \
restartPolicy is Never and its containers had started: then it ends Failed (SandboxLost), as \
the kubelet makes no new sandbox for such a pod.

With --manifests-dir, every pod manifest in DIR runs as a static pod, as the kubelet's \
staticPodPath: a file added is started, a changed file replaces its pod (the old one stopped \
gracefully and removed first), a removed file stops and removes its pod. Invalid files are \
reported on stderr and skipped; a pod that cannot be started yet (a missing image) is tried \
again.

Exit code 0 once stopped; 1 when it cannot serve (containerd unreachable after a minute, the \
socket taken, ...).")]
pub struct Args {
    /// Run every pod manifest (YAML or JSON) in this directory as a static pod, for as long
    /// as its file exists
    #[arg(long, env = "PODCTL_MANIFESTS_DIR", value_name = "DIR")]
    manifests_dir: Option<PathBuf>,
    #[command(flatten)]
    supervision: SupervisionArgs,
}

/// Serves until SIGTERM or SIGINT. The caller must exit the process as soon as this
/// returns, without dropping the async runtime: the pods' tasks must not run their
/// cleanup, since the pods stay for the next daemon.
pub async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let opts = DaemonOptions {
        containerd: g.address.clone(),
        namespace: g.namespace.clone(),
        socket: g.socket.clone(),
        manifests_dir: args.manifests_dir,
        run: args.supervision.run_options(g.root.clone(), false)?,
    };
    daemon::serve(opts, super::wait_for_stop_signal()).await?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Cli, Command};

    #[test]
    fn the_daemon_takes_its_socket_manifests_dir_and_supervision_options() {
        let cli = Cli::try_parse_args([
            "podctl",
            "daemon",
            "--socket",
            "/tmp/p.sock",
            "--manifests-dir",
            "/etc/podctl/pods",
            "--backoff-base",
            "1s",
        ])
        .unwrap();
        assert_eq!(cli.global.socket.to_str(), Some("/tmp/p.sock"));
        let Command::Daemon(a) = cli.command else {
            panic!("parsed as {:?}", cli.command)
        };
        assert_eq!(
            a.manifests_dir.as_deref().and_then(|d| d.to_str()),
            Some("/etc/podctl/pods")
        );
        assert_eq!(a.supervision.backoff_base, Duration::from_secs(1));
        assert!(Cli::try_parse_args(["podctl", "daemon", "--rm"]).is_err());
    }
}
