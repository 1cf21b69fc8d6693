//! `podctl exec`: run a command in a running container, as `kubectl exec` does.
//!
//! The library finds the container and runs the command (`podctl_runtime::exec`); this side
//! owns the terminal: podctl's stdin read on a thread of its own (a blocking read must not
//! hold the async runtime at exit), the terminal in raw mode for `-it` (restored on every
//! way out, by a guard), its size sent at start and on each SIGWINCH, SIGINT/SIGTERM turned
//! into killing the command, and the exit code.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use anyhow::Context;
use nix::sys::termios::{self, SetArg, Termios};
use podctl_runtime::exec::{self, Ended, ExecError, ExecOptions, Input, Output, WindowSize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use super::EXIT_INTERRUPTED;
use crate::{Exit, Global};

/// Exit code of a command that exists but cannot be run (the shell's, docker's).
pub const EXIT_CANNOT_RUN: u8 = 126;
/// Exit code of a command that does not exist in the container.
pub const EXIT_NOT_FOUND: u8 = 127;

/// Arguments of `podctl exec`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pass podctl's stdin to the command (end of input closes the command's stdin)
    #[arg(short = 'i', long)]
    stdin: bool,
    /// Give the command a terminal, of podctl's terminal's size; with -i, podctl's terminal is
    /// put in raw mode until the end (with -i and an input that is not a terminal, the
    /// command gets none, as with kubectl)
    #[arg(short = 't', long)]
    tty: bool,
    /// The pod
    pod: String,
    /// The container: a main container, a sidecar or an init container; may be left out when
    /// the pod has one main container
    #[arg(short = 'c', long, value_name = "NAME")]
    container: Option<String>,
    /// The command and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

pub async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    // Registered before anything else, so a Ctrl-C at any moment is handled, not fatal.
    let interrupt = interrupt_signals()?;
    tokio::pin!(interrupt);
    // Interrupted before the command started: it does not start.
    let found = tokio::select! {
        found = async {
            let client = super::connect(g).await?;
            let target = exec::find(&client, &g.root, &args.pod, args.container.as_deref()).await?;
            anyhow::Ok((client, target))
        } => found?,
        () = &mut interrupt => return Ok(super::EXIT_INTERRUPTED),
    };
    let (client, target) = found;

    let stdin_tty = std::io::stdin().is_terminal();
    let tty = args.tty && (!args.stdin || stdin_tty);
    if args.tty && !tty {
        eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
    }
    // The size comes from the terminal podctl reads (-it), else the one it writes to.
    let size_of = move || {
        if args.stdin {
            window_size(std::io::stdin().as_fd())
        } else {
            window_size(std::io::stdout().as_fd())
        }
    };
    let window = match (tty, size_of()) {
        (true, Some(size)) => {
            let (tx, rx) = watch::channel(size);
            tokio::spawn(follow_window_size(tx, size_of));
            Some(rx)
        }
        _ => None,
    };
    // Raw from here to the end of this function, whatever way it ends.
    let _raw = if tty && args.stdin {
        Some(RawMode::enable().context("putting the terminal in raw mode")?)
    } else {
        None
    };
    let (stdout, stdout_done) = writer_thread(std::io::stdout());
    let (stderr, stderr_done) = writer_thread(std::io::stderr());
    let opts = ExecOptions {
        command: args.command,
        tty,
        window,
        stdin: args.stdin.then(stdin_reader),
        stdout,
        stderr,
    };
    let ended = exec::run(&client, &target, opts, &mut interrupt).await;
    // Everything the command wrote is out before the terminal is restored and podctl exits.
    let _ = tokio::time::timeout(WRITE_WAIT, async {
        let _ = stdout_done.await;
        let _ = stderr_done.await;
    })
    .await;
    match ended {
        Ok(Ended::Exited(status)) => Ok(u8::try_from(status).unwrap_or(u8::MAX)),
        Ok(Ended::Interrupted) => Ok(EXIT_INTERRUPTED),
        Err(e @ ExecError::CommandNotFound { .. }) => Err(exit(EXIT_NOT_FOUND, e)),
        Err(e @ ExecError::CannotRun { .. }) => Err(exit(EXIT_CANNOT_RUN, e)),
        Err(e) => Err(e.into()),
    }
}

