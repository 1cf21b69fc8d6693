//! A container's logs as `kubectl logs` shows them, read from the files `lifecycle` writes.
//!
//! Each run of a container logs to `<pod dir>/logs/<container>/<restartCount>.log` in the
//! kubelet's CRI format, one record a line: `<RFC3339Nano time> stdout|stderr F|P <text>`,
//! where `P` marks a partial line continued by the stream's next record. Like the kubelet's
//! `containerLogMaxSize`/`containerLogMaxFiles`, a file that grows past a size is renamed to
//! `<restartCount>.log.<UTC time>` and a new one started; the oldest rotated files of the run
//! go once there are more than a number of files (see [`LogRotation`]). The naming lives here,
//! for the writer and the reader alike.
//!
//! Reading a run means reading its rotated files oldest first, then the current one, with
//! partial records joined into lines per stream. Following a run keeps reading what is
//! appended, across rotations (a file is told by its inode, so one renamed under the reader
//! is recognized), until the run ends: the pod's status shows a newer run or this run
//! terminated, or the pod's supervisor is gone.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::lifecycle::Stream;
use crate::manifest::{quantity_bytes, QuantityError};
use crate::pods::{self, ContainerNames, PodRecord, PodsError};
use crate::status::{ContainerState, ContainerStatus};

/// The kubelet's default `containerLogMaxSize` (10Mi).
pub const DEFAULT_MAX_SIZE: u64 = 10 << 20;
/// The kubelet's default `containerLogMaxFiles`.
pub const DEFAULT_MAX_FILES: u32 = 5;

/// How often a followed run is polled for new records and for its end.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Errors of reading a container's logs.
#[derive(Debug, thiserror::Error)]
pub enum PodLogsError {
    #[error(transparent)]
    Pods(#[from] PodsError),
    /// `--previous` of a container that has not been restarted (the kubelet's message).
    #[error("previous terminated container {container:?} in pod {pod:?} not found")]
    NoPrevious { pod: String, container: String },
    /// The container has not run yet (the kubelet's message).
    #[error("container {container:?} in pod {pod:?} is waiting to start: {reason}")]
    WaitingToStart {
        pod: String,
        container: String,
        reason: String,
    },
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Writing the output failed (a closed pipe, for one).
    #[error("writing the logs")]
    Write(#[source] std::io::Error),
    /// A `--log-max-size` that is not a positive Kubernetes quantity.
    #[error("{text:?} is not a log size such as 10Mi, 512Ki or 1048576: {reason}")]
    BadSize { text: String, reason: SizeError },
}

/// Why a log size was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error(transparent)]
    Quantity(#[from] QuantityError),
    #[error("must be greater than 0")]
    Zero,
}

/// When a container's log file is rotated and how many files of one run are kept, as the
/// kubelet's `containerLogMaxSize` and `containerLogMaxFiles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRotation {
    /// A file that grew past this many bytes is rotated (it may exceed it by one record).
    pub max_size: u64,
    /// Files kept per run, the current one included (the kubelet requires at least 2).
    pub max_files: u32,
}

impl Default for LogRotation {
    fn default() -> Self {
        Self {
            max_size: DEFAULT_MAX_SIZE,
            max_files: DEFAULT_MAX_FILES,
        }
    }
}

/// A log size given as a Kubernetes quantity (`10Mi`, `512Ki`, `1048576`), above zero.
pub fn parse_max_size(text: &str) -> Result<u64, PodLogsError> {
    let bad = |reason| PodLogsError::BadSize {
        text: text.to_string(),
        reason,
    };
    match quantity_bytes(&Quantity(text.trim().to_string())) {
        Ok(0) => Err(bad(SizeError::Zero)),
        Ok(n) => Ok(n),
        Err(e) => Err(bad(e.into())),
    }
}

/// The directory of a container's log files: `<pod dir>/logs/<container>`.
pub fn log_dir(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir.join(pods::files::LOGS).join(container)
}

/// The file a run of a container writes to: `<restart>.log`.
pub fn current_file(dir: &Path, restart: u32) -> PathBuf {
    dir.join(format!("{restart}.log"))
}

/// The name a run's file is given when rotated at `at`: `<restart>.log.<YYYYMMDD-HHMMSS.mmm>`
/// (UTC), so names sort by time.
pub fn rotated_name(restart: u32, at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year][month][day]-[hour][minute][second].[subsecond digits:3]"
    );
    let stamp = at
        .to_offset(time::UtcOffset::UTC)
        .format(format)
        .unwrap_or_default();
    format!("{restart}.log.{stamp}")
}

/// `YYYYMMDD-HHMMSS.mmm`.
fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            8 => *c == b'-',
            15 => *c == b'.',
            _ => c.is_ascii_digit(),
        })
}

