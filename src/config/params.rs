//! Every parameter postern implements, declared once: its name, type,
//! default (in Postfix's syntax), documentation, how its text is read, and
//! which roles read it. From this one table come the typed [`Config`]
//! struct and its loader, `postconf -d`, and the commented
//! `config/postern.toml` ([`example_toml`]; a test keeps the file and the
//! table in step). Postfix's other parameters are in [`super::postfix`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::values::Cidr;
use super::{ConfigError, Settings, TransportParams, parse, services};

/// Where a default comes from.
#[derive(Clone, Copy, Debug)]
pub enum Default {
    Text(&'static str),
    /// The system's host name, made fully qualified (Postfix's `myhostname`).
    Hostname,
    /// `myhostname` less its first label (Postfix's `mydomain`).
    Domain,
}

/// One declared parameter.
#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub default: Default,
    /// The documentation: a first line, then more.
    pub doc: &'static str,
    /// The section of `config/postern.toml` it is documented in.
    pub section: &'static str,
    /// The roles that read it.
    pub roles: &'static str,
}

impl Param {
    /// The first line of the documentation.
    pub fn summary(&self) -> &'static str {
        self.doc.lines().next().unwrap_or("").trim()
    }
}

macro_rules! declare {
    ($(
        $section:literal $prose:literal {
            $(
                $(#[doc = $doc:literal])*
                $field:ident $([$pname:literal])? : $ty:ty = $default:expr, $parse:path, $roles:literal;
            )*
        }
    )*) => {
        /// The typed configuration roles read: a field per declared
        /// parameter (named as the parameter, but for the two of Postfix's
        /// names with capitals), and what is derived from several.
        #[derive(Clone, Debug)]
        pub struct Config {
            $($(
                $(#[doc = $doc])*
                pub $field: $ty,
            )*)*
            /// Transports declared as `[services.NAME]` (or in master.cf).
            pub services: BTreeMap<String, services::Service>,
            /// Per-transport limits set under Postfix's names
            /// (`relay_destination_concurrency_limit`, `maildrop_time_limit`, ...).
            pub transport_params: BTreeMap<String, TransportParams>,
            /// `smtpd_restriction_classes`: each class's restriction list.
            pub restriction_classes: BTreeMap<String, Vec<String>>,
            /// What postern was given but does not implement and may ignore:
            /// said as warnings by `check`, `start` and `reload`.
            pub notices: Vec<String>,
        }

        /// Every declared parameter, in the order of `config/postern.toml`.
        pub const PARAMS: &[Param] = &[$($(
            Param {
                name: declare!(@name $field $($pname)?),
                default: $default,
                doc: concat!($($doc, "\n"),*),
                section: $section,
                roles: $roles,
            },
        )*)*];

        /// The sections of `config/postern.toml`, with their introductions.
        pub const SECTIONS: &[(&str, &str)] = &[$(($section, $prose)),*];

        /// Reads every declared parameter from the settings.
        pub(super) fn load(s: &Settings) -> Result<Config, ConfigError> {
            Ok(Config {
                $($(
                    $field: $parse(s, declare!(@name $field $($pname)?))?,
                )*)*
                services: BTreeMap::new(),
                transport_params: BTreeMap::new(),
                restriction_classes: BTreeMap::new(),
                notices: Vec::new(),
            })
        }
    };
    (@name $field:ident) => { stringify!($field) };
    (@name $field:ident $pname:literal) => { $pname };
}

use self::Default::{Domain, Hostname, Text};

declare! {
    "Identity" "" {
        /// The internet host name of this mail system.
        /// Default: the system's host name, qualified with .localdomain when it has no dot.
        myhostname: String = Hostname, parse::text, "smtpd cleanup bounce smtp";
        /// The internet domain of this mail system.
        /// Default: $myhostname less its first label.
        mydomain: String = Domain, parse::text, "cleanup";
        /// The domain appended to unqualified addresses (user -> user@$myorigin).
        /// A path names a file whose first word is the domain (Debian's /etc/mailname).
        myorigin: String = Text("$myhostname"), parse::origin, "cleanup rewrite local bounce";
        /// The mail system name, used in the SMTP banner and Received: headers.
        mail_name: String = Text("Postern"), parse::text, "smtpd cleanup bounce";
    }
    "Which mail is accepted" "" {
        /// Domains this system is the final destination for.
        /// Mail for these domains is accepted from any client and delivered by the
        /// local transport.
        mydestination: Vec<String> = Text("$myhostname, localhost.$mydomain, localhost"), parse::lower_list, "smtpd rewrite";
        /// Domains (and their subdomains) this system relays mail to for any client.
        /// As Postfix does with parent_domain_matches_subdomains = relay_domains.
        relay_domains: Vec<String> = Text(""), parse::domains, "smtpd rewrite";
        /// Trusted client networks: these may relay to any destination.
        /// Everyone else may only send to mydestination and relay_domains (smtpd_relay_restrictions).
        mynetworks: Vec<Cidr> = Text("127.0.0.0/8, [::1]/128"), parse::networks, "smtpd";
        /// The next hop for non-local mail; empty means direct delivery (used by delivery).
        /// e.g. "[smtp.example.com]:587"; empty means direct delivery by MX lookup.
        relayhost: String = Text(""), parse::text, "rewrite";
    }
    "Routing (trivial-rewrite)" "" {
        /// Append .$mydomain to domains without a dot.
        /// user@host -> user@host.$mydomain.
        append_dot_mydomain: bool = Text("no"), parse::yes_no, "rewrite";
        /// Transport for domains in mydestination.
        /// Transports are transport:nexthop. Built in: smtp and relay (the SMTP
        /// client), lmtp, local, virtual, discard, error; more as [services.NAME].
        local_transport: String = Text("local:$myhostname"), parse::text, "rewrite";
        /// Transport for relay_domains.
        relay_transport: String = Text("relay"), parse::text, "rewrite";
        /// Transport for the default address class (transport:nexthop).
        default_transport: String = Text("smtp"), parse::text, "rewrite";
        /// Lookup tables of recipient or domain to transport:nexthop.
        /// In transport(5) syntax: `example.com smtp:[10.0.0.1]:2526`, `.example.com
        /// relay:`, `user@example.com discard:`, `example.org error:5.1.1 no such
        /// domain`, `* smtp:[smarthost]`.
        transport_maps: Vec<String> = Text(""), parse::list, "rewrite";
    }
    "Lookup tables" "Tables are named type:name, as in Postfix: hash:/etc/postern/virtual (a\n\"key value\" file compiled by `postern postmap FILE`; aliases by\n`postern postalias` or `newaliases`), texthash:FILE (the same, read\ndirectly), regexp:FILE and pcre:FILE (/pattern/flags result), cidr:FILE,\ninline:{ key=value, ... }, static:value, unix:passwd.byname.\n`postern postmap -q KEY type:name` asks any table." {
        /// Characters that separate a user from an address extension (user+ext).
        recipient_delimiter: String = Text(""), parse::text, "cleanup rewrite local";
    }
    "Address rewriting (cleanup)" "" {
        /// Address rewriting for sender and recipient, envelope and headers.
        canonical_maps: Vec<String> = Text(""), parse::list, "cleanup";
        /// Address rewriting for senders only.
        sender_canonical_maps: Vec<String> = Text(""), parse::list, "cleanup";
        /// Address rewriting for recipients only.
        recipient_canonical_maps: Vec<String> = Text(""), parse::list, "cleanup";
        /// Domains whose subdomains are hidden in sender and header addresses (!domain: exempt).
        /// With "example.com", user@host.example.com becomes user@example.com;
        /// "!sub.example.com" before it exempts that subdomain.
        masquerade_domains: Vec<String> = Text(""), parse::lower_list, "cleanup";
        /// Local parts that are never masqueraded (e.g. root).
        masquerade_exceptions: Vec<String> = Text(""), parse::lower_list, "cleanup";
        /// Which addresses masquerading rewrites: envelope_sender, envelope_recipient, header_sender, header_recipient.
        masquerade_classes: Vec<String> = Text("envelope_sender, header_sender, header_recipient"), parse::lower_list, "cleanup";
        /// Which rewrites keep an address extension a table key did not match: canonical, virtual, alias, forward, include.
        propagate_unmatched_extensions: Vec<String> = Text("canonical, virtual"), parse::lower_list, "cleanup local";
        /// Aliases for any domain, applied by cleanup (recursively).
        virtual_alias_maps: Vec<String> = Text(""), parse::list, "cleanup smtpd";
        /// Domains whose every address is an alias in virtual_alias_maps (tables or names).
        virtual_alias_domains: Vec<String> = Text("$virtual_alias_maps"), parse::list, "rewrite smtpd";
        /// Addresses one recipient may expand to through virtual_alias_maps.
        virtual_alias_expansion_limit: usize = Text("1000"), parse::number, "cleanup";
        /// Nesting depth of virtual alias expansion.
        virtual_alias_recursion_limit: usize = Text("1000"), parse::number, "cleanup";
        /// Tables of moved users: mail is refused with their new address.
        relocated_maps: Vec<String> = Text(""), parse::list, "rewrite smtpd";
        /// Pattern tables applied to each header (REJECT, WARN, HOLD, DISCARD, REPLACE, ...).
        /// Actions: REJECT, WARN, HOLD, DISCARD, IGNORE, REPLACE, PREPEND, REDIRECT,
        /// FILTER, BCC, DUNNO.
        header_checks: Vec<String> = Text(""), parse::list, "cleanup";
        /// Pattern tables applied to each body line (REJECT, WARN, HOLD, DISCARD, ...).
        body_checks: Vec<String> = Text(""), parse::list, "cleanup";
        /// Bytes of each message body inspected by body_checks.
        body_checks_size_limit: usize = Text("51200"), parse::number, "cleanup";
    }
    "Local delivery (mydestination)" "" {
        /// Alias tables the local delivery agent reads (/etc/aliases syntax).
        alias_maps: Vec<String> = Text("hash:/etc/aliases"), parse::list, "local smtpd";
        /// Alias tables newaliases (postalias) builds.
        alias_database: Vec<String> = Text("hash:/etc/aliases"), parse::list, "newaliases";
        /// Tables of local users; RCPT TO for others is refused (empty: accept all).
        /// RCPT TO for anyone else is refused with 550 5.1.1.
        local_recipient_maps: Vec<String> = Text("unix:passwd.byname $alias_maps"), parse::list, "smtpd";
        /// Where local delivery looks for a user's .forward file.
        /// $home, $user, ${extension}, ... are the recipient's.
        forward_path: Vec<String> = Text("$home/.forward${recipient_delimiter}${extension}, $home/.forward"), parse::list, "local";
        /// Mailbox relative to the home directory: Mailbox (mbox) or Maildir/ (maildir); empty: mail_spool_directory.
        /// home_mailbox wins over mail_spool_directory; mailbox_command replaces both.
        home_mailbox: String = Text(""), parse::text, "local";
        /// Directory of mbox mailboxes; a trailing / means maildir.
        mail_spool_directory: String = Text("/var/mail"), parse::text, "local";
        /// Command that delivers to the mailbox instead of the local agent (run as the user).
        mailbox_command: String = Text(""), parse::text, "local";
        /// Locks taken on an mbox file: fcntl, flock, dotlock.
        mailbox_delivery_lock: Vec<String> = Text("fcntl, dotlock"), parse::lower_list, "local";
        /// Largest mbox file or maildir message local delivery writes (0: no limit).
        mailbox_size_limit: u64 = Text("51200000"), parse::number, "local";
        /// Where mail for unknown local users goes ($user, $local, $domain expand); empty: bounce.
        /// e.g. $user@other.host.
        luser_relay: String = Text(""), parse::text, "local";
        /// Where |command delivery is allowed: alias, forward, include.
        allow_mail_to_commands: Vec<String> = Text("alias, forward"), parse::lower_list, "local";
        /// Where /file delivery is allowed: alias, forward, include.
        allow_mail_to_files: Vec<String> = Text("alias, forward"), parse::lower_list, "local";
        /// Time limit for a command run by local delivery (aliases, .forward, mailbox_command).
        command_time_limit: Duration = Text("1000s"), parse::duration, "local pipe";
        /// The user that runs commands and file deliveries from alias tables not owned by a user.
        /// Used when the daemon runs as root.
        default_privs: String = Text("nobody"), parse::text, "local";
        /// Parallel local deliveries to one recipient.
        local_destination_concurrency_limit: usize = Text("2"), parse::number, "qmgr";
        /// Recipients per local delivery request.
        local_destination_recipient_limit: usize = Text("1"), parse::number, "qmgr";
    }
    "Virtual mailboxes" "" {
        /// Domains delivered by the virtual agent (tables or names).
        virtual_mailbox_domains: Vec<String> = Text("$virtual_mailbox_maps"), parse::list, "rewrite smtpd";
        /// Mailbox path per recipient, under virtual_mailbox_base; a trailing / means maildir.
        virtual_mailbox_maps: Vec<String> = Text(""), parse::list, "virtual smtpd";
        /// Directory prepended to every virtual mailbox path.
        virtual_mailbox_base: String = Text(""), parse::text, "virtual";
        /// User ID per virtual mailbox recipient (static:N for all).
        virtual_uid_maps: Vec<String> = Text(""), parse::list, "virtual";
        /// Group ID per virtual mailbox recipient (static:N for all).
        virtual_gid_maps: Vec<String> = Text(""), parse::list, "virtual";
        /// Smallest user ID the virtual agent writes as.
        virtual_minimum_uid: u32 = Text("100"), parse::number, "virtual";
        /// Largest virtual mbox file or maildir message (0: no limit).
        virtual_mailbox_limit: u64 = Text("51200000"), parse::number, "virtual";
        /// Transport for virtual_mailbox_domains.
        virtual_transport: String = Text("virtual"), parse::text, "rewrite";
    }
    "Queue manager" "" {
        /// Maximum messages in the active queue.
        qmgr_message_active_limit: usize = Text("20000"), parse::number, "qmgr";
        /// Maximum parallel deliveries to one destination.
        /// Per destination (transport, nexthop); slow start begins at
        /// initial_destination_concurrency and grows by one per success.
        default_destination_concurrency_limit: usize = Text("20"), parse::number, "qmgr";
        /// Parallel deliveries to a destination before slow start raises the limit.
        initial_destination_concurrency: usize = Text("5"), parse::number, "qmgr";
        /// Failed connection cohorts after which a destination is declared dead.
        /// Its waiting mail is deferred.
        default_destination_concurrency_failed_cohort_limit: u32 = Text("1"), parse::number, "qmgr";
        /// Maximum recipients per delivery request.
        /// One SMTP transaction carries at most this many.
        default_destination_recipient_limit: usize = Text("50"), parse::number, "qmgr";
        /// Shortest wait between delivery attempts of a deferred message.
        /// The wait doubles from minimal_backoff_time up to maximal_backoff_time.
        minimal_backoff_time: Duration = Text("300s"), parse::duration, "qmgr";
        /// Longest wait between delivery attempts of a deferred message.
        maximal_backoff_time: Duration = Text("4000s"), parse::duration, "qmgr";
        /// How often the deferred queue is scanned.
        queue_run_delay: Duration = Text("300s"), parse::duration, "qmgr";
        /// How long a message may be deferred before it is returned to the sender.
        maximal_queue_lifetime: Duration = Text("5d"), parse::duration, "qmgr";
        /// How long a bounce (null-sender message) may stay queued before it is given up.
        /// Bounces have the null sender.
        bounce_queue_lifetime: Duration = Text("5d"), parse::duration, "qmgr";
        /// Warn the sender when mail is queued this long (0h: never).
        /// The warning is a DSN with Action: delayed.
        delay_warning_time: Duration = Text("0h"), parse::duration, "qmgr";
        /// Maximum bytes of the original message returned in a non-delivery report.
        bounce_size_limit: usize = Text("50000"), parse::number, "bounce";
    }
    "DNS" "" {
        /// DNS servers (ip or ip:port) for every role: client names, MX lookups; empty: the system's resolver.
        /// Empty uses /etc/resolv.conf (and /etc/hosts), as Postfix does through the C
        /// library. smtp_dns_servers overrides it for the SMTP client.
        dns_servers: Vec<SocketAddr> = Text(""), parse::dns_servers, "smtpd smtp lmtp";
    }
    "SMTP client" "" {
        /// The name the SMTP client sends in EHLO/HELO.
        smtp_helo_name: String = Text("$myhostname"), parse::text, "smtp";
        /// DNS servers (ip or ip:port) for the SMTP client alone; by default dns_servers.
        smtp_dns_servers: Vec<SocketAddr> = Text("$dns_servers"), parse::dns_servers, "smtp lmtp";
        /// Next hops tried when the ordinary ones fail.
        /// e.g. "[backup.example]:25".
        smtp_fallback_relay: Vec<String> = Text(""), parse::list, "smtp";
        /// SMTP client TLS: none, may (opportunistic), encrypt, verify.
        /// none; may (STARTTLS when offered, certificate not checked); encrypt
        /// (STARTTLS required); verify (STARTTLS required, the certificate must chain
        /// to a trusted CA and name the server). Postfix's default is none;
        /// opportunistic encryption costs nothing and is on here.
        smtp_tls_security_level: String = Text("may"), parse::text, "smtp";
        /// PEM file of trusted CA certificates for smtp_tls_security_level = verify; empty: the system's bundle.
        smtp_tls_ca_file["smtp_tls_CAfile"]: String = Text(""), parse::text, "smtp";
        /// Directory of PEM files of trusted CA certificates, added to smtp_tls_CAfile's.
        /// Debian's main.cf: /etc/ssl/certs.
        smtp_tls_ca_path["smtp_tls_CApath"]: String = Text(""), parse::text, "smtp";
        /// Authenticate to servers with credentials from smtp_sasl_password_maps.
        smtp_sasl_auth_enable: bool = Text("no"), parse::yes_no, "smtp";
        /// Lookup tables of nexthop or server name to user:password.
        /// Keys: the nexthop as written in relayhost or transport_maps (e.g.
        /// "[smtp.example.com]:587") or a server name; values user:password. In a
        /// container: POSTERN_SMTP_SASL_PASSWORD_MAPS='inline:{ [smtp.example.com]:587 = user:secret }'.
        smtp_sasl_password_maps: Vec<String> = Text(""), parse::list, "smtp";
        /// Keep SMTP connections open for the next message to the same nexthop.
        /// RSET checks a cached connection before reuse; the log says conn_use=N.
        smtp_connection_cache_on_demand: bool = Text("yes"), parse::yes_no, "smtp";
        /// How long a cached SMTP connection may stay idle.
        smtp_connection_cache_time_limit: Duration = Text("2s"), parse::duration, "smtp";
        /// How long an SMTP connection may be reused in all.
        smtp_connection_reuse_time_limit: Duration = Text("300s"), parse::duration, "smtp";
        /// Time limit for a TCP connection to complete.
        smtp_connect_timeout: Duration = Text("30s"), parse::duration, "smtp lmtp";
        /// Time limit for the greeting and the reply to EHLO/HELO.
        smtp_helo_timeout: Duration = Text("300s"), parse::duration, "smtp lmtp";
        /// Time limit for the reply to MAIL FROM.
        smtp_mail_timeout: Duration = Text("300s"), parse::duration, "smtp lmtp";
        /// Time limit for the reply to RCPT TO.
        smtp_rcpt_timeout: Duration = Text("300s"), parse::duration, "smtp lmtp";
        /// Time limit for the reply to DATA.
        smtp_data_init_timeout: Duration = Text("120s"), parse::duration, "smtp lmtp";
        /// Time limit for sending message content.
        smtp_data_xfer_timeout: Duration = Text("180s"), parse::duration, "smtp lmtp";
        /// Time limit for the reply to the end of data.
        smtp_data_done_timeout: Duration = Text("600s"), parse::duration, "smtp lmtp";
        /// Time limit for the reply to QUIT.
        smtp_quit_timeout: Duration = Text("300s"), parse::duration, "smtp lmtp";
    }
    "Listeners" "" {
        /// Addresses the SMTP server listens on, host:port, comma or space separated.
        /// host:port, [v6]:port or :port.
        smtpd_listen: Vec<SocketAddr> = Text("127.0.0.1:25"), parse::smtpd_listen, "smtpd";
        /// Addresses smtpd listens on when smtpd_listen is not set and this is (or master.cf gives the ports): all, loopback-only, or addresses and host names.
        /// Postfix's way: used when smtpd_listen is not set but this is, or when
        /// master.cf is read; smtpd listens on port 25 (master.cf: the ports of its
        /// smtpd services) of these addresses.
        inet_interfaces: String = Text("all"), parse::text, "smtpd";
        /// Address families for inet_interfaces: all, ipv4, ipv6.
        inet_protocols: String = Text("all"), parse::text, "smtpd";
        /// The submission service (RFC 6409, port 587) for mail clients and applications:
        /// empty is off. With Postfix's master.cf settings for it: TLS required, AUTH
        /// offered, only authenticated clients may send; [services.submission] (or
        /// POSTERN_SERVICES__SUBMISSION__NAME) changes any parameter for it alone.
        submission_listen: Vec<SocketAddr> = Text(""), parse::listen, "smtpd";
        /// The smtps service (RFC 8314, port 465): TLS from the first byte, then as
        /// submission; [services.smtps] changes any parameter for it alone. Empty is off.
        smtps_listen: Vec<SocketAddr> = Text(""), parse::listen, "smtpd";
        /// Look up the client's host name: the address's PTR name, confirmed by its A/AAAA records.
        /// A name that does not confirm is logged with a warning and the client is
        /// unknown[ip], as in Postfix; the name goes into logs and Received:.
        smtpd_peername_lookup: bool = Text("yes"), parse::yes_no, "smtpd";
        /// The PROXY protocol a load balancer in front of smtpd speaks: empty (none) or haproxy.
        /// haproxy: every connection must begin with a PROXY header (version 1 or 2);
        /// the client's address in it is the one logged, limited and matched
        /// against mynetworks. A connection without one is closed.
        smtpd_upstream_proxy_protocol: String = Text(""), parse::text, "smtpd";
        /// How long a PROXY header may take to arrive.
        smtpd_upstream_proxy_timeout: Duration = Text("5s"), parse::duration, "smtpd";
        /// Address of the admin HTTP service (metrics, health, queue API, the web interface under /ui/).
        admin_listen: Vec<SocketAddr> = Text("127.0.0.1:8025"), parse::listen, "admin";
    }
    "Admin service access" "The web interface (/ui/) and the queue API need a login when either of the\nfirst two is set; with neither, admin_listen may only be a loopback address.\n/healthz and /readyz are always open." {
        /// Who may use the admin service with HTTP Basic: a table of user name to password hash.
        /// Dovecot's {SCHEME} notation as for smtpd_sasl_path (`postern saslpasswd
        /// USER` makes one), e.g. texthash:/etc/postern/admin_users.
        admin_auth_users: String = Text(""), parse::text, "admin";
        /// A bearer token that opens the admin service (Authorization: Bearer TOKEN).
        admin_api_token: String = Text(""), parse::text, "admin";
        /// Ask for a login on /metrics too.
        admin_metrics_auth: bool = Text("no"), parse::yes_no, "admin";
        /// How long a request with wrong credentials waits before its 401.
        admin_auth_failure_delay: Duration = Text("1s"), parse::duration, "admin";
    }
    "Capture (development relay)" "For a development or test stack: mail is accepted as usual, then kept in\nthe hold queue instead of delivered, grouped into mailboxes, to be read in the\nweb interface (/ui/ on admin_listen) and released through the queue." {
        /// Keep every accepted message in the hold queue (captured) instead of delivering it.
        capture_mode: bool = Text("no"), parse::yes_no, "cleanup";
        /// Recipient domains delivered normally in capture mode (a domain and its subdomains).
        /// A message to both kinds is split: a copy for these recipients goes on,
        /// the rest is captured.
        capture_release_domains: Vec<String> = Text(""), parse::domains, "cleanup";
        /// How captured mail is grouped into mailboxes: rules tried in order.
        /// sasl_username, recipient_domain, client_address, header:NAME (the
        /// value of that header, e.g. header:X-Mailbox); mail no rule names goes
        /// to the mailbox "default".
        capture_mailbox_by: Vec<String> = Text("sasl_username, recipient_domain"), parse::list, "cleanup";
        /// The most captured messages kept; the oldest go first (0: no limit).
        capture_max_messages: u64 = Text("10000"), parse::number, "qmgr";
        /// Captured messages older than this are deleted (0: kept until deleted).
        capture_max_age: Duration = Text("7d"), parse::duration, "qmgr";
        /// In capture mode, accept any SMTP AUTH user name and password.
        /// AUTH is offered for it; the user name names the mailbox
        /// (capture_mailbox_by = sasl_username). A client so logged in may
        /// send to capture_release_domains: keep such a relay off public
        /// networks.
        capture_accept_any_auth: bool = Text("no"), parse::yes_no, "smtpd";
    }
    "SMTP server TLS" "" {
        /// TLS for clients of smtpd: none, may (STARTTLS offered) or encrypt (required before MAIL).
        /// Empty: smtpd_enforce_tls and smtpd_use_tls decide, as in Postfix (none
        /// when neither is set). may without a certificate offers no STARTTLS (a
        /// warning); encrypt without one is refused.
        smtpd_tls_security_level: String = Text(""), parse::tls_level, "smtpd";
        /// The server certificate chain (PEM), the server first.
        smtpd_tls_cert_file: String = Text(""), parse::text, "smtpd";
        /// The server certificate's private key (PEM); empty: in smtpd_tls_cert_file.
        smtpd_tls_key_file: String = Text("$smtpd_tls_cert_file"), parse::text, "smtpd";
        /// Files each holding a private key and its certificate chain (PEM), in place of
        /// smtpd_tls_cert_file and smtpd_tls_key_file.
        smtpd_tls_chain_files: Vec<String> = Text(""), parse::list, "smtpd";
        /// TLS protocols offered (Postfix's syntax: !SSLv3, >=TLSv1.2, ...). postern
        /// offers TLSv1.2 and TLSv1.3 at most.
        smtpd_tls_protocols: String = Text(">=TLSv1"), parse::text, "smtpd";
        /// TLS protocols allowed when TLS is required (encrypt).
        smtpd_tls_mandatory_protocols: String = Text(">=TLSv1"), parse::text, "smtpd";
        /// Offer AUTH only after STARTTLS.
        smtpd_tls_auth_only: bool = Text("no"), parse::yes_no, "smtpd";
        /// Name the TLS protocol and cipher in the Received: header.
        smtpd_tls_received_header: bool = Text("no"), parse::yes_no, "smtpd";
        /// TLS logging: 0 none, 1 a line per established connection and its failures.
        smtpd_tls_loglevel: u32 = Text("0"), parse::number, "smtpd";
        /// TLS from the first byte (the smtps port), rather than after STARTTLS.
        smtpd_tls_wrappermode: bool = Text("no"), parse::yes_no, "smtpd";
        /// Time limit for the TLS handshake after STARTTLS (or on the smtps port).
        smtpd_starttls_timeout: Duration = Text("300s"), parse::duration, "smtpd";
    }
    "SMTP server authentication (AUTH)" "" {
        /// Offer SMTP AUTH (RFC 4954) with the PLAIN and LOGIN mechanisms.
        /// Offered only under TLS while smtpd_tls_auth_only = yes; the submission and
        /// smtps services turn it on for themselves.
        smtpd_sasl_auth_enable: bool = Text("no"), parse::yes_no, "smtpd";
        /// Who checks passwords: dovecot (Dovecot's auth service) or postern (a table).
        /// cyrus, Postfix's default, is not implemented: name one of the two when AUTH
        /// is on.
        smtpd_sasl_type: String = Text("cyrus"), parse::text, "smtpd";
        /// dovecot: the auth socket (a path, relative to queue_directory like Postfix's
        /// private/auth, or inet:host:port). postern: a table of user name to password
        /// hash in Dovecot's {SCHEME} notation ({SHA512-CRYPT}, {BLF-CRYPT},
        /// {ARGON2ID}; `postern saslpasswd USER` makes one), e.g.
        /// texthash:/etc/postern/sasl_passwd.
        smtpd_sasl_path: String = Text("smtpd"), parse::text, "smtpd";
        /// How long a request to Dovecot's auth service may take (never longer than smtpd_timeout).
        /// Past it the client is told 454 4.7.0 and may try again.
        ipc_timeout: Duration = Text("3600s"), parse::duration, "smtpd";
        /// Name the authenticated user in the Received: header.
        smtpd_sasl_authenticated_header: bool = Text("no"), parse::yes_no, "smtpd";
        /// Clients that are not offered AUTH (networks, as mynetworks).
        smtpd_sasl_exceptions_networks: Vec<Cidr> = Text(""), parse::networks, "smtpd";
        /// Mechanism restrictions without TLS: noanonymous; noplaintext offers no PLAIN or LOGIN.
        smtpd_sasl_security_options: Vec<String> = Text("noanonymous"), parse::lower_list, "smtpd";
        /// The same under TLS.
        smtpd_sasl_tls_security_options: Vec<String> = Text("$smtpd_sasl_security_options"), parse::lower_list, "smtpd";
        /// Also say AUTH=PLAIN LOGIN in EHLO, for clients from before RFC 4954.
        broken_sasl_auth_clients: bool = Text("no"), parse::yes_no, "smtpd";
        /// The longest AUTH response (base64 text) a client may send.
        smtpd_sasl_response_limit: usize = Text("12288"), parse::number, "smtpd";
        /// A table from sender address to the login names that may use it, for
        /// reject_sender_login_mismatch and its relatives.
        smtpd_sender_login_maps: Vec<String> = Text(""), parse::list, "smtpd";
        /// AUTH commands one client IP may send per anvil_rate_time_unit; 0 is no limit.
        /// Over it: 450 4.7.1 Error: too many AUTH commands from IP.
        smtpd_client_auth_rate_limit: u32 = Text("0"), parse::number, "smtpd";
        /// Delay before a refused AUTH is answered, times the failures so far in the session.
        smtpd_error_sleep_time: Duration = Text("1s"), parse::duration, "smtpd";
    }
    "SMTP server restrictions" "Postfix's lists, order and replies. With smtpd_delay_reject = yes (the\ndefault) the client, HELO and sender lists are evaluated at RCPT TO, with\nthe relay and recipient lists; in each list the first permit or reject\ndecides it. Words: permit, reject, defer, dunno, warn_if_reject, sleep N,\ndefer_if_permit, defer_if_reject, permit_mynetworks,\npermit_sasl_authenticated, reject_unauth_destination,\ndefer_unauth_destination, permit_auth_destination, reject_unauth_pipelining,\nreject_invalid_helo_hostname, reject_non_fqdn_helo_hostname,\nreject_unknown_helo_hostname, reject_non_fqdn_sender,\nreject_non_fqdn_recipient, reject_unknown_sender_domain,\nreject_unknown_recipient_domain, reject_unknown_client_hostname,\nreject_unknown_reverse_client_hostname, reject_unlisted_sender,\nreject_unlisted_recipient, reject_sender_login_mismatch (and its known_,\nauthenticated_, unauthenticated_ forms), check_client_access,\ncheck_reverse_client_hostname_access, check_helo_access,\ncheck_sender_access, check_recipient_access, check_sender_mx_access,\ncheck_sender_ns_access, check_ccert_access (no client certificates are\nasked for: it never matches), reject_rbl_client, reject_rhsbl_client,\nreject_rhsbl_reverse_client, reject_rhsbl_helo, reject_rhsbl_sender,\nreject_rhsbl_recipient, permit_dnswl_client (each DOMAIN[=127.0.0.N]),\nand the names of smtpd_restriction_classes. Access tables answer with\naccess(5)'s actions." {
        /// Restrictions on the client (its address and name).
        smtpd_client_restrictions: Vec<String> = Text(""), parse::list, "smtpd";
        /// Restrictions on the HELO/EHLO name.
        smtpd_helo_restrictions: Vec<String> = Text(""), parse::list, "smtpd";
        /// Restrictions on the sender (MAIL FROM).
        smtpd_sender_restrictions: Vec<String> = Text(""), parse::list, "smtpd";
        /// Restrictions that decide relaying: who may send to domains not ours.
        /// Postfix's default: mail from mynetworks and authenticated clients may go
        /// anywhere; anyone else may only send to mydestination and relay_domains
        /// (454 4.7.1 Relay access denied).
        smtpd_relay_restrictions: Vec<String> = Text("permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination"), parse::list, "smtpd";
        /// Restrictions on the recipient, after the relay restrictions.
        smtpd_recipient_restrictions: Vec<String> = Text(""), parse::list, "smtpd";
        /// Restrictions at DATA, with every recipient known.
        smtpd_data_restrictions: Vec<String> = Text(""), parse::list, "smtpd";
        /// Restrictions after the message's final dot, with its size known.
        smtpd_end_of_data_restrictions: Vec<String> = Text(""), parse::list, "smtpd";
        /// Restrictions on ETRN (postern answers ETRN with 502; the list is checked only).
        smtpd_etrn_restrictions: Vec<String> = Text(""), parse::list, "smtpd";
        /// Names of parameters that hold restriction lists, usable as one word in a list
        /// or as an access table's answer.
        smtpd_restriction_classes: Vec<String> = Text(""), parse::list, "smtpd";
        /// Wait for RCPT TO before refusing for the client, HELO or sender.
        smtpd_delay_reject: bool = Text("yes"), parse::yes_no, "smtpd";
        /// Require HELO or EHLO before MAIL FROM.
        smtpd_helo_required: bool = Text("no"), parse::yes_no, "smtpd";
        /// Refuse a sender in our own domains that no table lists, as for recipients.
        smtpd_reject_unlisted_sender: bool = Text("no"), parse::yes_no, "smtpd";
        /// Refuse a recipient in our own domains that no table lists (550 5.1.1).
        smtpd_reject_unlisted_recipient: bool = Text("yes"), parse::yes_no, "smtpd";
        /// Let untrusted clients relay with sender-specified routing (user%host@ours).
        allow_untrusted_routing: bool = Text("no"), parse::yes_no, "smtpd";
        /// The key access tables are asked for the null sender.
        smtpd_null_access_lookup_key: String = Text("<>"), parse::text, "smtpd";
        /// A table from blocklist domain to the reply when a client is listed there.
        rbl_reply_maps: Vec<String> = Text(""), parse::list, "smtpd";
        /// The reply when a blocklist lists the client, with $rbl_code, $rbl_class,
        /// $rbl_what, $rbl_domain, $rbl_reason (the TXT record) and ${name?text}.
        default_rbl_reply: String = Text("$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using $rbl_domain${rbl_reason?; $rbl_reason}"), parse::raw, "smtpd";
        /// The code of a blocklist refusal.
        maps_rbl_reject_code: u16 = Text("554"), parse::number, "smtpd";
        /// The code of an access table's REJECT.
        access_map_reject_code: u16 = Text("554"), parse::number, "smtpd";
        /// The code of an access table's DEFER.
        access_map_defer_code: u16 = Text("450"), parse::number, "smtpd";
        /// The code of reject.
        reject_code: u16 = Text("554"), parse::number, "smtpd";
        /// The code of defer and defer_if_permit.
        defer_code: u16 = Text("450"), parse::number, "smtpd";
        /// The code of reject_unauth_destination.
        relay_domains_reject_code: u16 = Text("554"), parse::number, "smtpd";
        /// The code of reject_unknown_sender_domain and reject_unknown_recipient_domain.
        unknown_address_reject_code: u16 = Text("450"), parse::number, "smtpd";
        /// The code of reject_unknown_client_hostname and its reverse form.
        unknown_client_reject_code: u16 = Text("450"), parse::number, "smtpd";
        /// The code of reject_unknown_helo_hostname.
        unknown_hostname_reject_code: u16 = Text("450"), parse::number, "smtpd";
        /// The code of reject_invalid_helo_hostname.
        invalid_hostname_reject_code: u16 = Text("501"), parse::number, "smtpd";
        /// The code of the reject_non_fqdn_* restrictions.
        non_fqdn_reject_code: u16 = Text("504"), parse::number, "smtpd";
        /// What a DNS lookup that fails for now does to a restriction: defer_if_permit or defer.
        reject_tempfail_action: String = Text("defer_if_permit"), parse::text, "smtpd";
        /// The same for reject_unknown_sender_domain and _recipient_domain.
        unknown_address_tempfail_action: String = Text("$reject_tempfail_action"), parse::text, "smtpd";
        /// The same for reject_unknown_helo_hostname.
        unknown_helo_hostname_tempfail_action: String = Text("$reject_tempfail_action"), parse::text, "smtpd";
        /// How long a policy server (check_policy_service) may take to answer.
        smtpd_policy_service_timeout: Duration = Text("100s"), parse::duration, "smtpd";
        /// How long an idle connection to a policy server is kept.
        smtpd_policy_service_max_idle: Duration = Text("300s"), parse::duration, "smtpd";
        /// How long a connection to a policy server is used at most.
        smtpd_policy_service_max_ttl: Duration = Text("1000s"), parse::duration, "smtpd";
        /// Attempts at a policy request before the default action.
        smtpd_policy_service_try_limit: u32 = Text("2"), parse::number, "smtpd";
        /// The wait between attempts.
        smtpd_policy_service_retry_delay: Duration = Text("1s"), parse::duration, "smtpd";
        /// Requests per connection to a policy server; 0 is no limit.
        smtpd_policy_service_request_limit: u32 = Text("0"), parse::number, "smtpd";
        /// The action when a policy server cannot be had.
        smtpd_policy_service_default_action: String = Text("451 4.3.5 Server configuration problem"), parse::text, "smtpd";
        /// Sent to policy servers as policy_context.
        smtpd_policy_service_policy_context: String = Text(""), parse::text, "smtpd";
        /// Where a domain also matches its subdomains; for access tables: smtpd_access_maps.
        parent_domain_matches_subdomains: Vec<String> = Text("debug_peer_list,fast_flush_domains,mynetworks,permit_mx_backup_networks,qmqpd_authorized_clients,relay_domains,smtpd_access_maps"), parse::list, "smtpd";
    }
    "Milters" "Programs that inspect and change each message over the Sendmail milter\nprotocol (version 6): OpenDKIM, rspamd's proxy, OpenDMARC, ... Each list item\nis inet:host:port or unix:/path (relative: under queue_directory), or\n{ inet:host:port, connect_timeout=10s, command_timeout=10s,\ncontent_timeout=60s, default_action=accept } with settings of its own." {
        /// Milters for mail received over SMTP.
        smtpd_milters: Vec<String> = Text(""), parse::list, "smtpd";
        /// Milters for mail submitted with the sendmail command (through pickup).
        /// A milter's refusal bounces the message to its sender; a temporary one
        /// leaves it in the maildrop for the next pickup.
        non_smtpd_milters: Vec<String> = Text(""), parse::list, "pickup cleanup";
        /// What a milter that cannot be had stands for: tempfail, accept, reject or quarantine.
        milter_default_action: String = Text("tempfail"), parse::text, "smtpd pickup";
        /// The milter protocol version offered (6).
        milter_protocol: u32 = Text("6"), parse::number, "smtpd pickup";
        /// How long connecting to a milter (and the negotiation) may take.
        milter_connect_timeout: Duration = Text("30s"), parse::duration, "smtpd pickup";
        /// How long a milter may take to answer a command.
        milter_command_timeout: Duration = Text("30s"), parse::duration, "smtpd pickup";
        /// How long a milter may take to answer message content and its end.
        milter_content_timeout: Duration = Text("300s"), parse::duration, "smtpd pickup";
        /// Macros sent with the connect event.
        milter_connect_macros: Vec<String> = Text("j {daemon_name} {daemon_addr} v _"), parse::list, "smtpd pickup";
        /// Macros sent with HELO.
        milter_helo_macros: Vec<String> = Text("{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}"), parse::list, "smtpd pickup";
        /// Macros sent with MAIL FROM.
        milter_mail_macros: Vec<String> = Text("i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}"), parse::list, "smtpd pickup";
        /// Macros sent with RCPT TO.
        milter_rcpt_macros: Vec<String> = Text("i {rcpt_addr} {rcpt_host} {rcpt_mailer}"), parse::list, "smtpd pickup";
        /// Macros sent with DATA.
        milter_data_macros: Vec<String> = Text("i"), parse::list, "smtpd pickup";
        /// Macros sent at the end of the headers.
        milter_end_of_header_macros: Vec<String> = Text("i"), parse::list, "smtpd pickup";
        /// Macros sent at the end of the message.
        milter_end_of_data_macros: Vec<String> = Text("i"), parse::list, "smtpd pickup";
        /// The {daemon_name} macro.
        milter_macro_daemon_name: String = Text("$myhostname"), parse::text, "smtpd pickup";
        /// The v macro.
        milter_macro_v: String = Text("$mail_name"), parse::text, "smtpd pickup";
    }
    "After-queue content filter" "As in Postfix's FILTER_README: mail is queued, then sent to the filter\n(for instance smtp:[127.0.0.1]:10024); the filter gives it back on a listener\nof its own that does not filter again: a [services.reinject] table with\ntype \"smtpd\", listen \"127.0.0.1:10025\", an empty content_filter, and\nreceive_override_options of no_unknown_recipient_checks,\nno_header_body_checks and no_milters." {
        /// Where every message received goes before delivery (transport:nexthop); empty is none.
        /// Set for one smtpd service in its [services.NAME] table (empty on the
        /// re-injection listener).
        content_filter: String = Text(""), parse::text, "smtpd cleanup";
        /// What is not done for mail received by a service: no_unknown_recipient_checks,
        /// no_address_mappings, no_header_body_checks, no_milters.
        receive_override_options: Vec<String> = Text(""), parse::receive_overrides, "smtpd cleanup";
    }
    "SMTP server limits" "" {
        /// Text after 220 in the SMTP greeting.
        smtpd_banner: String = Text("$myhostname ESMTP $mail_name"), parse::text, "smtpd";
        /// Maximum message size in bytes, headers and envelope included.
        /// Advertised with SIZE.
        message_size_limit: u64 = Text("10240000"), parse::number, "smtpd cleanup";
        /// Maximum bytes of a message header section; the rest is treated as body.
        header_size_limit: usize = Text("102400"), parse::number, "smtpd cleanup";
        /// Maximum recipients per message.
        /// 452 4.5.3 past it.
        smtpd_recipient_limit: usize = Text("1000"), parse::number, "smtpd";
        /// Mail transactions (MAIL FROM) one session may begin; advertised as LIMITS MAILMAX (RFC 9422).
        /// Past it the client is told 421 4.7.0 and the session ends; it may connect
        /// again. Recipients per message are advertised as RCPTMAX from
        /// smtpd_recipient_limit.
        smtpd_session_mail_limit: usize = Text("1000"), parse::number, "smtpd";
        /// Time limit for reading a command or data, and for sending a reply.
        smtpd_timeout: Duration = Text("300s"), parse::duration, "smtpd";
        /// Minimum bytes per second of message content, after the first smtpd_timeout.
        /// A transfer gets smtpd_timeout plus one second per this many bytes
        /// received (DATA and BDAT), so a client that trickles cannot hold a session
        /// for ever.
        smtpd_min_data_rate: u64 = Text("500"), parse::number, "smtpd";
        /// Errors after which the SMTP session is closed.
        /// Errors are 4xx and 5xx replies.
        smtpd_hard_error_limit: u32 = Text("20"), parse::number, "smtpd";
        /// Maximum concurrent sessions from one client IP outside smtpd_client_event_limit_exceptions.
        smtpd_client_connection_count_limit: usize = Text("50"), parse::number, "smtpd";
        /// Connections one client IP may make per anvil_rate_time_unit; 0 is no limit.
        /// Over it: 421 4.7.0 Error: too many connections from IP.
        smtpd_client_connection_rate_limit: u32 = Text("0"), parse::number, "smtpd";
        /// Messages (MAIL FROM) one client IP may begin per anvil_rate_time_unit; 0 is no limit.
        /// Over it: 452 4.7.1 Error: too much mail from IP.
        smtpd_client_message_rate_limit: u32 = Text("0"), parse::number, "smtpd";
        /// Recipients one client IP may give per anvil_rate_time_unit; 0 is no limit.
        /// Over it: 452 4.7.1 Error: too many recipients from IP.
        smtpd_client_recipient_rate_limit: u32 = Text("0"), parse::number, "smtpd";
        /// New (not resumed) TLS sessions one client IP may begin per anvil_rate_time_unit; 0 is no limit.
        /// Over it STARTTLS is answered 421 4.7.0 Error: too many new TLS sessions from IP.
        smtpd_client_new_tls_session_rate_limit: u32 = Text("0"), parse::number, "smtpd";
        /// Clients the per-client limits do not apply to.
        smtpd_client_event_limit_exceptions: Vec<Cidr> = Text("$mynetworks"), parse::networks, "smtpd";
        /// The window of the per-client rate limits.
        anvil_rate_time_unit: Duration = Text("60s"), parse::duration, "smtpd";
        /// How often anvil's statistics lines (the highest rates and counts seen) are logged.
        anvil_status_update_time: Duration = Text("600s"), parse::duration, "smtpd";
        /// How long to watch for a client that talks before the greeting.
        /// Talking first is a spam bot's habit; it is refused. 0s checks only what
        /// already arrived.
        smtpd_pregreet_wait: Duration = Text("0s"), parse::duration, "smtpd";
        /// Maximum number of concurrent SMTP sessions.
        default_process_limit: usize = Text("100"), parse::number, "smtpd";
    }
    "Queue" "" {
        /// Where queue files, queue state and the control socket live.
        queue_directory: PathBuf = Text("/var/spool/postern"), parse::path, "master store";
        /// Memory for the queue files of small messages in flight, in bytes (read at start).
        /// A message under 128 KiB is made durable in the spool journal and kept in
        /// memory until it is delivered; past this limit the oldest are written out
        /// to the spool (unsynced: the journal still vouches for them).
        queue_journal_memory_limit: usize = Text("2097152"), parse::number, "master store";
    }
    "Supervision and shutdown" "" {
        /// Restarts of a role within supervisor_restart_period before escalating.
        /// A role that dies is restarted; past this, its group is restarted, and
        /// past that again the process exits non-zero.
        supervisor_restart_limit: u32 = Text("5"), parse::number, "master";
        /// The window in which supervisor_restart_limit counts restarts.
        supervisor_restart_period: Duration = Text("60s"), parse::duration, "master";
        /// How long open sessions and in-flight writes may take to finish on stop.
        shutdown_grace_period: Duration = Text("10s"), parse::duration, "master";
    }
    "Logging" "" {
        /// The program name prefix in log lines (syslog_name/role[pid]); postfix, what Postfix's log tools look for.
        /// "postfix" is what pflogsumm, fail2ban's postfix filters,
        /// prometheus-postfix-exporter and mailgraph look for; set another name only
        /// if nothing reads the log.
        syslog_name: String = Text("postfix"), parse::text, "master";
        /// Log line format: postfix (syslog-style lines) or json (one JSON object per line).
        /// postfix: Mon DD HH:MM:SS host postfix/role[pid]: text, what log scrapers
        /// and pflogsumm read; json: one object per line with time, host, program,
        /// pid, severity, queue_id and message.
        log_format: String = Text("postfix"), parse::log_format, "master";
        /// File for log lines; empty or /dev/stdout for standard output.
        maillog_file: String = Text(""), parse::text, "master";
    }
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

/// How a default is written in the example file: numbers bare, the rest
/// as TOML strings; the host-dependent ones as an example.
fn toml_default(default: Default) -> String {
    let text = match default {
        Text(t) => t,
        Hostname => "mx.example.com",
        Domain => "example.com",
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.to_string()
    } else {
        format!("{:?}", text)
    }
}

/// Comment lines: `# text`, or `#` for an empty line.
fn comment(out: &mut String, text: &str) {
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            out.push_str("#\n");
        } else {
            out.push_str("# ");
            out.push_str(line.strip_prefix(' ').unwrap_or(line));
            out.push('\n');
        }
    }
}

/// `config/postern.toml`: its introduction, then every section with every
/// parameter's documentation and default, commented out.
pub fn example_toml() -> String {
    let mut out = String::new();
    comment(&mut out, EXAMPLE_INTRODUCTION);
    for (section, prose) in SECTIONS {
        out.push('\n');
        let rule = "-".repeat(72usize.saturating_sub(section.len() + 7));
        out.push_str(&format!("# --- {section} {rule}\n"));
        if !prose.is_empty() {
            out.push_str("#\n");
            comment(&mut out, prose);
        }
        for param in PARAMS.iter().filter(|p| p.section == *section) {
            out.push('\n');
            comment(&mut out, param.doc);
            out.push_str(&format!(
                "# Read by: {}.\n# {} = {}\n",
                param.roles.replace(' ', ", "),
                param.name,
                toml_default(param.default)
            ));
        }
    }
    out.push('\n');
    comment(&mut out, EXAMPLE_SERVICES);
    out
}

const EXAMPLE_INTRODUCTION: &str = "\
postern.toml — every parameter postern implements, with its default.

postern reads this file from the configuration directory: `-c DIR`, else
$POSTERN_CONFIG_DIR, else /etc/postern. A missing file means all defaults.
Every parameter can also be set in the environment as POSTERN_<NAME>
(upper case), which wins over this file: POSTERN_MYHOSTNAME=mx.example.com.

Names, defaults and value syntax are Postfix's: durations such as 300s,
5m, 2h, 5d; lists separated by commas or spaces (a TOML array works too);
$name and ${name} refer to other parameters. `postern postconf` shows the
effective values, `postconf -n` what you set, `postconf -d` the defaults,
and `postern check` validates the file without binding any port.
An unknown name is an error that names the closest known one.

A directory with Postfix's main.cf and master.cf and no postern.toml is
read as Postfix reads it (`postern -c /etc/postfix start`). Every Postfix
parameter name is known; one postern does not implement is a warning when
ignoring it is harmless, and stops postern, naming it, when ignoring it
would weaken security or change where mail goes. `postconf -e`, -X, -#,
-M, -F and -P edit this file (or main.cf and master.cf) in place.

This file is made from the declarations in src/config/params.rs.";

const EXAMPLE_SERVICES: &str = "\
--- Transports (master.cf) ------------------------------------------------

A [services.NAME] table declares a transport that transport_maps,
default_transport and the other *_transport parameters can name. type is
pipe, smtp, lmtp, local, virtual, discard or error. In a container:
POSTERN_SERVICES__NAME__TYPE=pipe, POSTERN_SERVICES__NAME__ARGV=\"...\".
Postfix's per-transport parameters work for every transport:
NAME_destination_concurrency_limit, NAME_destination_recipient_limit,
NAME_initial_destination_concurrency, NAME_time_limit, ...

[services.procmail]
type = \"pipe\"
argv = [\"/usr/bin/procmail\", \"-a\", \"${extension}\", \"-d\", \"${user}\"]
flags = \"DRq\"                        # D, O, R, F, q, u, h, X, \".\", \">\"
user = \"mail\"                        # who runs it when postern is root
size = 10240000                      # larger mail bounces
destination_recipient_limit = 1      # per-transport overrides
destination_concurrency_limit = 5";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_documented() {
        let mut names: Vec<&str> = PARAMS.iter().map(|p| p.name).collect();
        names.sort_unstable();
        for pair in names.windows(2) {
            assert!(pair[0] != pair[1], "{} twice", pair[0]);
        }
        for p in PARAMS {
            assert!(!p.summary().is_empty(), "{} has no documentation", p.name);
            assert!(SECTIONS.iter().any(|(s, _)| *s == p.section));
        }
    }

    #[test]
    fn suggests_the_closest_name() {
        assert_eq!(closest("smtpd_timout"), Some("smtpd_timeout"));
        assert_eq!(closest("mydestinations"), Some("mydestination"));
        assert_eq!(closest("message_size"), Some("message_size_limit"));
        assert_eq!(closest("completely_unrelated_name"), None);
    }

    /// `config/postern.toml` is what the declarations make: to bring it in
    /// step, run this test with POSTERN_WRITE_EXAMPLE=1.
    #[test]
    fn the_example_file_is_the_declarations() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/postern.toml");
        let made = example_toml();
        if std::env::var_os("POSTERN_WRITE_EXAMPLE").is_some() {
            std::fs::write(path, &made).unwrap();
        }
        let file = std::fs::read_to_string(path).unwrap();
        assert!(
            file == made,
            "config/postern.toml and the declarations disagree; run POSTERN_WRITE_EXAMPLE=1 cargo test --lib the_example_file"
        );
    }
}
