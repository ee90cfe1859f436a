//! The parameter table: every name postern knows, its default in Postfix's
//! syntax, and one line of documentation. `postconf -d` prints this table;
//! `config/postern.toml` in the repository documents it at length.

/// Where a default comes from.
#[derive(Clone, Copy, Debug)]
pub enum Default {
    Text(&'static str),
    /// The system's host name, made fully qualified (Postfix's `myhostname`).
    Hostname,
    /// `myhostname` less its first label (Postfix's `mydomain`).
    Domain,
}

#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub default: Default,
    pub doc: &'static str,
}

macro_rules! params {
    ($($name:literal = $default:expr, $doc:literal;)*) => {
        /// Every parameter, in `postconf` order (alphabetical).
        pub const PARAMS: &[Param] = &[$(Param { name: $name, default: $default, doc: $doc }),*];
    };
}

use self::Default::{Domain, Hostname, Text};

params! {
    "admin_listen" = Text("127.0.0.1:8025"), "Address of the admin HTTP service (metrics, health, queue API).";
    "append_dot_mydomain" = Text("no"), "Append .$mydomain to domains without a dot.";
    "bounce_queue_lifetime" = Text("5d"), "How long a bounce (null-sender message) may stay queued before it is given up.";
    "bounce_size_limit" = Text("50000"), "Maximum bytes of the original message returned in a non-delivery report.";
    "default_destination_concurrency_failed_cohort_limit" = Text("1"), "Failed connection cohorts after which a destination is declared dead.";
    "default_destination_concurrency_limit" = Text("20"), "Maximum parallel deliveries to one destination.";
    "default_destination_recipient_limit" = Text("50"), "Maximum recipients per delivery request.";
    "default_process_limit" = Text("100"), "Maximum number of concurrent SMTP sessions.";
    "default_transport" = Text("smtp"), "Transport for the default address class (transport:nexthop).";
    "delay_warning_time" = Text("0h"), "Warn the sender when mail is queued this long (0h: never).";
    "header_size_limit" = Text("102400"), "Maximum bytes of a message header section; the rest is treated as body.";
    "initial_destination_concurrency" = Text("5"), "Parallel deliveries to a destination before slow start raises the limit.";
    "local_transport" = Text("local:$myhostname"), "Transport for domains in mydestination.";
    "log_format" = Text("postfix"), "Log line format: postfix (syslog-style lines) or json (one JSON object per line).";
    "mail_name" = Text("Postern"), "The mail system name, used in the SMTP banner and Received: headers.";
    "maillog_file" = Text(""), "File for log lines; empty or /dev/stdout for standard output.";
    "maximal_backoff_time" = Text("4000s"), "Longest wait between delivery attempts of a deferred message.";
    "maximal_queue_lifetime" = Text("5d"), "How long a message may be deferred before it is returned to the sender.";
    "message_size_limit" = Text("10240000"), "Maximum message size in bytes, headers and envelope included.";
    "minimal_backoff_time" = Text("300s"), "Shortest wait between delivery attempts of a deferred message.";
    "mydestination" = Text("$myhostname, localhost.$mydomain, localhost"), "Domains this system is the final destination for.";
    "mydomain" = Domain, "The internet domain of this mail system.";
    "myhostname" = Hostname, "The internet host name of this mail system.";
    "mynetworks" = Text("127.0.0.0/8, [::1]/128"), "Trusted client networks: these may relay to any destination.";
    "myorigin" = Text("$myhostname"), "The domain appended to unqualified addresses.";
    "qmgr_message_active_limit" = Text("20000"), "Maximum messages in the active queue.";
    "queue_directory" = Text("/var/spool/postern"), "Where queue files, queue state and the control socket live.";
    "queue_run_delay" = Text("300s"), "How often the deferred queue is scanned.";
    "relay_domains" = Text(""), "Domains (and their subdomains) this system relays mail to for any client.";
    "relay_transport" = Text("relay"), "Transport for relay_domains.";
    "relayhost" = Text(""), "The next hop for non-local mail; empty means direct delivery (used by delivery).";
    "shutdown_grace_period" = Text("10s"), "How long open sessions and in-flight writes may take to finish on stop.";
    "smtp_connect_timeout" = Text("30s"), "Time limit for a TCP connection to complete.";
    "smtp_connection_cache_on_demand" = Text("yes"), "Keep SMTP connections open for the next message to the same nexthop.";
    "smtp_connection_cache_time_limit" = Text("2s"), "How long a cached SMTP connection may stay idle.";
    "smtp_connection_reuse_time_limit" = Text("300s"), "How long an SMTP connection may be reused in all.";
    "smtp_data_done_timeout" = Text("600s"), "Time limit for the reply to the end of data.";
    "smtp_data_init_timeout" = Text("120s"), "Time limit for the reply to DATA.";
    "smtp_data_xfer_timeout" = Text("180s"), "Time limit for sending message content.";
    "smtp_dns_servers" = Text(""), "DNS servers (ip or ip:port) for the SMTP client; empty: the system's resolver.";
    "smtp_fallback_relay" = Text(""), "Next hops tried when the ordinary ones fail.";
    "smtp_helo_name" = Text("$myhostname"), "The name the SMTP client sends in EHLO/HELO.";
    "smtp_helo_timeout" = Text("300s"), "Time limit for the greeting and the reply to EHLO/HELO.";
    "smtp_mail_timeout" = Text("300s"), "Time limit for the reply to MAIL FROM.";
    "smtp_quit_timeout" = Text("300s"), "Time limit for the reply to QUIT.";
    "smtp_rcpt_timeout" = Text("300s"), "Time limit for the reply to RCPT TO.";
    "smtp_sasl_auth_enable" = Text("no"), "Authenticate to servers with credentials from smtp_sasl_password_maps.";
    "smtp_sasl_password_maps" = Text(""), "Lookup tables of nexthop or server name to user:password.";
    "smtp_tls_CAfile" = Text(""), "PEM file of trusted CA certificates for smtp_tls_security_level = verify; empty: the system's bundle.";
    "smtp_tls_security_level" = Text("may"), "SMTP client TLS: none, may (opportunistic), encrypt, verify.";
    "smtpd_banner" = Text("$myhostname ESMTP $mail_name"), "Text after 220 in the SMTP greeting.";
    "smtpd_client_connection_count_limit" = Text("50"), "Maximum concurrent sessions from one client IP outside mynetworks.";
    "smtpd_hard_error_limit" = Text("20"), "Errors after which the SMTP session is closed.";
    "smtpd_listen" = Text("127.0.0.1:25"), "Addresses the SMTP server listens on, host:port, comma or space separated.";
    "smtpd_min_data_rate" = Text("500"), "Minimum bytes per second of message content, after the first smtpd_timeout.";
    "smtpd_pregreet_wait" = Text("0s"), "How long to watch for a client that talks before the greeting.";
    "smtpd_recipient_limit" = Text("1000"), "Maximum recipients per message.";
    "smtpd_timeout" = Text("300s"), "Time limit for reading a command or data, and for sending a reply.";
    "supervisor_restart_limit" = Text("5"), "Restarts of a role within supervisor_restart_period before escalating.";
    "supervisor_restart_period" = Text("60s"), "The window in which supervisor_restart_limit counts restarts.";
    "syslog_name" = Text("postern"), "The program name prefix in log lines (syslog_name/role[pid]).";
    "transport_maps" = Text(""), "Lookup tables of recipient or domain to transport:nexthop.";
}

/// The parameter named `name`.
pub fn find(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.name == name)
}

/// The known name closest to `name`, when one is close enough to be a typo.
pub fn closest(name: &str) -> Option<&'static str> {
    PARAMS
        .iter()
        .map(|p| (edit_distance(name, p.name), p.name))
        .filter(|(d, known)| *d <= (known.len() / 3).max(2))
        .min()
        .map(|(_, known)| known)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cost = if ca == cb { prev } else { prev + 1 };
            prev = row[j + 1];
            row[j + 1] = cost.min(row[j] + 1).min(prev + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for pair in PARAMS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
    }

    #[test]
    fn suggests_the_closest_name() {
        assert_eq!(closest("smtpd_timout"), Some("smtpd_timeout"));
        assert_eq!(closest("mydestinations"), Some("mydestination"));
        assert_eq!(closest("message_size"), Some("message_size_limit"));
        assert_eq!(closest("completely_unrelated_name"), None);
    }
}
