//! Container output: FIFOs the shim writes into, pumps that copy each line to the pod's log
//! file (the kubelet's CRI log format) and to the observer.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::pipe;
use tokio::task::JoinHandle;

use super::{Event, LifecycleError, Observer, Stream};

/// The read ends of a container's stdout and stderr FIFOs, opened before the task is created
/// so the shim's blocking open of the write ends succeeds.
pub(crate) struct Fifos {
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    stdout: pipe::Receiver,
    stderr: pipe::Receiver,
}

impl Fifos {
    /// Makes and opens `<dir>/<id>.out` and `<dir>/<id>.err`.
    pub fn open(dir: &Path, id: &str) -> Result<Self, LifecycleError> {
        let stdout_path = dir.join(format!("{id}.out"));
        let stderr_path = dir.join(format!("{id}.err"));
        let make = |p: &Path| -> Result<pipe::Receiver, LifecycleError> {
            let io = |source| LifecycleError::Io {
                path: p.to_path_buf(),
                source,
            };
            nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .map_err(|e| io(e.into()))?;
            pipe::OpenOptions::new().open_receiver(p).map_err(|e| {
                let _ = std::fs::remove_file(p);
                io(e)
            })
        };
        let stdout = make(&stdout_path)?;
        let stderr = make(&stderr_path).inspect_err(|_| {
            let _ = std::fs::remove_file(&stdout_path);
        })?;
        Ok(Self {
            stdout,
            stderr,
            stdout_path,
            stderr_path,
        })
    }

    /// Removes both FIFOs (the task could not be created).
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.stdout_path);
        let _ = std::fs::remove_file(&self.stderr_path);
    }

    /// Starts copying both streams. Call only after the task exists: before the shim has
    /// opened the write ends, a read would see end-of-file at once.
    pub fn pump(
        self,
        container: Arc<str>,
        log: Arc<Mutex<File>>,
        observer: Arc<dyn Observer>,
    ) -> Pumps {
        let out = tokio::spawn(copy_lines(
            self.stdout,
            Stream::Stdout,
            container.clone(),
            log.clone(),
            observer.clone(),
        ));
        let err = tokio::spawn(copy_lines(
            self.stderr,
            Stream::Stderr,
            container,
            log,
            observer,
        ));
        Pumps {
            copies: [out, err],
            paths: [self.stdout_path, self.stderr_path],
        }
    }
}

/// The tasks copying a container's output, and the FIFOs they read.
pub(crate) struct Pumps {
    copies: [JoinHandle<()>; 2],
    paths: [PathBuf; 2],
}

impl Pumps {
    /// Lets the copies drain what is still in the pipes, for at most `limit` (a grandchild
    /// holding a pipe open must not hold the pod), then stops them and removes the FIFOs.
    pub async fn finish(mut self, limit: Duration) {
        let [out, err] = &mut self.copies;
        let _ = tokio::time::timeout(limit, async {
            let _ = out.await;
            let _ = err.await;
        })
        .await;
    }
}

/// Dropped (also when `finish` is cancelled): the copies stop and the FIFOs go.
impl Drop for Pumps {
    fn drop(&mut self) {
        for copy in &self.copies {
            copy.abort();
        }
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Longest line kept whole; a longer one is cut into partial (`P`) records of this size, as
/// containerd's CRI logger does, so a container printing without newlines cannot make podctl
/// hold its whole output in memory.
const MAX_LINE: usize = 16 * 1024;

async fn copy_lines(
    rx: pipe::Receiver,
    stream: Stream,
    container: Arc<str>,
    log: Arc<Mutex<File>>,
    observer: Arc<dyn Observer>,
) {
    let mut reader = BufReader::with_capacity(MAX_LINE, rx);
    let mut line = Vec::with_capacity(256);
    let emit = |line: &[u8], complete: bool| {
        write_cri_line(&log, stream, complete, line);
        observer.event(Event::Output {
            container: &container,
            stream,
            line,
        });
    };
    while let Ok(buf) = reader.fill_buf().await {
        if buf.is_empty() {
            if !line.is_empty() {
                emit(&line, false);
            }
            break;
        }
        let room = MAX_LINE - line.len();
        let window = &buf[..buf.len().min(room)];
        match window.iter().position(|b| *b == b'\n') {
            Some(end) => {
                line.extend_from_slice(&window[..end]);
                reader.consume(end + 1);
                emit(&line, true);
                line.clear();
            }
            None => {
                let n = window.len();
                line.extend_from_slice(window);
                reader.consume(n);
                if line.len() >= MAX_LINE {
                    emit(&line, false);
                    line.clear();
                }
            }
        }
    }
}

/// One line in the kubelet's CRI log format: `<RFC3339Nano> <stream> <F|P> <text>`.
fn write_cri_line(log: &Mutex<File>, stream: Stream, complete: bool, line: &[u8]) {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let tag = if complete { "F" } else { "P" };
    let mut buf = Vec::with_capacity(line.len() + 48);
    buf.extend_from_slice(now.as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(stream.as_str().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(tag.as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(line);
    buf.push(b'\n');
    if let Ok(mut f) = log.lock() {
        // A full disk must not take the pod down; the terminal copy still reaches the user.
        let _ = f.write_all(&buf);
    }
}

/// Opens (creating) the log file of one container run: `<pod dir>/logs/<name>/<restart>.log`,
/// the kubelet's layout.
pub(crate) fn open_log(
    pod_dir: &Path,
    container: &str,
    restart: u32,
) -> Result<Arc<Mutex<File>>, LifecycleError> {
    let dir = pod_dir.join("logs").join(container);
    let path = dir.join(format!("{restart}.log"));
    let io = |source| LifecycleError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let f = File::options()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io)?;
    Ok(Arc::new(Mutex::new(f)))
}
