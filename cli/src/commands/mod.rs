//! One module per subcommand: load input, call the library, print.

pub mod image;
pub mod rm;
pub mod run;
pub mod validate;

use podctl_runtime::containerd::Client;

use crate::{Cli, Command, Exit, Global};

/// Exit code for input podctl refuses (manifest, reference, arguments).
pub const EXIT_INVALID: u8 = 2;

/// Exit code of a command interrupted by SIGINT or SIGTERM (the shell's 128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs the chosen command; returns the process exit code.
pub async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let g = &cli.global;
    match cli.command {
        Command::Run(args) => run::run(g, args).await,
        Command::Validate(args) => validate::run(args),
        Command::Rm(args) => rm::run(g, args).await,
        Command::Image(cmd) => image::run(g, cmd).await,
        Command::Version => {
            println!("podctl {}", env!("CARGO_PKG_VERSION"));
            let client = connect(g).await?;
            println!("containerd {}", client.version().await?);
            Ok(0)
        }
    }
}

/// Connects to containerd, or fails with one line naming the socket and how to start it.
pub async fn connect(g: &Global) -> anyhow::Result<Client> {
    Client::connect(&g.address, &g.namespace)
        .await
        .map_err(anyhow::Error::from)
}

/// Wraps an error so `main` exits with [`EXIT_INVALID`].
pub fn invalid(error: impl Into<anyhow::Error>) -> anyhow::Error {
    Exit {
        code: EXIT_INVALID,
        error: error.into(),
    }
    .into()
}

/// Reads the manifest and checks it, mapping refusal to [`EXIT_INVALID`]. The errors name
/// the file themselves.
pub fn load_manifest(path: &std::path::Path) -> anyhow::Result<podctl_runtime::manifest::Pod> {
    podctl_runtime::manifest::load_valid(path).map_err(invalid)
}