/// The rotated files of a run, oldest first.
pub fn rotated_files(dir: &Path, restart: u32) -> std::io::Result<Vec<PathBuf>> {
    let prefix = format!("{restart}.log.");
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut stamps: Vec<String> = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        if let Some(stamp) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) {
            if is_stamp(stamp) {
                stamps.push(stamp.to_string());
            }
        }
    }
    stamps.sort();
    Ok(stamps
        .into_iter()
        .map(|s| dir.join(format!("{prefix}{s}")))
        .collect())
}

/// Every file of a run, oldest first: its rotated files, then the current one if it exists.
pub fn run_files(dir: &Path, restart: u32) -> std::io::Result<Vec<PathBuf>> {
    let mut files = rotated_files(dir, restart)?;
    let current = current_file(dir, restart);
    if current.exists() {
        files.push(current);
    }
    Ok(files)
}

/// One record of a CRI log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// RFC 3339 time with nanoseconds, as written.
    pub time: &'a str,
    pub stream: Stream,
    /// `P`: the line goes on in the stream's next record.
    pub partial: bool,
    pub text: &'a [u8],
}

/// Parses one line of a CRI log file (without its newline); `None` when it is not a record.
/// Tags after the first (`F:x`) are ignored, as the kubelet does.
pub fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let tags = parts.next()?;
    let partial = match tags.split(|b| *b == b':').next()? {
        b"F" => false,
        b"P" => true,
        _ => return None,
    };
    if time.is_empty() {
        return None;
    }
    Some(Record {
        time,
        stream,
        partial,
        text: parts.next().unwrap_or_default(),
    })
}

/// One line of a container's output, joined from its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The time of its first record.
    pub time: String,
    pub stream: Stream,
    pub text: Vec<u8>,
    /// Ended by a newline; `false` for what a run left unfinished.
    pub complete: bool,
}

impl LogLine {
    /// Writes the line as `kubectl logs` prints it, optionally after its time.
    pub fn write_to(&self, out: &mut dyn Write, timestamps: bool) -> std::io::Result<()> {
        if timestamps {
            out.write_all(self.time.as_bytes())?;
            out.write_all(b" ")?;
        }
        out.write_all(&self.text)?;
        if self.complete {
            out.write_all(b"\n")?;
        }
        Ok(())
    }
}

/// The longest part of a line [`Joiner`] holds before passing it on unfinished.
const MAX_JOINED: usize = 1024 * 1024;

/// Joins partial records into lines, each stream on its own: the two streams are written
/// by two pumps, so a stdout record may fall between two halves of a stderr line.
#[derive(Debug, Default)]
struct Joiner {
    /// Unfinished lines of stdout and stderr, with the order their first record came in.
    pending: [Option<(u64, LogLine)>; 2],
    seq: u64,
}

impl Joiner {
    /// Takes a record; returns the line it completes.
    fn push(&mut self, record: Record<'_>) -> Option<LogLine> {
        let slot = &mut self.pending[match record.stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }];
        match slot {
            Some((_, line)) => line.text.extend_from_slice(record.text),
            None => {
                self.seq += 1;
                *slot = Some((
                    self.seq,
                    LogLine {
                        time: record.time.to_string(),
                        stream: record.stream,
                        text: record.text.to_vec(),
                        complete: false,
                    },
                ));
            }
        }
        if record.partial {
            // A line that never ends (output without newlines) is passed on in pieces, its
            // newline left out, rather than held whole in memory.
            let long = slot
                .as_ref()
                .is_some_and(|(_, line)| line.text.len() >= MAX_JOINED);
            return if long {
                slot.take().map(|(_, line)| line)
            } else {
                None
            };
        }
        slot.take().map(|(_, mut line)| {
            line.complete = true;
            line
        })
    }

    /// The unfinished lines, in the order they began.
    fn finish(&mut self) -> Vec<LogLine> {
        let mut left: Vec<(u64, LogLine)> =
            self.pending.iter_mut().filter_map(Option::take).collect();
        left.sort_by_key(|(seq, _)| *seq);
        left.into_iter().map(|(_, line)| line).collect()
    }
}

/// A file identity that survives renames: device and inode.
type FileId = (u64, u64);

fn file_id(meta: &std::fs::Metadata) -> FileId {
    (meta.dev(), meta.ino())
}

/// The file of a run being read, with the bytes of a record not yet complete.
struct OpenFile {
    reader: BufReader<File>,
    id: FileId,
    path: PathBuf,
    unfinished: Vec<u8>,
}

/// Reads the records of one run of a container, across its rotated files, as they come.
struct RunReader {
    dir: PathBuf,
    restart: u32,
    file: Option<OpenFile>,
    joiner: Joiner,
}

impl RunReader {
    /// Starts at the oldest file of the run; `None` when the run has no file.
    fn open(dir: &Path, restart: u32) -> Result<Option<Self>, PodLogsError> {
        let mut reader = Self {
            dir: dir.to_path_buf(),
            restart,
            file: None,
            joiner: Joiner::default(),
        };
        reader.file = reader.next_file(None)?;
        Ok(reader.file.is_some().then_some(reader))
    }