fn exit(code: u8, error: ExecError) -> anyhow::Error {
    Exit {
        code,
        error: error.into(),
    }
    .into()
}

/// Resolves on SIGINT or SIGTERM; the handlers are installed now.
fn interrupt_signals() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let mut int = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// Sends the terminal's size on every SIGWINCH, until the receiver is gone.
async fn follow_window_size(
    tx: watch::Sender<WindowSize>,
    size_of: impl Fn() -> Option<WindowSize>,
) {
    let Ok(mut winch) = signal(SignalKind::window_change()) else {
        return;
    };
    loop {
        tokio::select! {
            got = winch.recv() => {
                if got.is_none() {
                    return;
                }
            }
            () = tx.closed() => return,
        }
        if let Some(size) = size_of() {
            tx.send_if_modified(|current| std::mem::replace(current, size) != size);
        }
    }
}

/// How long the output still queued is waited for once the command is over.
const WRITE_WAIT: Duration = Duration::from_secs(2);

/// An async writer whose bytes a thread of its own writes to `out` (blocking, flushed at
/// each chunk); the receiver resolves once it wrote the last of them (the writer is dropped).
/// When `out` fails (a closed pipe), the thread ends and writes to the writer fail too.
fn writer_thread(
    mut out: impl Write + Send + 'static,
) -> (Output, tokio::sync::oneshot::Receiver<()>) {
    let (tx, mut rx) = tokio::io::duplex(64 * 1024);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let runtime = tokio::runtime::Handle::current();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = runtime.block_on(rx.read(&mut buf)) {
            if n == 0 || out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                break;
            }
        }
        drop(rx);
        let _ = done_tx.send(());
    });
    (Box::new(tx), done_rx)
}

/// podctl's stdin as an async stream, read on a thread of its own: a thread blocked in
/// `read` does not keep the process from exiting, whereas a read on the runtime's blocking
/// pool would hold its shutdown until the user types.
fn stdin_reader() -> Input {
    let (mut tx, rx) = tokio::io::duplex(64 * 1024);
    let runtime = tokio::runtime::Handle::current();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 8192];
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            // Fails once the exec is over and the reading end is gone.
            if runtime.block_on(tx.write_all(&buf[..n])).is_err() {
                break;
            }
        }
        // Dropping `tx` is the end-of-file.
    });
    Box::new(rx)
}

/// podctl's stdin in raw mode (every key goes to the command as typed: Ctrl-C included),
/// restored when dropped.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enable() -> nix::Result<Self> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSAFLUSH, &raw)?;
        Ok(Self { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let stdin = std::io::stdin();
        if let Err(e) = termios::tcsetattr(stdin.as_fd(), SetArg::TCSAFLUSH, &self.saved) {
            eprintln!("podctl: restoring the terminal: {e}");
        }
    }
}

/// The size of the terminal on `fd`, `None` when it is not a terminal (or reports no size).
fn window_size(fd: BorrowedFd<'_>) -> Option<WindowSize> {
    let ws = rustix::termios::tcgetwinsize(fd).ok()?;
    (ws.ws_row > 0 && ws.ws_col > 0).then_some(WindowSize {
        rows: ws.ws_row,
        cols: ws.ws_col,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::{Cli, Command};

    fn parse(args: &[&str]) -> Result<super::Args, clap::Error> {
        let cli = Cli::try_parse_from(args)?;
        match cli.command {
            Command::Exec(a) => Ok(a),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn arguments_are_kubectls() {
        let a = parse(&[
            "podctl", "exec", "-it", "web", "-c", "app", "--", "sh", "-c", "ls -l",
        ])
        .unwrap();
        assert!(a.stdin && a.tty);
        assert_eq!(a.pod, "web");
        assert_eq!(a.container.as_deref(), Some("app"));
        assert_eq!(a.command, ["sh", "-c", "ls -l"]);

        let a = parse(&["podctl", "exec", "web", "--", "ls", "-c", "x"]).unwrap();
        assert!(!a.stdin && !a.tty);
        assert_eq!(a.container, None);
        assert_eq!(
            a.command,
            ["ls", "-c", "x"],
            "options after -- belong to the command"
        );
    }

    #[test]
    fn a_command_is_required_after_the_separator() {
        assert!(parse(&["podctl", "exec", "web"]).is_err());
        assert!(parse(&["podctl", "exec", "web", "ls"]).is_err());
    }
}
