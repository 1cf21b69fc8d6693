//! `podctl`: run Kubernetes `v1 Pod` manifests on one host with containerd.
//!
//! This is the binary's edge: it parses arguments, sets up logging and the async runtime,
//! calls the library, prints, and is the only place that picks an exit code.

mod commands;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// Run Kubernetes v1 Pod manifests on this host, with containerd and without Kubernetes.
///
/// podctl gives the pod one shared network, UTS and IPC namespace, mounts its volumes, runs
/// its init containers one after another (each must exit 0), then its main containers. The
/// same YAML runs unchanged on a Kubernetes cluster.
#[derive(Debug, Parser)]
#[command(name = "podctl", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, clap::Args)]
pub struct Global {
    /// containerd's gRPC socket
    #[arg(
        long,
        global = true,
        env = "CONTAINERD_ADDRESS",
        default_value = "/run/containerd/containerd.sock"
    )]
    address: PathBuf,
    /// containerd namespace podctl keeps its images and containers in
    #[arg(
        long,
        global = true,
        env = "PODCTL_NAMESPACE",
        default_value = "podctl"
    )]
    namespace: String,
    /// podctl's state directory (pod namespaces, volumes, logs, status)
    #[arg(
        long,
        global = true,
        env = "PODCTL_ROOT",
        default_value = "/var/lib/podctl"
    )]
    root: PathBuf,
    /// The podctl daemon's API socket: the one `podctl daemon` serves and `run -d` and
    /// `version` talk to (`stop` and `rm` use the socket of the daemon running the pod)
    #[arg(
        long,
        global = true,
        env = "PODCTL_SOCKET",
        default_value = podctl_runtime::daemon::DEFAULT_SOCKET
    )]
    socket: PathBuf,
    /// Diagnostics on stderr: a level for podctl's own crates (debug, trace) or a full
    /// tracing filter (e.g. `info,h2=debug`)
    #[arg(long, global = true, env = "PODCTL_LOG", default_value = "warn")]
    log: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pod manifest in the foreground until its containers end (-d: hand it to the
    /// daemon)
    ///
    /// Streams every container's output prefixed with its name, keeps per-container logs
    /// under <root>/<namespace>/pods/<pod>/logs, and exits with the main container's exit
    /// code (the first non-zero one; a failed init container's code when init failed).
    /// Ctrl-C or SIGTERM stops the pod: the stop signal, terminationGracePeriodSeconds
    /// (default 30), then SIGKILL; a second one kills at once. Exit codes: 2 for an invalid
    /// manifest, 125 when podctl itself fails (containerd unreachable, image missing, ...).
    ///
    /// With -d, the pod is handed to the podctl daemon on --socket instead: the manifest is
    /// checked here (exit 2 when invalid, nothing sent), and podctl prints the pod's name and
    /// exits 0 once the daemon admitted it; 2 when the daemon refuses the manifest, 125 when
    /// it cannot run the pod (no daemon, a pod of that name exists, image missing, ...).
    Run(commands::run::Args),
    /// Serve podctl's API on a unix socket and supervise the pods handed to it
    ///
    /// The daemon runs pods as `podctl run` does, each to its end, restarting containers per
    /// their restartPolicy: pods handed over with `podctl run -d`, and with --manifests-dir
    /// the static pods of a directory. Stopping the daemon (SIGTERM or Ctrl-C) leaves its
    /// pods running; a daemon started again adopts them.
    Daemon(commands::daemon::Args),
    /// Check a pod manifest without running it (exit code 2 when invalid)
    Validate(commands::validate::Args),
    /// Remove a finished pod: its containers, snapshots, volumes, logs and state
    Rm(commands::rm::Args),
    /// List pods: running ones, and with -a finished ones too
    Ps(commands::ps::Args),
    /// Show a pod as Kubernetes would: a v1 Pod object with its status (YAML, or -o json)
    Inspect(commands::inspect::Args),
    /// Print a container's logs (init containers and previous runs included)
    Logs(commands::logs::Args),
    /// Print the pods' lifecycle events (Created, Started, Killing, BackOff ...); -f follows
    Events(commands::events::Args),
    /// Stop a running pod gracefully (preStop, stop signal, SIGKILL after the grace period)
    Stop(commands::stop::Args),
    /// Run a command in a running container
    ///
    /// As `kubectl exec`: the command runs beside the container's own process, with its
    /// environment, working directory and user. Without -c, the pod must have one main
    /// container. Its output goes to podctl's stdout and stderr (with -t, both come on stdout).
    /// Ctrl-C or SIGTERM kills the command (with -it, Ctrl-C is a key the command reads).
    /// Exit codes: the command's own (128 + n when killed by signal n); 126 when it cannot be
    /// run, 127 when it is not found; 130 when interrupted; 1 when podctl fails (no such pod
    /// or container, not running, containerd unreachable ...).
    Exec(commands::exec::Args),
    /// Manage images in containerd's store
    #[command(subcommand)]
    Image(commands::image::Command),
    /// Manage the PersistentVolumeClaims pods use: local directories that outlive the pods
    ///
    /// A pod's persistentVolumeClaim volume mounts the claim's directory,
    /// <root>/<namespace>/claims/<name>/data. The first pod whose file holds the
    /// PersistentVolumeClaim creates it; it stays when the pod is removed, and later pods
    /// naming it share it (their files need not hold it again). Its accessModes and storage
    /// request are recorded (the size is not enforced); a claim given again may only grow its
    /// storage. ReadWriteOncePod lets one pod at a time use a claim on this host.
    #[command(subcommand)]
    Volume(commands::volume::Command),
    /// Show podctl's and containerd's versions, and the daemon's when one answers on --socket
    Version,
}