    /// Emits every line complete in the run's files now, oldest first, following rotations.
    fn read_available(
        &mut self,
        emit: &mut dyn FnMut(LogLine) -> Result<(), PodLogsError>,
    ) -> Result<(), PodLogsError> {
        let current = current_file(&self.dir, self.restart);
        loop {
            let Some(file) = self.file.as_mut() else {
                self.file = self.next_file(None)?;
                if self.file.is_none() {
                    return Ok(());
                }
                continue;
            };
            read_records(file, &mut self.joiner, emit)?;
            if std::fs::metadata(&current).is_ok_and(|m| file_id(&m) == file.id) {
                return Ok(());
            }
            // Renamed away (or removed): nothing more is written to it once that is seen,
            // so what it holds now is all it will hold.
            read_records(file, &mut self.joiner, emit)?;
            let id = file.id;
            let Some(next) = self.next_file(Some(id))? else {
                // Rotation under way: the new current file is not there yet.
                return Ok(());
            };
            if let Some(done) = self.file.replace(next) {
                if let Some(line) = parse_record(&done.unfinished).and_then(|r| self.joiner.push(r))
                {
                    emit(line)?;
                }
            }
        }
    }

    /// The lines the run left unfinished (call once it has ended).
    fn finish(&mut self) -> Vec<LogLine> {
        self.joiner.finish()
    }

    /// Opens the file that comes after `after` (the first file when `None`); `None` when
    /// there is none yet. A file removed by rotation between listing and opening, or a
    /// current file rotated in that moment, is noticed by its identity and looked up again.
    fn next_file(&self, after: Option<FileId>) -> Result<Option<OpenFile>, PodLogsError> {
        let listing = || -> Result<(Vec<PathBuf>, Vec<Option<FileId>>), PodLogsError> {
            let files = run_files(&self.dir, self.restart).map_err(|source| PodLogsError::Io {
                path: self.dir.clone(),
                source,
            })?;
            let ids = files
                .iter()
                .map(|p| std::fs::metadata(p).ok().map(|m| file_id(&m)))
                .collect();
            Ok((files, ids))
        };
        for _ in 0..16 {
            // A listing is read in steps (the rotated names, then the current file): a
            // rotation in between drops the file it just rotated. Two listings alike, ids
            // included, had no rotation in the first.
            let (files, ids) = listing()?;
            if listing()? != (files.clone(), ids.clone()) {
                // Give the rotation under way a moment to finish.
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            // Files older than `after` are removed before it, so when it is gone every
            // file left is newer.
            let index = match after.and_then(|a| ids.iter().position(|i| *i == Some(a))) {
                Some(i) => i + 1,
                None => 0,
            };
            let (Some(path), Some(Some(want))) = (files.get(index), ids.get(index)) else {
                if index < files.len() {
                    continue;
                }
                return Ok(None);
            };
            let file = match File::open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(PodLogsError::Io {
                        path: path.clone(),
                        source,
                    })
                }
            };
            let io = |source| PodLogsError::Io {
                path: path.clone(),
                source,
            };
            if file_id(&file.metadata().map_err(io)?) != *want {
                continue;
            }
            return Ok(Some(OpenFile {
                reader: BufReader::with_capacity(64 * 1024, file),
                id: *want,
                path: path.clone(),
                unfinished: Vec::new(),
            }));
        }
        Ok(None)
    }
}

/// Reads the whole records `file` holds from where it stands, keeping a record cut short by
/// the end of the file for the next read.
fn read_records(
    file: &mut OpenFile,
    joiner: &mut Joiner,
    emit: &mut dyn FnMut(LogLine) -> Result<(), PodLogsError>,
) -> Result<(), PodLogsError> {
    loop {
        let n = file
            .reader
            .read_until(b'\n', &mut file.unfinished)
            .map_err(|source| PodLogsError::Io {
                path: file.path.clone(),
                source,
            })?;
        if n == 0 || file.unfinished.last() != Some(&b'\n') {
            return Ok(());
        }
        let line = &file.unfinished[..file.unfinished.len() - 1];
        // A line that is no record (a torn write) is skipped, as the kubelet does.
        if let Some(line) = parse_record(line).and_then(|r| joiner.push(r)) {
            emit(line)?;
        }
        file.unfinished.clear();
    }
}

/// What `podctl logs` prints.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// The container (main, init or sidecar); may be left out when the pod has one main
    /// container.
    pub container: Option<String>,
    /// The run before the current one.
    pub previous: bool,
    /// Keep printing what the run appends until it ends.
    pub follow: bool,
    /// Only the last this many lines (before following).
    pub tail: Option<usize>,
    /// Each line after the time of its first record.
    pub timestamps: bool,
}

