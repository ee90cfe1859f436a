//! The Prometheus text export of the admin service: the process-wide
//! counters of [`crate::metrics`], and queue gauges and age bands from the
//! store's index, kept up to date by every store change, so a scrape never
//! walks the spool.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::metrics::{EVENTS, SEVERITIES};
use crate::store::QueueName;
use crate::store::index::{QueueIndex, QueueStats};

/// The qshape bands, in minutes.
pub const BAND_LIMITS: [u64; 9] = [5, 10, 20, 40, 80, 160, 320, 640, 1280];

/// The band labels: `0-5`, `5-10`, ..., `1280+`.
pub fn band_labels() -> Vec<String> {
    let mut labels = Vec::new();
    let mut low = 0;
    for limit in BAND_LIMITS {
        labels.push(format!("{low}-{limit}"));
        low = limit;
    }
    labels.push(format!("{low}+"));
    labels
}

/// What a scrape shows besides the process-wide counters.
pub struct Snapshot<'a> {
    pub index: &'a QueueIndex,
    /// What waits in the maildrop (not in the store's index).
    pub maildrop: &'a QueueStats,
    pub restarts: &'a BTreeMap<String, u64>,
    pub roles: &'a [&'a str],
    pub now: i64,
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Every queue with its statistics, the maildrop first.
fn queues<'a>(s: &'a Snapshot<'a>) -> impl Iterator<Item = (QueueName, &'a QueueStats)> {
    std::iter::once((QueueName::Maildrop, s.maildrop)).chain(s.index.queues())
}

/// The Prometheus text exposition.
pub fn render(s: &Snapshot<'_>) -> String {
    let mut out = String::with_capacity(8192);
    family(
        &mut out,
        "postern_queue_messages",
        "gauge",
        "Messages in each queue.",
    );
    for (queue, stats) in queues(s) {
        let _ = writeln!(
            out,
            "postern_queue_messages{{queue=\"{}\"}} {}",
            queue.as_str(),
            stats.messages
        );
    }
    family(
        &mut out,
        "postern_queue_bytes",
        "gauge",
        "Bytes of message content in each queue.",
    );
    for (queue, stats) in queues(s) {
        let _ = writeln!(
            out,
            "postern_queue_bytes{{queue=\"{}\"}} {}",
            queue.as_str(),
            stats.bytes
        );
    }
    family(
        &mut out,
        "postern_queue_age_messages",
        "gauge",
        "Messages in each queue by age band in minutes (qshape's bands).",
    );
    let labels = band_labels();
    for (queue, stats) in queues(s) {
        for (label, n) in labels.iter().zip(stats.bands(&BAND_LIMITS, s.now)) {
            let _ = writeln!(
                out,
                "postern_queue_age_messages{{queue=\"{}\",band=\"{label}\"}} {n}",
                queue.as_str()
            );
        }
    }
    family(
        &mut out,
        "postern_messages_total",
        "counter",
        "Messages (recipients for deliveries) by event.",
    );
    for (i, (_, name)) in EVENTS.iter().enumerate() {
        let _ = writeln!(
            out,
            "postern_messages_total{{event=\"{name}\"}} {}",
            crate::metrics::messages(EVENTS[i].0)
        );
    }
    family(
        &mut out,
        "postern_log_events_total",
        "counter",
        "Log lines by severity.",
    );
    for (i, name) in SEVERITIES.iter().enumerate() {
        let _ = writeln!(
            out,
            "postern_log_events_total{{severity=\"{name}\"}} {}",
            crate::metrics::log_events()[i]
        );
    }
    family(
        &mut out,
        "postern_role_restarts_total",
        "counter",
        "Restarts of each role by the supervisor.",
    );
    for role in s.roles {
        let _ = writeln!(
            out,
            "postern_role_restarts_total{{role=\"{role}\"}} {}",
            s.restarts.get(*role).copied().unwrap_or(0)
        );
    }
    family(
        &mut out,
        "postern_smtpd_sessions",
        "gauge",
        "Open SMTP sessions.",
    );
    let _ = writeln!(
        out,
        "postern_smtpd_sessions {}",
        crate::metrics::smtpd_sessions()
    );
    family(
        &mut out,
        "postern_delivery_agents_busy",
        "gauge",
        "Deliveries in progress by transport.",
    );
    for (transport, n) in crate::metrics::agents_busy() {
        let _ = writeln!(
            out,
            "postern_delivery_agents_busy{{transport=\"{transport}\"}} {n}"
        );
    }
    if let Some((cpu, rss)) = process_usage() {
        family(
            &mut out,
            "process_cpu_seconds_total",
            "counter",
            "CPU time used by the process.",
        );
        let _ = writeln!(out, "process_cpu_seconds_total {cpu:.2}");
        family(
            &mut out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory of the process.",
        );
        let _ = writeln!(out, "process_resident_memory_bytes {rss}");
    }
    out
}

/// CPU seconds and resident bytes, from /proc.
fn process_usage() -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command name: state is field 3; utime and stime are 14 and 15.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ticks as f64 / hz.max(1) as f64, rss_kb * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_render() {
        assert_eq!(
            band_labels().join(" "),
            "0-5 5-10 10-20 20-40 40-80 80-160 160-320 320-640 640-1280 1280+"
        );
        let index = QueueIndex::default();
        let restarts = BTreeMap::new();
        let text = render(&Snapshot {
            index: &index,
            maildrop: &QueueStats::default(),
            restarts: &restarts,
            roles: &["qmgr"],
            now: 0,
        });
        assert!(text.contains("postern_queue_messages{queue=\"deferred\"} 0\n"));
        assert!(text.contains("postern_queue_age_messages{queue=\"hold\",band=\"1280+\"} 0\n"));
        assert!(text.contains("postern_role_restarts_total{role=\"qmgr\"} 0\n"));
        assert!(text.contains("# TYPE postern_messages_total counter\n"));
        assert!(text.contains("process_resident_memory_bytes "));
    }

    #[test]
    fn the_maildrop_has_bytes_and_age_bands() {
        let now = 10_000_000;
        let mut maildrop = QueueStats::default();
        maildrop.count(300, now - 60);
        maildrop.count(200, now - 100 * 60);
        let text = render(&Snapshot {
            index: &QueueIndex::default(),
            maildrop: &maildrop,
            restarts: &BTreeMap::new(),
            roles: &[],
            now,
        });
        for line in [
            "postern_queue_messages{queue=\"maildrop\"} 2\n",
            "postern_queue_bytes{queue=\"maildrop\"} 500\n",
            "postern_queue_age_messages{queue=\"maildrop\",band=\"0-5\"} 1\n",
            "postern_queue_age_messages{queue=\"maildrop\",band=\"80-160\"} 1\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
