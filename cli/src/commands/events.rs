//! `podctl events`: pods' lifecycle events, as `kubectl events` prints them.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use podctl_runtime::lifecycle::{EventType, PodEvent};
use podctl_runtime::pods::{self, EventsTail};
use serde::Serialize;

use crate::output::print_data;
use crate::{Format, Global};

/// How often `-f` looks for new events.
const POLL_EVERY: Duration = Duration::from_millis(200);

const HEADER: [&str; 5] = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"];

/// Arguments of `podctl events`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The events are those `podctl run --events` prints as they happen (Created, Started, Killing, \
BackOff, Unhealthy, FailedPostStartHook, DeadlineExceeded, Completed, Failed ...), read from \
<root>/<namespace>/pods/<pod>/events.jsonl; they stay until `podctl rm`.")]
pub struct Args {
    /// Only this pod's events (default: every pod's, merged by time)
    pod: Option<String>,
    /// Keep printing events as they are recorded: for one pod until its `podctl run` ends,
    /// for all pods until interrupted (Ctrl-C)
    #[arg(short, long)]
    follow: bool,
    /// table: LAST SEEN, TYPE, REASON, OBJECT (pod/NAME or pod/NAME/CONTAINER), MESSAGE;
    /// json or yaml: a list of {pod, time, type, reason, container, message}; with -f, one
    /// JSON object per line (or one YAML document per event)
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    output: Format,
}

/// An event with the pod it belongs to, as `-o json|yaml` prints it.
#[derive(Debug, Clone, Serialize)]
struct Record {
    pod: String,
    #[serde(flatten)]
    event: PodEvent,
}

pub async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let mut printer = Printer::new(args.output, args.follow);
    match &args.pod {
        Some(name) => {
            let record = pods::get(&g.root, &g.namespace, name)?;
            let mut tail = EventsTail::new(record.events_path());
            let stop = super::wait_for_stop_signal();
            tokio::pin!(stop);
            let mut interrupted = false;
            loop {
                // Looked at before reading, so the events of a run that just ended are read.
                // Read again each time: a daemon outlives the pods it supervised.
                let supervised =
                    pods::get(&g.root, &g.namespace, name).is_ok_and(|r| r.is_running());
                let events = tail.read_new()?;
                printer.print(of_pod(name, events))?;
                if !args.follow || !supervised || interrupted {
                    break;
                }
                // Interrupted: what was recorded until then is still printed.
                tokio::select! {
                    _ = &mut stop => interrupted = true,
                    _ = tokio::time::sleep(POLL_EVERY) => {}
                }
            }
        }
        None => {
            let dir = pods::pods_dir(&g.root, &g.namespace);
            let mut tails: BTreeMap<String, EventsTail> = BTreeMap::new();
            let stop = super::wait_for_stop_signal();
            tokio::pin!(stop);
            let mut interrupted = false;
            loop {
                let names = pods::names(&g.root, &g.namespace)?;
                // Pods removed meanwhile are forgotten; a pod run again under their name
                // is then read from its first event.
                tails.retain(|name, _| names.contains(name));
                let mut batch = Vec::new();
                for name in names {
                    let tail = tails.entry(name.clone()).or_insert_with(|| {
                        EventsTail::new(dir.join(&name).join(pods::files::EVENTS))
                    });
                    batch.extend(of_pod(&name, tail.read_new()?));
                }
                // Stable: events of the same second keep their order within a pod.
                batch.sort_by(|a, b| a.event.time.cmp(&b.event.time));
                printer.print(batch)?;
                if !args.follow || interrupted {
                    break;
                }
                tokio::select! {
                    _ = &mut stop => interrupted = true,
                    _ = tokio::time::sleep(POLL_EVERY) => {}
                }
            }
        }
    }
    printer.finish()?;
    Ok(0)
}

fn of_pod(pod: &str, events: Vec<PodEvent>) -> Vec<Record> {
    events
        .into_iter()
        .map(|event| Record {
            pod: pod.to_string(),
            event,
        })
        .collect()
}

/// Prints events as they come: without `-f` all at once at the end (one table, one JSON
/// list); with `-f` each batch as it is read, table rows aligned on the first batch's
/// columns.
struct Printer {
    format: Format,
    follow: bool,
    /// Without `-f`: everything read, printed by [`Printer::finish`].
    kept: Vec<Record>,
    /// With `-f` and a table: the column widths, once the header was printed.
    widths: Option<Vec<usize>>,
}

