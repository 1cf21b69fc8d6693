//! `podctl logs`: a container's output, as `kubectl logs` prints it.

use podctl_runtime::podlogs::{self, LogOptions, PodLogsError};

use crate::Global;

/// Arguments of `podctl logs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pod
    pod: String,
    /// The container (main, init or sidecar); may be left out when the pod has one main
    /// container
    #[arg(short, long)]
    container: Option<String>,
    /// Keep printing what the container writes until its run ends
    #[arg(short, long)]
    follow: bool,
    /// The container's previous run (the one before its last restart)
    #[arg(short, long)]
    previous: bool,
    /// Only the last N lines; -1 for all
    #[arg(long, value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    tail: i64,
    /// Each line after the time it was written (RFC 3339 with nanoseconds)
    #[arg(long)]
    timestamps: bool,
}

pub async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let opts = LogOptions {
        container: args.container,
        previous: args.previous,
        follow: args.follow,
        tail: usize::try_from(args.tail).ok(),
        timestamps: args.timestamps,
    };
    let (root, namespace, pod) = (g.root.clone(), g.namespace.clone(), args.pod);
    // Reading and following are blocking file reads and sleeps.
    let result = tokio::task::spawn_blocking(move || {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        podlogs::write(&root, &namespace, &pod, &opts, &mut out)
    })
    .await?;
    match result {
        Ok(()) => Ok(0),
        // The reader went away (`podctl logs ... | head`): nothing more to do.
        Err(PodLogsError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(e.into()),
    }
}