/// The run whose logs are shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub container: String,
    /// The run's number (its restartCount).
    pub restart: u32,
    /// `<pod dir>/logs/<container>`.
    pub dir: PathBuf,
}

/// Picks the container and run as `kubectl logs` does: the only main container unless one is
/// named; the run the status's `restartCount` numbers, or the one before with `previous`.
/// A container that never ran is refused as waiting to start; one waiting to be restarted
/// whose next run has no file yet shows its last run, as the kubelet shows the last
/// terminated container.
pub fn select(record: &PodRecord, opts: &LogOptions) -> Result<Target, PodLogsError> {
    let pod = record.name.as_str();
    let container = ContainerNames::of_record(record).choose(pod, opts.container.as_deref())?;
    let dir = log_dir(&record.dir, &container);
    let status = record
        .status
        .as_ref()
        .and_then(|s| s.all().find(|c| c.name == container));
    let restart_count = status.map_or(0, |s| s.restart_count);
    let has_files = |restart: u32| {
        run_files(&dir, restart)
            .map(|f| !f.is_empty())
            .map_err(|source| PodLogsError::Io {
                path: dir.clone(),
                source,
            })
    };
    let target = |restart| Target {
        container: container.clone(),
        restart,
        dir: dir.clone(),
    };
    if opts.previous {
        let no_previous = || PodLogsError::NoPrevious {
            pod: pod.to_string(),
            container: container.clone(),
        };
        let restart = restart_count.checked_sub(1).ok_or_else(no_previous)?;
        return match has_files(restart)? {
            true => Ok(target(restart)),
            false => Err(no_previous()),
        };
    }
    let waiting = status.and_then(|s| match &s.state {
        ContainerState::Waiting(w) => Some((w.reason.clone(), s.last_state.is_some())),
        _ => None,
    });
    let waiting_to_start = |reason: Option<String>| PodLogsError::WaitingToStart {
        pod: pod.to_string(),
        container: container.clone(),
        reason: reason.unwrap_or_else(|| "ContainerCreating".to_string()),
    };
    match &waiting {
        // Never ran: its file may be there already (containers are prepared ahead).
        Some((reason, false)) => return Err(waiting_to_start(Some(reason.clone()))),
        _ if has_files(restart_count)? => return Ok(target(restart_count)),
        // Waiting to be restarted, the next run not created yet: its last run.
        Some((_, true)) if restart_count > 0 && has_files(restart_count - 1)? => {
            return Ok(target(restart_count - 1))
        }
        _ => {}
    }
    Err(waiting_to_start(waiting.map(|(reason, _)| reason)))
}

/// Whether run `restart` of `container` has ended, so nothing more is written to its log:
/// the pod is gone or no longer supervised, its status shows a newer run, this run
/// terminated, or it waits again after it was seen running (`seen_running`, kept across
/// calls). A run that ended before the follower first looked and now waits for its
/// restart counts as ended once the restart begins.
pub fn run_ended(
    record: Result<PodRecord, PodsError>,
    container: &str,
    restart: u32,
    seen_running: &mut bool,
) -> Result<bool, PodLogsError> {
    let record = match record {
        Ok(r) => r,
        Err(PodsError::NotFound { .. }) => return Ok(true),
        Err(e) => return Err(e.into()),
    };
    if !record.is_running() {
        return Ok(true);
    }
    let Some(status) = record
        .status
        .as_ref()
        .and_then(|s| s.all().find(|c| c.name == container))
    else {
        return Ok(false);
    };
    if status.restart_count != restart {
        return Ok(status.restart_count > restart);
    }
    Ok(match status.state {
        ContainerState::Terminated(_) => true,
        ContainerState::Running(_) => {
            *seen_running = true;
            false
        }
        // Waiting for a restart while the status still names the run that ended (the runner
        // names the next run together with its restart count, once it exists): the run
        // followed is over, as kubectl stops at a container that does not run.
        ContainerState::Waiting(_) => *seen_running || waits_after(status),
    })
}

/// Whether the container waits to be restarted after the run its status still names.
fn waits_after(status: &ContainerStatus) -> bool {
    let last_id = match &status.last_state {
        Some(ContainerState::Terminated(t)) => Some(t.container_id.as_str()),
        _ => None,
    };
    status.container_id.is_some() && status.container_id.as_deref() == last_id
}

/// Writes the logs of a container of `pod` to `out` as `kubectl logs` does (see
/// [`LogOptions`]); with `follow`, returns when the run ends.
pub fn write(
    root: &Path,
    namespace: &str,
    pod: &str,
    opts: &LogOptions,
    out: &mut dyn Write,
) -> Result<(), PodLogsError> {
    let record = pods::get(root, namespace, pod)?;
    let target = select(&record, opts)?;
    let mut printer = Printer {
        out,
        timestamps: opts.timestamps,
    };
    read(root, namespace, pod, &target, opts, &mut printer)
}