impl Printer {
    fn new(format: Format, follow: bool) -> Self {
        Self {
            format,
            follow,
            kept: Vec::new(),
            widths: None,
        }
    }

    fn print(&mut self, records: Vec<Record>) -> anyhow::Result<()> {
        if !self.follow {
            self.kept.extend(records);
            return Ok(());
        }
        match self.format {
            Format::Table => {
                let now = SystemTime::now();
                let rows: Vec<Vec<String>> = records.iter().map(|r| row(r, now)).collect();
                let widths = self.widths.get_or_insert_with(|| {
                    let widths = widths(&rows);
                    print!("{}", line(&HEADER.map(String::from), &widths));
                    widths
                });
                for r in &rows {
                    print!("{}", line(r, widths));
                }
            }
            Format::Json => {
                for r in &records {
                    println!("{}", serde_json::to_string(r)?);
                }
            }
            Format::Yaml => {
                for r in &records {
                    print!("---\n{}", serde_saphyr::to_string(r)?);
                }
            }
        }
        use std::io::Write;
        std::io::stdout().flush()?;
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        if self.follow {
            return Ok(());
        }
        match self.format {
            Format::Table if self.kept.is_empty() => eprintln!("No events found."),
            Format::Table => {
                let now = SystemTime::now();
                let rows: Vec<Vec<String>> = self.kept.iter().map(|r| row(r, now)).collect();
                print!("{}", crate::output::table(&HEADER, &rows));
            }
            f => print_data(f, &self.kept)?,
        }
        Ok(())
    }
}

/// One table row: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE.
fn row(record: &Record, now: SystemTime) -> Vec<String> {
    let e = &record.event;
    let seen =
        pods::parse_time(&e.time).map_or_else(|| e.time.clone(), |t| crate::output::age(t, now));
    let type_ = match e.type_ {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    };
    let object = match &e.container {
        Some(c) => format!("pod/{}/{c}", record.pod),
        None => format!("pod/{}", record.pod),
    };
    vec![
        seen,
        type_.to_string(),
        e.reason.clone(),
        object,
        e.message.clone(),
    ]
}

/// Column widths for `rows` under [`HEADER`], as `output::table` computes them.
fn widths(rows: &[Vec<String>]) -> Vec<usize> {
    let mut widths: Vec<usize> = HEADER.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    widths
}

/// One row padded to `widths` (a longer cell pushes the rest of its line), as
/// `output::table` lays it out.
fn line(cells: &[String], widths: &[usize]) -> String {
    let cells: Vec<String> = cells
        .iter()
        .zip(widths)
        .map(|(c, w)| format!("{c:<w$}"))
        .collect();
    format!("{}\n", cells.join("   ").trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(container: Option<&str>) -> Record {
        Record {
            pod: "web".into(),
            event: PodEvent {
                time: "2026-01-01T00:00:00Z".into(),
                type_: EventType::Warning,
                reason: "BackOff".into(),
                container: container.map(String::from),
                message: "Back-off restarting failed container app".into(),
            },
        }
    }

    #[test]
    fn rows_name_the_pod_and_container() {
        let now = pods::parse_time("2026-01-01T00:03:20Z").unwrap();
        assert_eq!(
            row(&record(Some("app")), now),
            [
                "3m20s",
                "Warning",
                "BackOff",
                "pod/web/app",
                "Back-off restarting failed container app"
            ]
        );
        assert_eq!(row(&record(None), now)[3], "pod/web");
    }

    #[test]
    fn followed_rows_align_as_a_table_does() {
        let rows = vec![row(&record(Some("app")), SystemTime::now())];
        let widths = widths(&rows);
        let mut text = line(&HEADER.map(String::from), &widths);
        text.push_str(&line(&rows[0], &widths));
        assert_eq!(text, crate::output::table(&HEADER, &rows));
    }

    #[test]
    fn json_records_carry_the_pod() {
        let value = serde_json::to_value(record(Some("app"))).unwrap();
        assert_eq!(value["pod"], "web");
        assert_eq!(value["type"], "Warning");
        assert_eq!(value["container"], "app");
        let value = serde_json::to_value(record(None)).unwrap();
        assert!(value.get("container").is_none());
    }
}
