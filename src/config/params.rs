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
    "alias_database" = Text("hash:/etc/aliases"), "Alias tables newaliases (postalias) builds.";
    "alias_maps" = Text("hash:/etc/aliases"), "Alias tables the local delivery agent reads (/etc/aliases syntax).";
    "allow_mail_to_commands" = Text("alias, forward"), "Where |command delivery is allowed: alias, forward, include.";
    "allow_mail_to_files" = Text("alias, forward"), "Where /file delivery is allowed: alias, forward, include.";
    "append_dot_mydomain" = Text("no"), "Append .$mydomain to domains without a dot.";
    "body_checks" = Text(""), "Pattern tables applied to each body line (REJECT, WARN, HOLD, DISCARD, ...).";
    "body_checks_size_limit" = Text("51200"), "Bytes of each message body inspected by body_checks.";
    "bounce_queue_lifetime" = Text("5d"), "How long a bounce (null-sender message) may stay queued before it is given up.";
    "bounce_size_limit" = Text("50000"), "Maximum bytes of the original message returned in a non-delivery report.";
    "canonical_maps" = Text(""), "Address rewriting for sender and recipient, envelope and headers.";
    "command_time_limit" = Text("1000s"), "Time limit for a command run by local delivery (aliases, .forward, mailbox_command).";
    "default_destination_concurrency_failed_cohort_limit" = Text("1"), "Failed connection cohorts after which a destination is declared dead.";
    "default_destination_concurrency_limit" = Text("20"), "Maximum parallel deliveries to one destination.";
    "default_destination_recipient_limit" = Text("50"), "Maximum recipients per delivery request.";
    "default_privs" = Text("nobody"), "The user that runs commands and file deliveries from alias tables not owned by a user.";
    "default_process_limit" = Text("100"), "Maximum number of concurrent SMTP sessions.";
    "default_transport" = Text("smtp"), "Transport for the default address class (transport:nexthop).";
    "delay_warning_time" = Text("0h"), "Warn the sender when mail is queued this long (0h: never).";
    "forward_path" = Text("$home/.forward${recipient_delimiter}${extension}, $home/.forward"), "Where local delivery looks for a user's .forward file.";
    "header_checks" = Text(""), "Pattern tables applied to each header (REJECT, WARN, HOLD, DISCARD, REPLACE, ...).";
    "header_size_limit" = Text("102400"), "Maximum bytes of a message header section; the rest is treated as body.";
    "home_mailbox" = Text(""), "Mailbox relative to the home directory: Mailbox (mbox) or Maildir/ (maildir); empty: mail_spool_directory.";
    "inet_interfaces" = Text("all"), "Addresses smtpd listens on when smtpd_listen is not set and this is (or master.cf gives the ports): all, loopback-only, or addresses and host names.";
    "inet_protocols" = Text("all"), "Address families for inet_interfaces: all, ipv4, ipv6.";
    "initial_destination_concurrency" = Text("5"), "Parallel deliveries to a destination before slow start raises the limit.";
    "local_destination_concurrency_limit" = Text("2"), "Parallel local deliveries to one recipient.";
    "local_destination_recipient_limit" = Text("1"), "Recipients per local delivery request.";
    "local_recipient_maps" = Text("unix:passwd.byname $alias_maps"), "Tables of local users; RCPT TO for others is refused (empty: accept all).";
    "local_transport" = Text("local:$myhostname"), "Transport for domains in mydestination.";
    "log_format" = Text("postfix"), "Log line format: postfix (syslog-style lines) or json (one JSON object per line).";
    "luser_relay" = Text(""), "Where mail for unknown local users goes ($user, $local, $domain expand); empty: bounce.";
    "mail_name" = Text("Postern"), "The mail system name, used in the SMTP banner and Received: headers.";
    "mail_spool_directory" = Text("/var/mail"), "Directory of mbox mailboxes; a trailing / means maildir.";
    "mailbox_command" = Text(""), "Command that delivers to the mailbox instead of the local agent (run as the user).";
    "mailbox_delivery_lock" = Text("fcntl, dotlock"), "Locks taken on an mbox file: fcntl, flock, dotlock.";
    "mailbox_size_limit" = Text("51200000"), "Largest mbox file or maildir message local delivery writes (0: no limit).";
    "maillog_file" = Text(""), "File for log lines; empty or /dev/stdout for standard output.";
    "masquerade_classes" = Text("envelope_sender, header_sender, header_recipient"), "Which addresses masquerading rewrites: envelope_sender, envelope_recipient, header_sender, header_recipient.";
    "masquerade_domains" = Text(""), "Domains whose subdomains are hidden in sender and header addresses (!domain: exempt).";
    "masquerade_exceptions" = Text(""), "Local parts that are never masqueraded (e.g. root).";
    "maximal_backoff_time" = Text("4000s"), "Longest wait between delivery attempts of a deferred message.";
    "maximal_queue_lifetime" = Text("5d"), "How long a message may be deferred before it is returned to the sender.";
    "message_size_limit" = Text("10240000"), "Maximum message size in bytes, headers and envelope included.";
    "minimal_backoff_time" = Text("300s"), "Shortest wait between delivery attempts of a deferred message.";
    "mydestination" = Text("$myhostname, localhost.$mydomain, localhost"), "Domains this system is the final destination for.";
    "mydomain" = Domain, "The internet domain of this mail system.";
    "myhostname" = Hostname, "The internet host name of this mail system.";
    "mynetworks" = Text("127.0.0.0/8, [::1]/128"), "Trusted client networks: these may relay to any destination.";
    "myorigin" = Text("$myhostname"), "The domain appended to unqualified addresses.";
    "propagate_unmatched_extensions" = Text("canonical, virtual"), "Which rewrites keep an address extension a table key did not match: canonical, virtual, alias, forward, include.";
    "qmgr_message_active_limit" = Text("20000"), "Maximum messages in the active queue.";
    "queue_directory" = Text("/var/spool/postern"), "Where queue files, queue state and the control socket live.";
    "queue_run_delay" = Text("300s"), "How often the deferred queue is scanned.";
    "recipient_canonical_maps" = Text(""), "Address rewriting for recipients only.";
    "recipient_delimiter" = Text(""), "Characters that separate a user from an address extension (user+ext).";
    "relay_domains" = Text(""), "Domains (and their subdomains) this system relays mail to for any client.";
    "relay_transport" = Text("relay"), "Transport for relay_domains.";
    "relayhost" = Text(""), "The next hop for non-local mail; empty means direct delivery (used by delivery).";
    "relocated_maps" = Text(""), "Tables of moved users: mail is refused with their new address.";
    "sender_canonical_maps" = Text(""), "Address rewriting for senders only.";
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
    "smtp_tls_CApath" = Text(""), "Directory of PEM files of trusted CA certificates, added to smtp_tls_CAfile's.";
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
    "syslog_name" = Text("postfix"), "The program name prefix in log lines (syslog_name/role[pid]); postfix, what Postfix's log tools look for.";
    "transport_maps" = Text(""), "Lookup tables of recipient or domain to transport:nexthop.";
    "virtual_alias_domains" = Text("$virtual_alias_maps"), "Domains whose every address is an alias in virtual_alias_maps (tables or names).";
    "virtual_alias_expansion_limit" = Text("1000"), "Addresses one recipient may expand to through virtual_alias_maps.";
    "virtual_alias_maps" = Text(""), "Aliases for any domain, applied by cleanup (recursively).";
    "virtual_alias_recursion_limit" = Text("1000"), "Nesting depth of virtual alias expansion.";
    "virtual_gid_maps" = Text(""), "Group ID per virtual mailbox recipient (static:N for all).";
    "virtual_mailbox_base" = Text(""), "Directory prepended to every virtual mailbox path.";
    "virtual_mailbox_domains" = Text("$virtual_mailbox_maps"), "Domains delivered by the virtual agent (tables or names).";
    "virtual_mailbox_limit" = Text("51200000"), "Largest virtual mbox file or maildir message (0: no limit).";
    "virtual_mailbox_maps" = Text(""), "Mailbox path per recipient, under virtual_mailbox_base; a trailing / means maildir.";
    "virtual_minimum_uid" = Text("100"), "Smallest user ID the virtual agent writes as.";
    "virtual_transport" = Text("virtual"), "Transport for virtual_mailbox_domains.";
    "virtual_uid_maps" = Text(""), "User ID per virtual mailbox recipient (static:N for all).";
}

/// The parameter named `name`.
pub fn find(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.name == name)
}

/// The known name closest to `name`, when one is close enough to be a typo.
pub fn closest(name: &str) -> Option<&'static str> {
    PARAMS
        .iter()
        .map(|p| p.name)
        .chain(super::postfix::params().iter().map(|(n, _)| *n))
        .map(|known| (edit_distance(name, known), known))
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
