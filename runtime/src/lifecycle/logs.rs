//! Container output: FIFOs the shim writes into, pumps that copy each line to the pod's log
//! file (the kubelet's CRI log format) and to the observer. A log file that grows past its
//! size limit is rotated as the kubelet rotates them (naming in [`crate::podlogs`]).

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::podlogs::{self, LogRotation};

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

    /// Opens the FIFOs of a task an earlier supervisor created (the shim holds their write
    /// ends, and keeps what the container writes meanwhile in the pipe).
    pub fn reopen(dir: &Path, id: &str) -> Result<Self, LifecycleError> {
        let stdout_path = dir.join(format!("{id}.out"));
        let stderr_path = dir.join(format!("{id}.err"));
        let open = |p: &Path| {
            pipe::OpenOptions::new()
                .open_receiver(p)
                .map_err(|source| LifecycleError::Io {
                    path: p.to_path_buf(),
                    source,
                })
        };
        Ok(Self {
            stdout: open(&stdout_path)?,
            stderr: open(&stderr_path)?,
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
        log: Arc<Mutex<LogFile>>,
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
        self.close();
    }

    /// Stops the copies and removes the FIFOs: the task is gone, or going.
    pub fn close(self) {
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Dropped (also when `finish` is cancelled): the copies stop. The FIFOs stay: a task that
/// still runs (its supervisor failed, or exits) keeps writing into them, and the supervisor
/// that adopts it reads them again; they go with the task ([`Pumps::close`]) or the pod.
impl Drop for Pumps {
    fn drop(&mut self) {
        for copy in &self.copies {
            copy.abort();
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
    log: Arc<Mutex<LogFile>>,
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
fn write_cri_line(log: &Mutex<LogFile>, stream: Stream, complete: bool, line: &[u8]) {
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
    // Both pumps of a container share the file: a record and the rotation after it happen
    // under one lock, so no record lands in a file already renamed.
    if let Ok(mut f) = log.lock() {
        f.write_record(&buf);
    }
}

/// The log file of one container run, rotated when it grows past `rotation.max_size`: it is
/// renamed to `<restart>.log.<UTC time>`, a new `<restart>.log` is started, and the oldest
/// rotated files go so that at most `rotation.max_files` files of the run remain.
pub(crate) struct LogFile {
    path: PathBuf,
    restart: u32,
    file: File,
    /// Bytes in the current file.
    size: u64,
    rotation: LogRotation,
    /// The run's rotated files, oldest first.
    rotated: VecDeque<PathBuf>,
    /// The time the last rotated file was named after; names stay unique and in order even
    /// when rotations come within one millisecond.
    last_rotation: Option<time::OffsetDateTime>,
    /// The size past which the file is rotated: `rotation.max_size`, pushed further after a
    /// rotation failed so that it is not retried on every record.
    rotate_past: u64,
}

impl LogFile {
    /// Opens (creating) `<dir>/<restart>.log` for appending; rotated files of the run already
    /// there count towards its files.
    fn open(dir: &Path, restart: u32, rotation: LogRotation) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = podlogs::current_file(dir, restart);
        let file = File::options().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            restart,
            file,
            size,
            rotation,
            rotated: podlogs::rotated_files(dir, restart)?.into(),
            last_rotation: None,
            rotate_past: rotation.max_size,
        })
    }

    /// Appends one whole record, then rotates the file if it grew past the limit.
    fn write_record(&mut self, record: &[u8]) {
        // A full disk must not take the pod down; the terminal copy still reaches the user.
        if self.file.write_all(record).is_ok() {
            self.size += record.len() as u64;
        }
        if self.size > self.rotate_past {
            if let Err(e) = self.rotate() {
                self.rotate_past = self.size.saturating_add(self.rotation.max_size);
                tracing::warn!(path = %self.path.display(), error = %e, "cannot rotate the log file");
            }
        }
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let now = time::OffsetDateTime::now_utc();
        let mut at = now
            .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
            .unwrap_or(now);
        if let Some(last) = self.last_rotation {
            at = at.max(last + time::Duration::milliseconds(1));
        }
        let mut target = dir.join(podlogs::rotated_name(self.restart, at));
        while target.exists() {
            at += time::Duration::milliseconds(1);
            target = dir.join(podlogs::rotated_name(self.restart, at));
        }
        std::fs::rename(&self.path, &target)?;
        let file = match File::options().create(true).append(true).open(&self.path) {
            Ok(f) => f,
            Err(e) => {
                // Keep writing to the file as it was, under its name.
                let _ = std::fs::rename(&target, &self.path);
                return Err(e);
            }
        };
        self.file = file;
        self.size = 0;
        self.rotate_past = self.rotation.max_size;
        self.last_rotation = Some(at);
        self.rotated.push_back(target);
        let keep = self.rotation.max_files.saturating_sub(1) as usize;
        while self.rotated.len() > keep {
            if let Some(oldest) = self.rotated.pop_front() {
                match std::fs::remove_file(&oldest) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(path = %oldest.display(), error = %e, "cannot remove a rotated log file")
                    }
                }
            }
        }
        Ok(())
    }
}

/// Opens (creating) the log file of one container run: `<pod dir>/logs/<name>/<restart>.log`,
/// the kubelet's layout, rotated per `rotation`.
pub(crate) fn open_log(
    pod_dir: &Path,
    container: &str,
    restart: u32,
    rotation: LogRotation,
) -> Result<Arc<Mutex<LogFile>>, LifecycleError> {
    let dir = podlogs::log_dir(pod_dir, container);
    let log = LogFile::open(&dir, restart, rotation).map_err(|source| LifecycleError::Io {
        path: podlogs::current_file(&dir, restart),
        source,
    })?;
    Ok(Arc::new(Mutex::new(log)))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::podlogs::{copy_run, LogOptions, Target};

    fn files(dir: &Path) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().len(),
                )
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_file_past_its_size_is_rotated_and_old_ones_go() {
        let pod = tempfile::tempdir().unwrap();
        let rotation = LogRotation {
            max_size: 1000,
            max_files: 3,
        };
        let log = open_log(pod.path(), "app", 2, rotation).unwrap();
        let line = [b'x'; 100];
        for _ in 0..200 {
            write_cri_line(&log, Stream::Stdout, true, &line);
        }
        let dir = pod.path().join("logs").join("app");
        let left = files(&dir);
        assert_eq!(left.len(), 3, "{left:?}");
        // Rotated names sort before the current file and keep their order in time, even
        // for rotations within one millisecond.
        let rotated = crate::podlogs::rotated_files(&dir, 2).unwrap();
        assert_eq!(rotated.len(), 2);
        assert!(rotated[0] < rotated[1]);
        let record = 100 + 48;
        for (name, size) in &left {
            assert!(*size <= 1000 + record, "{name}: {size}");
            assert!(name.starts_with("2.log"), "{name}");
        }
        assert_eq!(left[0].0, "2.log");
        // The rotated files are full; the oldest ones went.
        assert!(left[1..].iter().all(|(_, s)| *s > 1000), "{left:?}");
    }

    #[test]
    fn a_run_is_reopened_with_its_rotated_files_counted() {
        let pod = tempfile::tempdir().unwrap();
        let rotation = LogRotation {
            max_size: 10,
            max_files: 2,
        };
        let first = open_log(pod.path(), "app", 0, rotation).unwrap();
        write_cri_line(&first, Stream::Stderr, true, b"one");
        drop(first);
        let again = open_log(pod.path(), "app", 0, rotation).unwrap();
        write_cri_line(&again, Stream::Stderr, true, b"two");
        let dir = pod.path().join("logs").join("app");
        let left = files(&dir);
        assert_eq!(left.len(), 2, "{left:?}");
        let mut out = Vec::new();
        let target = Target {
            container: "app".into(),
            restart: 0,
            dir,
        };
        copy_run(
            &target,
            &LogOptions::default(),
            &mut out,
            || Ok(true),
            Duration::ZERO,
        )
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "two\n");
    }

    /// A follower reading while both streams write and the file rotates sees every line of
    /// each stream once, in order. Enough files are kept that none is pruned before the
    /// follower read it, however slowly a loaded machine schedules it (a follower more than
    /// `max_files` rotations behind loses what was pruned, as with the kubelet).
    #[test]
    fn a_follower_keeps_up_with_rotation() {
        let pod = tempfile::tempdir().unwrap();
        let rotation = LogRotation {
            max_size: 4096,
            max_files: 1000,
        };
        let log = open_log(pod.path(), "app", 0, rotation).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = [Stream::Stdout, Stream::Stderr]
            .into_iter()
            .map(|stream| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        let text = format!("{} {i:05}", stream.as_str());
                        // Every tenth line in two halves, as a long line is cut.
                        if i % 10 == 0 {
                            let (a, b) = text.split_at(4);
                            write_cri_line(&log, stream, false, a.as_bytes());
                            write_cri_line(&log, stream, true, b.as_bytes());
                        } else {
                            write_cri_line(&log, stream, true, text.as_bytes());
                        }
                        if i % 50 == 0 {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                    }
                })
            })
            .collect();
        let finished = {
            let done = done.clone();
            std::thread::spawn(move || {
                for w in writers {
                    w.join().unwrap();
                }
                done.store(true, Ordering::SeqCst);
            })
        };
        let target = Target {
            container: "app".into(),
            restart: 0,
            dir: pod.path().join("logs").join("app"),
        };
        let opts = LogOptions {
            follow: true,
            ..LogOptions::default()
        };
        let mut out = Vec::new();
        copy_run(
            &target,
            &opts,
            &mut out,
            || Ok(done.load(Ordering::SeqCst)),
            Duration::from_millis(1),
        )
        .unwrap();
        finished.join().unwrap();
        let text = String::from_utf8(out).unwrap();
        for stream in ["stdout", "stderr"] {
            let seen: Vec<&str> = text.lines().filter(|l| l.starts_with(stream)).collect();
            let want: Vec<String> = (0..2000).map(|i| format!("{stream} {i:05}")).collect();
            assert_eq!(seen, want, "{stream}");
        }
        let left = files(&target.dir);
        assert!(left.len() > 10, "the file rotated: {left:?}");
    }
}