/// How data is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Human-readable table
    #[default]
    Table,
    Json,
    Yaml,
}

/// An error whose exit code the binary chooses explicitly.
#[derive(Debug, thiserror::Error)]
#[error("{}", podctl_runtime::describe(error.as_ref()))]
pub struct Exit {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Cli {
    /// Parses a command line as `podctl`'s, with the checks clap's attributes cannot state.
    pub fn try_parse_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut command = Self::command();
        let matches = command.try_get_matches_from_mut(args)?;
        if let Err(message) = commands::run::check_detach(&matches) {
            let run = command
                .find_subcommand_mut("run")
                .expect("run is a subcommand");
            return Err(run.error(clap::error::ErrorKind::ArgumentConflict, message));
        }
        Self::from_arg_matches(&matches).map_err(|e| e.format(&mut command))
    }
}

/// A bare level (`debug`) applies to podctl's own crates only, keeping the gRPC stack quiet;
/// anything else is a full `tracing` filter.
fn log_filter(spec: &str) -> tracing_subscriber::EnvFilter {
    let spec = if spec.contains(['=', ',']) {
        spec.to_string()
    } else {
        format!("warn,podctl={spec},podctl_runtime={spec}")
    };
    tracing_subscriber::EnvFilter::try_new(spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"))
}

fn main() -> ExitCode {
    // The pause process of a shareProcessNamespace pod (see podctl_runtime::pause).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == podctl_runtime::oci::PAUSE_ARG)
    {
        return podctl_runtime::pause::run();
    }
    let cli = Cli::try_parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
    // The daemon leaves its pods running for the next daemon to adopt: the process must end
    // without dropping the async runtime, whose pod tasks would run their cleanup.
    let exit_at_once = matches!(cli.command, Command::Daemon(_));
    tracing_subscriber::fmt()
        .with_env_filter(log_filter(&cli.global.log))
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("podctl: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(commands::dispatch(cli));
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("podctl: {}", podctl_runtime::describe(e.as_ref()));
            e.downcast_ref::<Exit>().map(|x| x.code).unwrap_or(1)
        }
    };
    if exit_at_once {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::process::exit(code.into());
    }
    ExitCode::from(code)
}
