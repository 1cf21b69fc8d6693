//! Printing data: aligned tables for people, JSON or YAML for scripts.

use std::time::SystemTime;

use serde::Serialize;

use crate::Format;

/// Prints `value` as JSON or YAML on stdout; `Table` is the caller's job.
pub fn print_data<T: Serialize>(format: Format, value: &T) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Yaml => print!("{}", serde_saphyr::to_string(value)?),
        Format::Table => {}
    }
    Ok(())
}

/// Renders rows as columns separated by three spaces, the header first.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// How long ago `then` was, as kubectl prints ages (see [`human_duration`]).
pub fn age(then: SystemTime, now: SystemTime) -> String {
    let seconds = match now.duration_since(then) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // Truncated toward zero, as Go's int(d.Seconds()).
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    human_duration(seconds)
}

/// apimachinery's `duration.HumanDuration`, which kubectl prints ages with: about two
/// significant figures (`45s`, `119s`, `3m20s`, `15m`, `4h12m`, `20h`, `3d4h`, `60d`,
/// `2y100d`, `9y`); a time up to a second in the future (clocks disagree) is `0s`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return match days % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{years}y")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let t = table(&["A", "LONGER"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A     LONGER\nxyz   1\n");
    }

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (4 * 3600 + 12 * 60, "4h12m"),
            (20 * 3600, "20h"),
            (47 * 3600 + 59 * 60, "47h"),
            (48 * 3600, "2d"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (60 * 86400, "60d"),
            (2 * 365 * 86400 + 100 * 86400, "2y100d"),
            (3 * 365 * 86400, "3y"),
            (9 * 365 * 86400, "9y"),
        ];
        for (seconds, text) in cases {
            assert_eq!(human_duration(seconds), text, "{seconds} s");
        }
        let now = SystemTime::now();
        let then = now - std::time::Duration::from_secs(125);
        assert_eq!(age(then, now), "2m5s");
        assert_eq!(age(now + std::time::Duration::from_millis(500), now), "0s");
    }
}