/// Where the lines of a run go as they are read.
pub trait LineSink {
    /// The next line.
    fn line(&mut self, line: LogLine) -> std::io::Result<()>;
    /// After each look at the run's files (with `follow`, every poll): passes on what it
    /// was given so far. An error ends the reading, as one of [`LineSink::line`] does.
    fn flush(&mut self) -> std::io::Result<()>;
}

/// Lines written as `kubectl logs` prints them.
struct Printer<'a> {
    out: &'a mut dyn Write,
    timestamps: bool,
}

impl LineSink for Printer<'_> {
    fn line(&mut self, line: LogLine) -> std::io::Result<()> {
        line.write_to(self.out, self.timestamps)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Gives run `target` of a container of `pod` (as [`select`] picked it) to `sink`: the last
/// `opts.tail` lines it holds now, then, with `opts.follow`, what it appends until the run
/// ends (see [`run_ended`]). A failing sink ends the reading with [`PodLogsError::Write`].
pub fn read(
    root: &Path,
    namespace: &str,
    pod: &str,
    target: &Target,
    opts: &LogOptions,
    sink: &mut dyn LineSink,
) -> Result<(), PodLogsError> {
    let mut seen_running = false;
    let ended = || {
        let record = pods::get(root, namespace, pod);
        run_ended(record, &target.container, target.restart, &mut seen_running)
    };
    read_run(target, opts, sink, ended, FOLLOW_POLL)
}

/// Copies run `target` to `out` as [`write`] prints it (see [`read_run`]), for tests.
#[cfg(test)]
pub(crate) fn copy_run(
    target: &Target,
    opts: &LogOptions,
    out: &mut dyn Write,
    ended: impl FnMut() -> Result<bool, PodLogsError>,
    poll: Duration,
) -> Result<(), PodLogsError> {
    let mut printer = Printer {
        out,
        timestamps: opts.timestamps,
    };
    read_run(target, opts, &mut printer, ended, poll)
}

/// Gives run `target` to `sink`: the last `opts.tail` lines of what it holds now, then, with
/// `opts.follow`, what is appended until `ended` says the run is over (checked every `poll`).
fn read_run(
    target: &Target,
    opts: &LogOptions,
    sink: &mut dyn LineSink,
    mut ended: impl FnMut() -> Result<bool, PodLogsError>,
    poll: Duration,
) -> Result<(), PodLogsError> {
    let Some(mut reader) = RunReader::open(&target.dir, target.restart)? else {
        return Ok(());
    };
    let print = |line: LogLine, sink: &mut dyn LineSink| -> Result<(), PodLogsError> {
        sink.line(line).map_err(PodLogsError::Write)
    };

    // What the run holds now; only its last lines when asked.
    let mut last: VecDeque<LogLine> = VecDeque::new();
    let mut keep = |line: LogLine| -> Result<(), PodLogsError> {
        match opts.tail {
            Some(0) => {}
            Some(n) => {
                if last.len() == n {
                    last.pop_front();
                }
                last.push_back(line);
            }
            None => print(line, sink)?,
        }
        Ok(())
    };
    reader.read_available(&mut keep)?;
    let mut done = !opts.follow;
    if !done && ended()? {
        reader.read_available(&mut keep)?;
        done = true;
    }
    if done {
        for line in reader.finish() {
            keep(line)?;
        }
    }
    for line in last.drain(..) {
        print(line, sink)?;
    }
    sink.flush().map_err(PodLogsError::Write)?;

    while !done {
        std::thread::sleep(poll);
        // The end is checked before reading: once the run has ended, this read is its last.
        done = ended()?;
        reader.read_available(&mut |line| print(line, sink))?;
        if done {
            for line in reader.finish() {
                print(line, sink)?;
            }
        }
        sink.flush().map_err(PodLogsError::Write)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(time: &str, stream: &str, tag: &str, text: &str) -> String {
        format!("{time} {stream} {tag} {text}\n")
    }

    #[test]
    fn a_line_without_end_is_passed_on_in_pieces() {
        let mut joiner = Joiner::default();
        let chunk = vec![b'x'; 16 * 1024];
        let record = Record {
            time: "t",
            stream: Stream::Stdout,
            partial: true,
            text: &chunk,
        };
        let mut pieces = Vec::new();
        for _ in 0..200 {
            pieces.extend(joiner.push(record));
        }
        assert_eq!(pieces.len(), 3, "200 x 16 KiB in 1 MiB pieces");
        assert!(pieces
            .iter()
            .all(|p| !p.complete && p.text.len() == MAX_JOINED));
    }

    #[test]
    fn records_parse_as_the_kubelet_writes_them() {
        let r = parse_record(b"2026-11-25T12:34:56.123456789Z stdout F hello world").unwrap();
        assert_eq!(r.time, "2026-11-25T12:34:56.123456789Z");
        assert_eq!(r.stream, Stream::Stdout);
        assert!(!r.partial);
        assert_eq!(r.text, b"hello world");
        let r = parse_record(b"2026-11-25T12:34:56Z stderr P  two  spaces").unwrap();
        assert_eq!(r.stream, Stream::Stderr);
        assert!(r.partial);
        assert_eq!(r.text, b" two  spaces");
        let empty = parse_record(b"2026-11-25T12:34:56Z stdout F ").unwrap();
        assert_eq!(empty.text, b"");
        let bare = parse_record(b"2026-11-25T12:34:56Z stdout F").unwrap();
        assert_eq!(bare.text, b"");
        let tagged = parse_record(b"t stdout F:x text").unwrap();
        assert!(!tagged.partial);
        for bad in [
            &b""[..],
            b"t",
            b"t stdin F x",
            b"t stdout X x",
            b" stdout F x",
            b"t stdout",
        ] {
            assert_eq!(
                parse_record(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn partial_records_join_per_stream() {
        let mut j = Joiner::default();
        let r = |s: &'static str| parse_record(s.as_bytes()).unwrap();
        assert_eq!(j.push(r("t1 stdout P hel")), None);
        // A stderr line falls between the halves of a stdout line.
        let err = j.push(r("t2 stderr F oops")).unwrap();
        assert_eq!((err.time.as_str(), &err.text[..]), ("t2", &b"oops"[..]));
        assert_eq!(j.push(r("t3 stdout P lo ")), None);
        let out = j.push(r("t4 stdout F world")).unwrap();
        assert_eq!(out.text, b"hello world");
        assert_eq!(out.time, "t1", "a line has its first record's time");
        assert_eq!(out.stream, Stream::Stdout);
        assert!(out.complete);
        // Unfinished at the end: given back incomplete, in the order they began.
        assert_eq!(j.push(r("t5 stderr P b")), None);
        assert_eq!(j.push(r("t6 stdout P a")), None);
        let left = j.finish();
        assert_eq!(left.len(), 2);
        assert_eq!((&left[0].text[..], left[0].complete), (&b"b"[..], false));
        assert_eq!(&left[1].text[..], b"a");
        assert!(j.finish().is_empty());
    }

    #[test]
    fn rotated_names_sort_by_time_and_are_told_apart_from_other_runs() {
        let at = time::macros::datetime!(2026-11-25 12:34:56.789123 UTC);
        assert_eq!(rotated_name(3, at), "3.log.20261125-123456.789");
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "1.log",
            "1.log.20261125-123457.001",
            "1.log.20261125-123456.999",
            "11.log.20261125-123456.000",
            "1.log.tmp",
            "1.log.20261125-123456.999.gz",
            "0.log",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let names = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            names(run_files(dir.path(), 1).unwrap()),
            [
                "1.log.20261125-123456.999",
                "1.log.20261125-123457.001",
                "1.log"
            ]
        );
        assert_eq!(names(run_files(dir.path(), 0).unwrap()), ["0.log"]);
        assert!(run_files(dir.path(), 2).unwrap().is_empty());
        assert!(run_files(&dir.path().join("none"), 0).unwrap().is_empty());
    }

    #[test]
    fn sizes_parse_as_quantities() {
        assert_eq!(parse_max_size("10Mi").unwrap(), 10 << 20);
        assert_eq!(parse_max_size("512Ki").unwrap(), 512 << 10);
        assert_eq!(parse_max_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_max_size("1M").unwrap(), 1_000_000);
        let zero = parse_max_size("0").unwrap_err();
        assert_eq!(
            zero.to_string(),
            "\"0\" is not a log size such as 10Mi, 512Ki or 1048576: must be greater than 0"
        );
        assert!(matches!(
            parse_max_size("10MB"),
            Err(PodLogsError::BadSize {
                reason: SizeError::Quantity(QuantityError::Syntax),
                ..
            })
        ));
        assert!(parse_max_size("-1Ki").is_err());
    }

    /// A run of three files: two rotated (one ending inside a partial line), the current.
    fn rotated_run(dir: &Path) {
        std::fs::write(
            dir.join("0.log.20261125-120000.000"),
            rec("t1", "stdout", "F", "one")
                + &rec("t2", "stderr", "F", "two")
                + &rec("t3", "stdout", "P", "thr"),
        )
        .unwrap();
        std::fs::write(
            dir.join("0.log.20261125-120001.000"),
            rec("t4", "stdout", "F", "ee")
                + "garbage without fields\n"
                + &rec("t5", "stdout", "F", "four"),
        )
        .unwrap();
        std::fs::write(
            dir.join("0.log"),
            rec("t6", "stderr", "F", "five") + &rec("t7", "stdout", "P", "six, unfinished"),
        )
        .unwrap();
    }

    fn target(dir: &Path, restart: u32) -> Target {
        Target {
            container: "c".into(),
            restart,
            dir: dir.to_path_buf(),
        }
    }

    fn copy(dir: &Path, opts: &LogOptions) -> String {
        let mut out = Vec::new();
        copy_run(&target(dir, 0), opts, &mut out, || Ok(true), Duration::ZERO).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_run_reads_across_its_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        rotated_run(dir.path());
        let all = LogOptions::default();
        assert_eq!(
            copy(dir.path(), &all),
            "one\ntwo\nthree\nfour\nfive\nsix, unfinished"
        );
        let stamped = LogOptions {
            timestamps: true,
            ..all.clone()
        };
        assert_eq!(
            copy(dir.path(), &stamped),
            "t1 one\nt2 two\nt3 three\nt5 four\nt6 five\nt7 six, unfinished"
        );
        let tail = |n| LogOptions {
            tail: Some(n),
            ..all.clone()
        };
        assert_eq!(copy(dir.path(), &tail(0)), "");
        assert_eq!(copy(dir.path(), &tail(2)), "five\nsix, unfinished");
        // The last lines reach back into the oldest file, partial record joined.
        assert_eq!(
            copy(dir.path(), &tail(4)),
            "three\nfour\nfive\nsix, unfinished"
        );
        assert_eq!(copy(dir.path(), &tail(100)), copy(dir.path(), &all));
    }

    #[test]
    fn follow_sees_appends_and_rotations_until_the_run_ends() {
        let dir = tempfile::tempdir().unwrap();
        let current = dir.path().join("0.log");
        std::fs::write(&current, rec("t1", "stdout", "F", "one")).unwrap();
        let append = |text: String| {
            let mut f = File::options()
                .append(true)
                .open(dir.path().join("0.log"))
                .unwrap();
            f.write_all(text.as_bytes()).unwrap();
        };
        // Each poll the test writes some more: an append, a rotation (the reader holds the
        // renamed file), a rotation whose oldest file is removed, then the end.
        let mut step = 0;
        let ended = || {
            step += 1;
            match step {
                1 => append(rec("t2", "stdout", "P", "tw")),
                2 => {
                    append(rec("t3", "stdout", "F", "o"));
                    std::fs::rename(&current, dir.path().join("0.log.20261125-120000.000"))
                        .unwrap();
                    std::fs::write(&current, rec("t4", "stderr", "F", "three")).unwrap();
                }
                3 => {
                    append(rec("t5", "stdout", "F", "four"));
                    std::fs::rename(&current, dir.path().join("0.log.20261125-120001.000"))
                        .unwrap();
                    std::fs::remove_file(dir.path().join("0.log.20261125-120000.000")).unwrap();
                    std::fs::write(&current, rec("t6", "stdout", "F", "five")).unwrap();
                }
                4 => append(rec("t7", "stdout", "P", "six")),
                _ => return Ok(true),
            }
            Ok(false)
        };
        let opts = LogOptions {
            follow: true,
            tail: Some(1),
            ..LogOptions::default()
        };
        let mut out = Vec::new();
        copy_run(
            &target(dir.path(), 0),
            &opts,
            &mut out,
            ended,
            Duration::ZERO,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "one\ntwo\nthree\nfour\nfive\nsix"
        );
    }

    fn record(dir: &Path, status: serde_json::Value, supervised: bool) -> PodRecord {
        PodRecord {
            name: "p".into(),
            dir: dir.to_path_buf(),
            pod: Some(
                serde_json::from_value(serde_json::json!({
                    "metadata": {"name": "p"},
                    "spec": {
                        "initContainers": [{"name": "init", "image": "busybox"}],
                        "containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}]
                    }
                }))
                .unwrap(),
            ),
            status: Some(serde_json::from_value(status).unwrap()),
            supervisor: supervised.then(|| pods::Supervisor::current().unwrap()),
        }
    }

    fn status(
        restart_count: u32,
        state: serde_json::Value,
        last: serde_json::Value,
    ) -> serde_json::Value {
        let c = |name: &str| {
            serde_json::json!({
                "name": name, "image": "busybox", "state": state, "lastState": last,
                "ready": false, "restartCount": restart_count, "started": false
            })
        };
        serde_json::json!({
            "phase": "Running", "conditions": [],
            "initContainerStatuses": [c("init")],
            "containerStatuses": [c("a"), c("b")]
        })
    }

    fn terminated(code: i32) -> serde_json::Value {
        serde_json::json!({"terminated": {"exitCode": code, "reason": "Error", "containerID": "containerd://x"}})
    }

    #[test]
    fn containers_and_runs_are_selected_as_kubectl_does() {
        let dir = tempfile::tempdir().unwrap();
        let running = serde_json::json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}});
        let r = record(dir.path(), status(1, running.clone(), terminated(1)), true);
        let opts = |c: Option<&str>, previous| LogOptions {
            container: c.map(String::from),
            previous,
            ..LogOptions::default()
        };
        let err = select(&r, &opts(None, false)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a container name must be specified for pod p, choose one of: [a b] \
             or one of the init containers: [init]"
        );
        let err = select(&r, &opts(Some("z"), false)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "container z is not valid for pod p, choose one of: [a b] \
             or one of the init containers: [init]"
        );
        // No file for run 1 yet, and the container runs: it is still being created.
        let err = select(&r, &opts(Some("a"), false)).unwrap_err();
        assert!(matches!(err, PodLogsError::WaitingToStart { .. }), "{err}");

        let a = log_dir(dir.path(), "a");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::write(a.join("0.log"), "").unwrap();
        std::fs::write(a.join("1.log"), "").unwrap();
        assert_eq!(select(&r, &opts(Some("a"), false)).unwrap().restart, 1);
        assert_eq!(select(&r, &opts(Some("a"), true)).unwrap().restart, 0);
        assert_eq!(select(&r, &opts(Some("a"), false)).unwrap().dir, a);

        let first = record(
            dir.path(),
            status(0, running.clone(), serde_json::json!({})),
            true,
        );
        let err = select(&first, &opts(Some("init"), true)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "previous terminated container \"init\" in pod \"p\" not found"
        );
        let pending = serde_json::json!({"waiting": {"reason": "PodInitializing"}});
        let waiting = record(dir.path(), status(0, pending, serde_json::json!({})), true);
        // Prepared ahead, its file is there already; it has not run.
        assert!(a.join("0.log").exists());
        let err = select(&waiting, &opts(Some("a"), false)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "container \"a\" in pod \"p\" is waiting to start: PodInitializing"
        );
        // Waiting to be restarted, the next run not created yet: its last run is shown.
        let back_off = serde_json::json!({"waiting": {"reason": "CrashLoopBackOff"}});
        let restarting = record(dir.path(), status(2, back_off.clone(), terminated(1)), true);
        assert_eq!(
            select(&restarting, &opts(Some("a"), false))
                .unwrap()
                .restart,
            1
        );
        // In its back-off, before the restart count moves on: the run that ended.
        let backing_off = record(dir.path(), status(1, back_off, terminated(1)), true);
        assert_eq!(
            select(&backing_off, &opts(Some("a"), false))
                .unwrap()
                .restart,
            1
        );

        let single = PodRecord {
            pod: Some(
                serde_json::from_value(serde_json::json!({
                    "metadata": {"name": "p"},
                    "spec": {"containers": [{"name": "a", "image": "busybox"}]}
                }))
                .unwrap(),
            ),
            ..r.clone()
        };
        assert_eq!(select(&single, &opts(None, false)).unwrap().container, "a");
        let lone = PodRecord {
            pod: None,
            status: None,
            ..single
        };
        let err = select(&lone, &opts(None, false)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a container name must be specified for pod p, choose one of: []"
        );
    }

    #[test]
    fn a_run_ends_with_a_newer_run_its_termination_or_its_supervisor() {
        let dir = tempfile::tempdir().unwrap();
        let running = serde_json::json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}});
        let back_off = serde_json::json!({"waiting": {"reason": "CrashLoopBackOff"}});
        let none = serde_json::json!({});
        let ended = |status, supervised, restart, seen: &mut bool| {
            run_ended(
                Ok(record(dir.path(), status, supervised)),
                "a",
                restart,
                seen,
            )
            .unwrap()
        };
        let mut seen = false;
        // Waiting for its first start: not over.
        assert!(!ended(
            status(0, back_off.clone(), none.clone()),
            true,
            0,
            &mut seen
        ));
        assert!(!ended(
            status(0, running.clone(), none.clone()),
            true,
            0,
            &mut seen
        ));
        assert!(seen);
        // Back to waiting after it ran: this run is over.
        assert!(ended(
            status(0, back_off.clone(), terminated(1)),
            true,
            0,
            &mut seen
        ));
        let mut fresh = false;
        assert!(ended(
            status(0, terminated(1), none.clone()),
            true,
            0,
            &mut fresh
        ));
        assert!(ended(
            status(1, running.clone(), terminated(1)),
            true,
            0,
            &mut fresh
        ));
        // The next run, created but not started, with the last one's state: not over.
        assert!(!ended(
            status(1, back_off.clone(), terminated(1)),
            true,
            1,
            &mut fresh
        ));
        // In back-off, the status still naming the run that ended: that run is over.
        let mut dead = status(1, back_off, terminated(1));
        dead["containerStatuses"][0]["containerID"] = "containerd://x".into();
        assert!(ended(dead, true, 1, &mut fresh));
        assert!(ended(status(0, running, none), false, 0, &mut fresh));
        let gone = Err(PodsError::NotFound {
            pod: "p".into(),
            namespace: "n".into(),
        });
        assert!(run_ended(gone, "a", 0, &mut fresh).unwrap());
    }
}
