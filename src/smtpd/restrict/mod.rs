//! smtpd's restrictions: Postfix's lists, evaluated at the stages Postfix
//! evaluates them, with its vocabulary ([`word`]), access tables
//! ([`access`]) and DNS lists ([`dns`]), and its replies and log lines.
//!
//! Stages: with `smtpd_delay_reject = yes` (the default) the client, HELO
//! and sender lists wait for RCPT TO and run there with the relay and
//! recipient lists; otherwise each runs at its own command (the client
//! list at connect). Then DATA (`smtpd_data_restrictions`) and the end of
//! the message (`smtpd_end_of_data_restrictions`). In a list the first
//! word that permits ends that list, the first that refuses refuses the
//! command; `defer_if_permit`, `defer_if_reject` and `warn_if_reject`
//! change what comes after them, as in Postfix.
//!
//! Actions an access table may ask for besides permitting and refusing
//! (HOLD, DISCARD, REDIRECT, FILTER, BCC, PREPEND) are gathered in
//! [`Effects`] and applied to the message by cleanup.

pub mod access;
pub mod dns;
pub mod policy;
pub mod word;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use self::access::Action;
use self::word::{DnsList, Listed, Mismatch, Subject, Word};
use crate::config::Config;
use crate::dns::Resolver;
use crate::mail::Address;
use crate::maps::{self, Maps};
use crate::proto::Reply;
use crate::rewrite::Rewrite;

/// Where in the session restrictions run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Helo,
    Mail,
    Rcpt,
    Data,
    EndOfData,
}

impl Stage {
    /// The command named in `reject:` log lines.
    pub fn command(self) -> &'static str {
        match self {
            Stage::Connect => "CONNECT",
            Stage::Helo => "HELO",
            Stage::Mail => "MAIL",
            Stage::Rcpt => "RCPT",
            Stage::Data => "DATA",
            Stage::EndOfData => "END-OF-MESSAGE",
        }
    }
}

/// Which list a word is in: what it refuses is named after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum List {
    Client,
    Helo,
    Sender,
    Recipient,
    Data,
    EndOfData,
}

impl List {
    fn class(self) -> &'static str {
        match self {
            List::Client => "Client host",
            List::Helo => "Helo command",
            List::Sender => "Sender address",
            List::Recipient => "Recipient address",
            List::Data => "Data command",
            List::EndOfData => "End-of-data",
        }
    }
}

/// What the request is about.
pub struct Request<'a> {
    pub stage: Stage,
    pub client_addr: IpAddr,
    /// The verified name, or `unknown`.
    pub client_name: &'a str,
    /// The PTR name, or `unknown`.
    pub reverse_name: &'a str,
    /// The name is unknown for a reason that may pass.
    pub name_temporary: bool,
    pub helo: Option<&'a str>,
    pub sender: Option<&'a Address>,
    pub rcpt: Option<&'a Address>,
    /// The client is in `mynetworks`.
    pub trusted: bool,
    pub sasl_user: Option<&'a str>,
    /// The client sent more before our reply (without PIPELINING).
    pub pipelined: bool,
    pub rewrite: &'a Rewrite,
    pub resolver: &'a Resolver,
    /// What else a policy server is told.
    pub details: Details<'a>,
}

/// The rest of what Postfix tells a policy server.
#[derive(Clone, Debug, Default)]
pub struct Details<'a> {
    /// `SMTP` or `ESMTP`.
    pub protocol: &'a str,
    pub client_port: u16,
    pub server_address: String,
    pub server_port: u16,
    pub queue_id: Option<&'a str>,
    pub recipient_count: usize,
    pub size: Option<u64>,
    pub sasl_method: Option<&'a str>,
    /// `TLSv1.3 with cipher X (256/256 bits)`.
    pub tls: Option<&'a str>,
    /// Names the transaction (for servers that count per message).
    pub instance: String,
}

impl Request<'_> {
    fn client(&self) -> String {
        crate::mail::maillog::client(self.client_name, &self.client_addr.to_string())
    }
}

/// What access tables asked to be done with the message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    pub hold: Option<String>,
    pub discard: Option<String>,
    pub redirect: Option<String>,
    pub filter: Option<String>,
    pub bcc: Vec<String>,
    /// Headers put above the Received: header.
    pub prepend: Vec<String>,
}

/// Something to log as Postfix's `NOQUEUE: hold: RCPT from ...` lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub action: &'static str,
    pub text: String,
}

/// What a restriction decided.
enum Decision {
    Permit,
    Refuse(Reply),
    Dunno,
}

/// The state of one evaluation.
struct Eval<'e> {
    defer_if_permit: Option<Reply>,
    defer_if_reject: Option<Reply>,
    warn_next: bool,
    depth: u32,
    effects: &'e mut Effects,
    notes: &'e mut Vec<Note>,
}

/// Recursion through classes and access table answers, at most.
const DEPTH_MAX: u32 = 100;

/// The restrictions of one smtpd service.
#[derive(Debug)]
pub struct Restrictions {
    client: Vec<Word>,
    helo: Vec<Word>,
    sender: Vec<Word>,
    relay: Vec<Word>,
    recipient: Vec<Word>,
    data: Vec<Word>,
    end_of_data: Vec<Word>,
    classes: BTreeMap<String, Vec<Word>>,
    login_maps: Maps,
    rbl_reply_maps: Maps,
    settings: Settings,
}

/// The parameters the words read.
#[derive(Clone, Debug)]
struct Settings {
    delay_reject: bool,
    parents: bool,
    null_key: String,
    default_rbl_reply: String,
    maps_rbl_reject_code: u16,
    access_map_reject_code: u16,
    access_map_defer_code: u16,
    reject_code: u16,
    defer_code: u16,
    relay_domains_reject_code: u16,
    unknown_address_reject_code: u16,
    unknown_client_reject_code: u16,
    unknown_hostname_reject_code: u16,
    invalid_hostname_reject_code: u16,
    non_fqdn_reject_code: u16,
    /// `*_tempfail_action` is `defer` (not `defer_if_permit`).
    address_tempfail_defers: bool,
    helo_tempfail_defers: bool,
    allow_untrusted_routing: bool,
    sleep_max: Duration,
}

impl Restrictions {
    /// The lists a configuration names; an error for a word postern does
    /// not implement or lists that would make an open relay. A table that
    /// cannot be opened is a warning (requests that need it get 451 4.3.5).
    pub fn new(config: &Config, warnings: &mut Vec<String>) -> Result<Restrictions, String> {
        let classes_raw = &config.restriction_classes;
        // One client (and its kept connections) per policy server.
        let policy_settings = policy::Settings {
            timeout: config.smtpd_policy_service_timeout,
            max_idle: config.smtpd_policy_service_max_idle,
            max_ttl: config.smtpd_policy_service_max_ttl,
            try_limit: config.smtpd_policy_service_try_limit,
            retry_delay: config.smtpd_policy_service_retry_delay,
            request_limit: config.smtpd_policy_service_request_limit,
            default_action: config.smtpd_policy_service_default_action.clone(),
            policy_context: config.smtpd_policy_service_policy_context.clone(),
        };
        let policies = std::cell::RefCell::new(BTreeMap::<String, Arc<policy::Client>>::new());
        let mut policy = |spec: &str| -> Result<Arc<policy::Client>, String> {
            if let Some(client) = policies.borrow().get(spec) {
                return Ok(client.clone());
            }
            let endpoint = policy::Endpoint::parse(spec, &config.queue_directory)?;
            let client = Arc::new(policy::Client::new(spec, endpoint, policy_settings.clone()));
            policies
                .borrow_mut()
                .insert(spec.to_string(), client.clone());
            Ok(client)
        };
        let mut list = |name: &str, words: &[String], warnings: &mut Vec<String>| {
            word::parse_list(words, classes_raw, warnings, &mut policy)
                .map_err(|e| format!("{name}: {e}"))
        };
        let mut classes = BTreeMap::new();
        for (name, words) in classes_raw {
            classes.insert(name.clone(), list(name, words, warnings)?);
        }
        let tempfail_defers = |v: &str| match v {
            "defer" => Ok(true),
            "defer_if_permit" => Ok(false),
            other => Err(format!(
                "tempfail action {other:?}: defer or defer_if_permit"
            )),
        };
        let out = Restrictions {
            client: list(
                "smtpd_client_restrictions",
                &config.smtpd_client_restrictions,
                warnings,
            )?,
            helo: list(
                "smtpd_helo_restrictions",
                &config.smtpd_helo_restrictions,
                warnings,
            )?,
            sender: list(
                "smtpd_sender_restrictions",
                &config.smtpd_sender_restrictions,
                warnings,
            )?,
            relay: list(
                "smtpd_relay_restrictions",
                &config.smtpd_relay_restrictions,
                warnings,
            )?,
            recipient: list(
                "smtpd_recipient_restrictions",
                &config.smtpd_recipient_restrictions,
                warnings,
            )?,
            data: list(
                "smtpd_data_restrictions",
                &config.smtpd_data_restrictions,
                warnings,
            )?,
            end_of_data: list(
                "smtpd_end_of_data_restrictions",
                &config.smtpd_end_of_data_restrictions,
                warnings,
            )?,
            classes,
            login_maps: maps::open_list(&config.smtpd_sender_login_maps)
                .map_err(|e| format!("smtpd_sender_login_maps: {e}"))?,
            rbl_reply_maps: maps::open_list(&config.rbl_reply_maps)
                .map_err(|e| format!("rbl_reply_maps: {e}"))?,
            settings: Settings {
                delay_reject: config.smtpd_delay_reject,
                parents: config
                    .parent_domain_matches_subdomains
                    .iter()
                    .any(|p| p == "smtpd_access_maps"),
                null_key: config.smtpd_null_access_lookup_key.clone(),
                default_rbl_reply: config.default_rbl_reply.clone(),
                maps_rbl_reject_code: config.maps_rbl_reject_code,
                access_map_reject_code: config.access_map_reject_code,
                access_map_defer_code: config.access_map_defer_code,
                reject_code: config.reject_code,
                defer_code: config.defer_code,
                relay_domains_reject_code: config.relay_domains_reject_code,
                unknown_address_reject_code: config.unknown_address_reject_code,
                unknown_client_reject_code: config.unknown_client_reject_code,
                unknown_hostname_reject_code: config.unknown_hostname_reject_code,
                invalid_hostname_reject_code: config.invalid_hostname_reject_code,
                non_fqdn_reject_code: config.non_fqdn_reject_code,
                address_tempfail_defers: tempfail_defers(&config.unknown_address_tempfail_action)?,
                helo_tempfail_defers: tempfail_defers(
                    &config.unknown_helo_hostname_tempfail_action,
                )?,
                allow_untrusted_routing: config.allow_untrusted_routing,
                sleep_max: config.smtpd_timeout,
            },
        };
        let guarded = |words: &[Word]| {
            words.iter().any(|w| {
                matches!(
                    w,
                    Word::Reject
                        | Word::Defer
                        | Word::UnauthDestination { .. }
                        | Word::DeferIfPermit
                )
            })
        };
        if !guarded(&out.relay) && !guarded(&out.recipient) {
            return Err("in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify at least one working instance of: reject_unauth_destination, defer_unauth_destination, reject, defer or defer_if_permit (this would be an open relay)".into());
        }
        let all = [
            &out.client,
            &out.helo,
            &out.sender,
            &out.relay,
            &out.recipient,
            &out.data,
            &out.end_of_data,
        ];
        let wants_maps = all
            .iter()
            .flat_map(|l| l.iter())
            .chain(out.classes.values().flatten())
            .any(|w| matches!(w, Word::LoginMismatch(_)));
        if wants_maps && out.login_maps.is_empty() {
            return Err(
                "a *_sender_login_mismatch restriction needs smtpd_sender_login_maps".into(),
            );
        }
        Ok(out)
    }

    /// Whether the client, HELO and sender lists wait for RCPT TO.
    pub fn delay_reject(&self) -> bool {
        self.settings.delay_reject
    }

    /// Runs the lists that belong to `request.stage`; `Err` is the reply
    /// refusing the command (the caller logs it). `notes` gets what is
    /// logged besides (warnings, access table actions).
    pub async fn check(
        &self,
        request: &Request<'_>,
        effects: &mut Effects,
        notes: &mut Vec<Note>,
    ) -> Result<(), Reply> {
        let delay = self.settings.delay_reject;
        let lists: Vec<(&[Word], List)> = match request.stage {
            Stage::Connect if !delay => vec![(&self.client, List::Client)],
            Stage::Helo if !delay => vec![(&self.helo, List::Helo)],
            Stage::Mail if !delay => vec![(&self.sender, List::Sender)],
            Stage::Rcpt if delay => vec![
                (&self.client, List::Client),
                (&self.helo, List::Helo),
                (&self.sender, List::Sender),
                (&self.relay, List::Recipient),
                (&self.recipient, List::Recipient),
            ],
            Stage::Rcpt => vec![
                (&self.relay, List::Recipient),
                (&self.recipient, List::Recipient),
            ],
            Stage::Data => vec![(&self.data, List::Data)],
            Stage::EndOfData => vec![(&self.end_of_data, List::EndOfData)],
            _ => Vec::new(),
        };
        let mut eval = Eval {
            defer_if_permit: None,
            defer_if_reject: None,
            warn_next: false,
            depth: 0,
            effects,
            notes,
        };
        for (words, list) in lists {
            // Each list begins afresh; defer_if_permit lasts to the end.
            eval.defer_if_reject = None;
            eval.warn_next = false;
            if let Decision::Refuse(reply) = self.run(words, list, request, &mut eval).await {
                return Err(reply);
            }
        }
        match eval.defer_if_permit {
            Some(reply) => Err(reply),
            None => Ok(()),
        }
    }

    /// One list, to its first decision.
    fn run<'a>(
        &'a self,
        words: &'a [Word],
        list: List,
        request: &'a Request<'_>,
        eval: &'a mut Eval<'_>,
    ) -> Pin<Box<dyn Future<Output = Decision> + Send + 'a>> {
        Box::pin(async move {
            for word in words {
                let warn = std::mem::take(&mut eval.warn_next);
                let decision = self.apply(word, list, request, eval).await;
                match decision {
                    Decision::Refuse(reply) if warn => {
                        eval.notes.push(Note {
                            action: "reject_warning",
                            text: reply.to_string(),
                        });
                    }
                    Decision::Refuse(reply) if reply.code >= 500 => {
                        return Decision::Refuse(eval.defer_if_reject.take().unwrap_or(reply));
                    }
                    Decision::Refuse(reply) => return Decision::Refuse(reply),
                    Decision::Permit => return Decision::Permit,
                    Decision::Dunno => {}
                }
            }
            Decision::Dunno
        })
    }

    async fn apply(
        &self,
        word: &Word,
        list: List,
        r: &Request<'_>,
        eval: &mut Eval<'_>,
    ) -> Decision {
        let s = &self.settings;
        let (name, class) = self.reply_name(list, r);
        let refuse = |code: u16, dsn: &str, text: String| {
            Decision::Refuse(Reply::new(code, format!("{} {text}", fix_dsn(code, dsn))))
        };
        // reject_unknown_client_hostname and _reverse_: 450 while the
        // lookup failed for now.
        let unknown_client = |which: &str| {
            let code = if r.name_temporary {
                450
            } else {
                s.unknown_client_reject_code
            };
            refuse(
                code,
                "4.7.25",
                format!(
                    "Client host rejected: cannot find your {which}, [{}]",
                    r.client_addr
                ),
            )
        };
        match word {
            Word::Permit => Decision::Permit,
            Word::Dunno => Decision::Dunno,
            Word::Reject => refuse(
                s.reject_code,
                "5.7.1",
                format!("<{name}>: {class} rejected: Access denied"),
            ),
            Word::Defer => refuse(
                s.defer_code,
                "4.7.1",
                format!("<{name}>: {class} rejected: Try again later"),
            ),
            Word::DeferIfPermit => {
                eval.defer_if_permit.get_or_insert_with(|| {
                    Reply::new(
                        s.defer_code,
                        format!("4.7.0 <{name}>: {class} rejected: defer_if_permit requested"),
                    )
                });
                Decision::Dunno
            }
            Word::DeferIfReject => {
                eval.defer_if_reject.get_or_insert_with(|| {
                    Reply::new(
                        s.defer_code,
                        format!("4.7.0 <{name}>: {class} rejected: defer_if_reject requested"),
                    )
                });
                Decision::Dunno
            }
            Word::WarnIfReject => {
                eval.warn_next = true;
                Decision::Dunno
            }
            Word::Sleep(seconds) => {
                tokio::time::sleep(Duration::from_secs(*seconds).min(s.sleep_max)).await;
                Decision::Dunno
            }
            Word::PermitMynetworks if r.trusted => Decision::Permit,
            Word::PermitSaslAuthenticated if r.sasl_user.is_some() => Decision::Permit,
            Word::UnauthDestination { defer } => match r.rcpt {
                Some(rcpt) if !self.is_our_destination(r, rcpt) => {
                    // Postfix's defer form is the reject code less 100 (454).
                    let code = s.relay_domains_reject_code - if *defer { 100 } else { 0 };
                    refuse(code, "5.7.1", format!("<{rcpt}>: Relay access denied"))
                }
                _ => Decision::Dunno,
            },
            Word::PermitAuthDestination => match r.rcpt {
                Some(rcpt) if self.is_our_destination(r, rcpt) => Decision::Permit,
                _ => Decision::Dunno,
            },
            Word::UnauthPipelining if r.pipelined => refuse(
                503,
                "5.5.0",
                format!("<{name}>: {class} rejected: Improper use of SMTP command pipelining"),
            ),
            Word::InvalidHelo => match r.helo {
                Some(helo) if !valid_helo_name(helo) => refuse(
                    s.invalid_hostname_reject_code,
                    "5.5.2",
                    format!("<{helo}>: Helo command rejected: Invalid name"),
                ),
                _ => Decision::Dunno,
            },
            Word::NonFqdnHelo => match r.helo {
                Some(helo)
                    if !helo.starts_with('[') && !helo.trim_end_matches('.').contains('.') =>
                {
                    refuse(
                        s.non_fqdn_reject_code,
                        "5.5.2",
                        format!("<{helo}>: Helo command rejected: need fully-qualified hostname"),
                    )
                }
                _ => Decision::Dunno,
            },
            Word::UnknownHelo => match r.helo {
                Some(helo) if !helo.starts_with('[') && valid_helo_name(helo) => {
                    match dns::host_exists(r.resolver, helo).await {
                        dns::Found::No => refuse(
                            s.unknown_hostname_reject_code,
                            "4.7.1",
                            format!("<{helo}>: Helo command rejected: Host not found"),
                        ),
                        dns::Found::Temporary(_) => self.tempfail(
                            eval,
                            s.helo_tempfail_defers,
                            format!("4.7.1 <{helo}>: Helo command rejected: Host not found"),
                        ),
                        dns::Found::Yes(()) => Decision::Dunno,
                    }
                }
                _ => Decision::Dunno,
            },
            Word::NonFqdnSender => match r.sender {
                Some(a) if !a.is_null() && !fqdn(a) => refuse(
                    s.non_fqdn_reject_code,
                    "5.5.2",
                    format!("<{a}>: Sender address rejected: need fully-qualified address"),
                ),
                _ => Decision::Dunno,
            },
            Word::NonFqdnRecipient => match r.rcpt {
                Some(a) if !fqdn(a) => refuse(
                    s.non_fqdn_reject_code,
                    "5.5.2",
                    format!("<{a}>: Recipient address rejected: need fully-qualified address"),
                ),
                _ => Decision::Dunno,
            },
            Word::UnknownSenderDomain => match r.sender {
                Some(a) if !a.is_null() => self.unknown_domain(r, eval, a, "Sender address").await,
                _ => Decision::Dunno,
            },
            Word::UnknownRecipientDomain => match r.rcpt {
                Some(a) => self.unknown_domain(r, eval, a, "Recipient address").await,
                None => Decision::Dunno,
            },
            Word::UnknownClient if r.client_name == "unknown" => unknown_client("hostname"),
            Word::UnknownReverseClient if r.reverse_name == "unknown" => {
                unknown_client("reverse hostname")
            }
            Word::UnlistedSender => match r.sender {
                Some(a) if !a.is_null() => match r.rewrite.check_recipient(a) {
                    Err(u) => refuse(
                        u.code,
                        u.status,
                        format!("<{a}>: Sender address rejected: {}", u.text),
                    ),
                    Ok(()) => Decision::Dunno,
                },
                _ => Decision::Dunno,
            },
            Word::UnlistedRecipient => match r.rcpt {
                Some(a) => match r.rewrite.check_recipient(a) {
                    Err(u) => refuse(
                        u.code,
                        u.status,
                        format!("<{a}>: Recipient address rejected: {}", u.text),
                    ),
                    Ok(()) => Decision::Dunno,
                },
                None => Decision::Dunno,
            },
            Word::LoginMismatch(m) => self.login_mismatch(r, *m),
            Word::Access(subject, table) => self.access(*subject, table, list, r, eval).await,
            Word::Blocklist(listed, dnslist) => self.blocklist(*listed, dnslist, r, eval).await,
            Word::Allowlist(dnslist) => {
                let query = format!("{}.{}", dns::reversed(r.client_addr), dnslist.domain);
                match dns::list_answers(r.resolver, &query).await {
                    dns::Found::Yes(ips)
                        if ips
                            .iter()
                            .any(|ip| word::filter_matches(dnslist.filter.as_deref(), *ip)) =>
                    {
                        eval.notes.push(Note {
                            action: "pass",
                            text: format!(
                                "{}: client [{}] listed by {}",
                                class, r.client_addr, dnslist.domain
                            ),
                        });
                        Decision::Permit
                    }
                    dns::Found::Temporary(e) => {
                        tracing::warn!(
                            "{}: DNS list {} lookup error for {}: {e}",
                            r.client(),
                            dnslist.domain,
                            r.client_addr
                        );
                        Decision::Dunno
                    }
                    _ => Decision::Dunno,
                }
            }
            Word::Policy(client) => {
                let action = client.ask(&policy_request(r)).await;
                let (name, class) = self.reply_name(list, r);
                self.answer(&action, &client.spec, (&name, class), list, r, eval)
                    .await
            }
            Word::Class(name) => {
                if eval.depth >= DEPTH_MAX {
                    return self.server_error(&format!(
                        "restriction class {name} causes unreasonable recursion"
                    ));
                }
                let Some(words) = self.classes.get(name) else {
                    return self.server_error(&format!("unknown restriction class {name}"));
                };
                eval.depth += 1;
                let decision = self.run(words, list, r, eval).await;
                eval.depth -= 1;
                decision
            }
            _ => Decision::Dunno,
        }
    }

    /// A DNS failure for now: defer at once, or defer if something would permit.
    fn tempfail(&self, eval: &mut Eval<'_>, defers: bool, text: String) -> Decision {
        let reply = Reply::new(450, text);
        if defers {
            Decision::Refuse(reply)
        } else {
            eval.defer_if_permit.get_or_insert(reply);
            Decision::Dunno
        }
    }

    async fn unknown_domain(
        &self,
        r: &Request<'_>,
        eval: &mut Eval<'_>,
        a: &Address,
        class: &str,
    ) -> Decision {
        let s = &self.settings;
        let Some(domain) = a.domain_lower().filter(|d| !d.starts_with('[')) else {
            return Decision::Dunno;
        };
        let sender = class == "Sender address";
        // Postfix asks only of recipient domains it is not the final destination for.
        if !sender && r.rewrite.is_final(&domain) {
            return Decision::Dunno;
        }
        let dsn = if sender { "4.1.8" } else { "4.1.2" };
        match dns::mail_host(r.resolver, &domain).await {
            dns::MailHost::Yes => Decision::Dunno,
            dns::MailHost::NullMx => {
                let (code, dsn) = if sender {
                    (550, "5.7.27")
                } else {
                    (556, "5.1.10")
                };
                Decision::Refuse(Reply::new(
                    code,
                    format!(
                        "{dsn} <{a}>: {class} rejected: Domain {domain} does not accept mail (nullMX)"
                    ),
                ))
            }
            dns::MailHost::NotFound => Decision::Refuse(Reply::new(
                s.unknown_address_reject_code,
                format!(
                    "{} <{a}>: {class} rejected: Domain not found",
                    fix_dsn(s.unknown_address_reject_code, dsn)
                ),
            )),
            dns::MailHost::Temporary(_) => self.tempfail(
                eval,
                s.address_tempfail_defers,
                format!("{dsn} <{a}>: {class} rejected: Domain not found"),
            ),
        }
    }

    /// Postfix's `reject_*_sender_login_mismatch`: the sender's owners
    /// are `smtpd_sender_login_maps`' answer for it.
    fn login_mismatch(&self, r: &Request<'_>, m: Mismatch) -> Decision {
        let Some(sender) = r.sender.filter(|s| !s.is_null()) else {
            return Decision::Dunno;
        };
        let local = sender
            .domain_lower()
            .is_some_and(|d| r.rewrite.is_local_domain(&d));
        let owners = maps::lookup_address(&self.login_maps, sender, r.rewrite.delimiter(), local)
            .map(|found| found.value);
        let refuse = |text: String| Decision::Refuse(Reply::new(553, text));
        match (r.sasl_user, owners) {
            (Some(user), Some(owners)) if m.authenticated => {
                let owned = owners
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .any(|owner| owner.eq_ignore_ascii_case(user));
                if owned {
                    Decision::Dunno
                } else {
                    refuse(format!(
                        "5.7.1 <{sender}>: Sender address rejected: not owned by user {user}"
                    ))
                }
            }
            (Some(user), None) if m.authenticated && !m.allow_unknown => refuse(format!(
                "5.7.1 <{sender}>: Sender address rejected: not owned by user {user}"
            )),
            (None, Some(_)) if m.unauthenticated => refuse(format!(
                "5.7.1 <{sender}>: Sender address rejected: not logged in"
            )),
            _ => Decision::Dunno,
        }
    }

    /// What a refusal names: the client, the HELO name, an address.
    fn reply_name(&self, list: List, r: &Request<'_>) -> (String, &'static str) {
        let name = match list {
            List::Client => r.client(),
            List::Helo => r.helo.unwrap_or("").to_string(),
            List::Sender => r.sender.map(|a| a.to_string()).unwrap_or_default(),
            List::Recipient => r.rcpt.map(|a| a.to_string()).unwrap_or_default(),
            List::Data => "DATA".into(),
            List::EndOfData => "END-OF-MESSAGE".into(),
        };
        (name, list.class())
    }

    fn server_error(&self, why: &str) -> Decision {
        tracing::warn!("{why}");
        Decision::Refuse(Reply::new(451, "4.3.5 Server configuration error"))
    }

    /// The recipient is for us or a domain we relay to, with no
    /// sender-specified routing that could take it elsewhere (unless
    /// `allow_untrusted_routing`).
    fn is_our_destination(&self, r: &Request<'_>, rcpt: &Address) -> bool {
        if rcpt.has_routing() && !self.settings.allow_untrusted_routing {
            return false;
        }
        let domain = r.rewrite.canonical(rcpt).domain_lower().unwrap_or_default();
        r.rewrite.is_ours(&domain)
    }

    async fn access(
        &self,
        subject: Subject,
        table: &word::Table,
        list: List,
        r: &Request<'_>,
        eval: &mut Eval<'_>,
    ) -> Decision {
        let maps = match &table.maps {
            Ok(maps) => maps,
            Err(e) => {
                return self.server_error(&format!("{}: table lookup problem: {e}", table.name));
            }
        };
        let parents = self.settings.parents;
        let delimiter = r.rewrite.delimiter();
        let host_and_address = |name: &str, maps: &Maps| {
            if name != "unknown"
                && let Some(found) = access::lookup(maps, &access::domain_keys(name, parents), name)
            {
                return Some(found);
            }
            let ip = r.client_addr.to_canonical().to_string();
            access::lookup(maps, &access::address_keys(r.client_addr), &ip)
        };
        let found = match subject {
            Subject::Client => host_and_address(r.client_name, maps),
            Subject::ReverseClient => host_and_address(r.reverse_name, maps),
            Subject::Helo => r.helo.and_then(|helo| {
                let literal = helo
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .map(|h| h.strip_prefix("IPv6:").unwrap_or(h));
                match literal.and_then(|l| l.parse::<IpAddr>().ok()) {
                    Some(ip) => access::lookup(maps, &access::address_keys(ip), &ip.to_string()),
                    None => access::lookup(maps, &access::domain_keys(helo, parents), helo),
                }
            }),
            Subject::Sender => r.sender.and_then(|a| {
                let keys = access::mail_keys(a, delimiter, parents, &self.settings.null_key);
                access::lookup(maps, &keys, &a.to_string())
            }),
            Subject::Recipient => r.rcpt.and_then(|a| {
                let keys = access::mail_keys(a, delimiter, parents, &self.settings.null_key);
                access::lookup(maps, &keys, &a.to_string())
            }),
            Subject::SenderMx | Subject::SenderNs => {
                let Some(domain) = r.sender.and_then(|a| a.domain_lower()) else {
                    return Decision::Dunno;
                };
                match dns::hosts_of(r.resolver, &domain, subject == Subject::SenderNs).await {
                    dns::Found::Yes(hosts) => hosts.iter().find_map(|(name, ips)| {
                        access::lookup(maps, &access::domain_keys(name, parents), name).or_else(
                            || {
                                ips.iter().find_map(|ip| {
                                    access::lookup(
                                        maps,
                                        &access::address_keys(*ip),
                                        &ip.to_string(),
                                    )
                                })
                            },
                        )
                    }),
                    _ => None,
                }
            }
            // No client certificate is asked for: there is nothing to match.
            Subject::ClientCert => None,
        };
        let Some(answer) = found else {
            return Decision::Dunno;
        };
        // What is refused is what was looked up, whatever the list.
        let named = match subject {
            Subject::Client | Subject::ReverseClient | Subject::ClientCert => List::Client,
            Subject::Helo => List::Helo,
            Subject::Sender | Subject::SenderMx | Subject::SenderNs => List::Sender,
            Subject::Recipient => List::Recipient,
        };
        let (name, class) = self.reply_name(named, r);
        self.answer(&answer, &table.name, (&name, class), list, r, eval)
            .await
    }

    /// Acts on an access table's answer about `name`, of `class`.
    async fn answer(
        &self,
        answer: &str,
        table: &str,
        (name, class): (&str, &str),
        list: List,
        r: &Request<'_>,
        eval: &mut Eval<'_>,
    ) -> Decision {
        let s = &self.settings;
        let mut note = |action: &'static str, default: &str, text: &Option<String>| {
            let text = text.clone().unwrap_or_else(|| default.to_string());
            eval.notes.push(Note {
                action,
                text: format!("<{name}>: {class} {text}"),
            });
        };
        match access::action(answer, s.access_map_reject_code, s.access_map_defer_code) {
            Action::Permit => Decision::Permit,
            Action::Dunno => Decision::Dunno,
            Action::Refuse { code, dsn, text } => Decision::Refuse(Reply::new(
                code,
                format!(
                    "{} <{name}>: {class} rejected: {}",
                    fix_dsn(code, &dsn),
                    text.unwrap_or_else(|| "Access denied".into())
                ),
            )),
            Action::DeferIfPermit(dsn, text) => {
                let text = text.unwrap_or_else(|| "Access denied".into());
                eval.defer_if_permit.get_or_insert_with(|| {
                    Reply::new(
                        s.access_map_defer_code,
                        format!("{} <{name}>: {class} rejected: {text}", fix_dsn(450, &dsn)),
                    )
                });
                Decision::Dunno
            }
            Action::DeferIfReject(dsn, text) => {
                let text = text.unwrap_or_else(|| "Access denied".into());
                eval.defer_if_reject.get_or_insert_with(|| {
                    Reply::new(
                        s.access_map_defer_code,
                        format!("{} <{name}>: {class} rejected: {text}", fix_dsn(450, &dsn)),
                    )
                });
                Decision::Dunno
            }
            Action::Warn(text) => {
                note("warn", "", &Some(text));
                Decision::Dunno
            }
            Action::Info(text) => {
                note("info", "", &Some(text));
                Decision::Dunno
            }
            Action::Hold(text) => {
                note("hold", "triggers HOLD action", &text);
                let text = text.unwrap_or_else(|| "triggers HOLD action".into());
                eval.effects.hold.get_or_insert(text);
                Decision::Dunno
            }
            Action::Discard(text) => {
                note("discard", "triggers DISCARD action", &text);
                let text = text.unwrap_or_else(|| "triggers DISCARD action".into());
                eval.effects.discard.get_or_insert(text);
                Decision::Permit
            }
            Action::Redirect(to) => {
                note("redirect", "", &Some(format!("triggers REDIRECT {to}")));
                eval.effects.redirect = Some(to);
                Decision::Dunno
            }
            Action::Filter(to) => {
                note("filter", "", &Some(format!("triggers FILTER {to}")));
                eval.effects.filter = Some(to);
                Decision::Dunno
            }
            Action::Bcc(to) => {
                note("bcc", "", &Some(format!("triggers BCC {to}")));
                eval.effects.bcc.push(to);
                Decision::Dunno
            }
            Action::Prepend(header) => {
                eval.effects.prepend.push(header);
                Decision::Dunno
            }
            Action::Restrictions(text) => {
                if eval.depth >= DEPTH_MAX {
                    return self.server_error(&format!(
                        "access table {table} entry {answer} causes unreasonable recursion"
                    ));
                }
                let items = crate::config::values::list(&text);
                let raw: BTreeMap<String, Vec<String>> = self
                    .classes
                    .keys()
                    .map(|k| (k.clone(), Vec::new()))
                    .collect();
                let mut ignored = Vec::new();
                let mut no_policy =
                    |_: &str| Err("check_policy_service in a table answer".to_string());
                let words = match word::parse_list(&items, &raw, &mut ignored, &mut no_policy) {
                    Ok(words) if words.iter().all(|w| !matches!(w, Word::Access(..))) => words,
                    Ok(_) => {
                        return self.server_error(&format!(
                            "access table {table} has entry with lookup table: {answer}"
                        ));
                    }
                    Err(e) => {
                        return self
                            .server_error(&format!("access table {table} entry {answer:?}: {e}"));
                    }
                };
                eval.depth += 1;
                let decision = self.run(&words, list, r, eval).await;
                eval.depth -= 1;
                decision
            }
            Action::Broken(why) => self.server_error(&format!("access table {table}: {why}")),
        }
    }

    async fn blocklist(
        &self,
        listed: Listed,
        dnslist: &DnsList,
        r: &Request<'_>,
        eval: &mut Eval<'_>,
    ) -> Decision {
        let (what, class) = match listed {
            Listed::ClientAddress => (
                Some(r.client_addr.to_canonical().to_string()),
                "Client host",
            ),
            Listed::ClientName => (
                Some(r.client_name.to_string()).filter(|n| n != "unknown"),
                "Client host",
            ),
            Listed::ReverseClientName => (
                Some(r.reverse_name.to_string()).filter(|n| n != "unknown"),
                "Unverified Client host",
            ),
            Listed::Helo => (
                r.helo.filter(|h| !h.starts_with('[')).map(str::to_string),
                "Helo command",
            ),
            Listed::SenderDomain => (r.sender.and_then(|a| a.domain_lower()), "Sender address"),
            Listed::RecipientDomain => (r.rcpt.and_then(|a| a.domain_lower()), "Recipient address"),
        };
        let Some(what) = what else {
            return Decision::Dunno;
        };
        let query = match listed {
            Listed::ClientAddress => format!("{}.{}", dns::reversed(r.client_addr), dnslist.domain),
            _ => format!("{}.{}", what.trim_end_matches('.'), dnslist.domain),
        };
        let answers = match dns::list_answers(r.resolver, &query).await {
            dns::Found::Yes(ips) => ips,
            dns::Found::No => return Decision::Dunno,
            dns::Found::Temporary(e) => {
                tracing::warn!(
                    "{}: DNS list {} lookup error for {what}: {e}; taken as not listed",
                    r.client(),
                    dnslist.domain
                );
                return Decision::Dunno;
            }
        };
        let Some(code) = answers
            .iter()
            .find(|ip| word::filter_matches(dnslist.filter.as_deref(), **ip))
        else {
            return Decision::Dunno;
        };
        let reason = dns::list_reason(r.resolver, &query).await;
        let s = &self.settings;
        let template = maps::lookup(&self.rbl_reply_maps, &dnslist.domain)
            .unwrap_or_else(|| s.default_rbl_reply.clone());
        let client = r.client();
        let value = |name: &str| -> Option<String> {
            Some(match name {
                "rbl_code" => s.maps_rbl_reject_code.to_string(),
                "rbl_class" => class.to_string(),
                "rbl_what" => what.clone(),
                "rbl_domain" => dnslist.domain.clone(),
                "rbl_reason" | "rbl_txt" => reason.clone()?,
                "rbl_response" => code.to_string(),
                "client_address" => r.client_addr.to_string(),
                "client_name" => r.client_name.to_string(),
                "reverse_client_name" => r.reverse_name.to_string(),
                "helo_name" => r.helo.unwrap_or("").to_string(),
                "sender" => r.sender.map(|a| a.to_string()).unwrap_or_default(),
                "recipient" => r.rcpt.map(|a| a.to_string()).unwrap_or_default(),
                "client" => client.clone(),
                _ => return None,
            })
        };
        let text = dns::expand(&template, &value);
        let (code_text, rest) = text.split_at(text.find(' ').unwrap_or(text.len()));
        let reply_code: u16 = code_text.parse().unwrap_or(s.maps_rbl_reject_code);
        let rest = rest.trim_start();
        let rest = if rest
            .split(' ')
            .next()
            .is_some_and(|w| w.starts_with(['4', '5']) && w.matches('.').count() == 2)
        {
            rest.to_string()
        } else {
            format!("{} {rest}", fix_dsn(reply_code, "5.7.1"))
        };
        let _ = eval;
        Decision::Refuse(Reply::new(reply_code, rest))
    }
}

/// What Postfix sends a policy server (SMTPD_POLICY_README).
fn policy_request(r: &Request<'_>) -> Vec<(&'static str, String)> {
    let d = &r.details;
    let text = |v: Option<&str>| v.unwrap_or("").to_string();
    let (tls_protocol, tls_cipher, tls_bits) = match d.tls {
        Some(tls) => {
            let protocol = tls.split(' ').next().unwrap_or("");
            let cipher = tls
                .split("with cipher ")
                .nth(1)
                .and_then(|c| c.split(' ').next())
                .unwrap_or("");
            let bits = tls
                .rsplit_once('(')
                .and_then(|(_, b)| b.split('/').next())
                .unwrap_or("0");
            (protocol.to_string(), cipher.to_string(), bits.to_string())
        }
        None => (String::new(), String::new(), "0".to_string()),
    };
    vec![
        ("request", "smtpd_access_policy".into()),
        ("protocol_state", r.stage.command().into()),
        ("protocol_name", d.protocol.into()),
        ("helo_name", text(r.helo)),
        ("queue_id", text(d.queue_id)),
        (
            "sender",
            r.sender.map(|a| a.to_string()).unwrap_or_default(),
        ),
        (
            "recipient",
            r.rcpt.map(|a| a.to_string()).unwrap_or_default(),
        ),
        ("recipient_count", d.recipient_count.to_string()),
        ("client_address", r.client_addr.to_canonical().to_string()),
        ("client_name", r.client_name.into()),
        ("client_port", d.client_port.to_string()),
        ("reverse_client_name", r.reverse_name.into()),
        ("server_address", d.server_address.clone()),
        ("server_port", d.server_port.to_string()),
        ("instance", d.instance.clone()),
        ("sasl_method", text(d.sasl_method)),
        ("sasl_username", text(r.sasl_user)),
        ("sasl_sender", String::new()),
        ("size", d.size.unwrap_or(0).to_string()),
        ("ccert_subject", String::new()),
        ("ccert_issuer", String::new()),
        ("ccert_fingerprint", String::new()),
        ("ccert_pubkey_fingerprint", String::new()),
        ("encryption_protocol", tls_protocol),
        ("encryption_cipher", tls_cipher),
        ("encryption_keysize", tls_bits),
        ("etrn_domain", String::new()),
        ("stress", String::new()),
        ("compatibility_level", "3.6".into()),
        (
            "mail_version",
            format!("postern {}", env!("CARGO_PKG_VERSION")),
        ),
    ]
}

/// The DSN's class follows the reply's code (a 4xx reply has a 4.x.y DSN).
fn fix_dsn(code: u16, dsn: &str) -> String {
    let class = if code >= 500 { '5' } else { '4' };
    let mut out = dsn.to_string();
    if let Some(first) = out.get(..1)
        && (first == "4" || first == "5")
    {
        out.replace_range(..1, &class.to_string());
    }
    out
}

/// A domain with a dot (or an address literal), as Postfix's non-FQDN tests want.
fn fqdn(address: &Address) -> bool {
    address
        .domain
        .as_deref()
        .is_some_and(|d| d.starts_with('[') || d.trim_end_matches('.').contains('.'))
}

/// A HELO name Postfix's `reject_invalid_helo_hostname` takes: a host name
/// (labels of letters, digits, `-` and `_`) or an address literal.
fn valid_helo_name(name: &str) -> bool {
    if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        let inner = inner.strip_prefix("IPv6:").unwrap_or(inner);
        return inner.parse::<IpAddr>().is_ok();
    }
    let name = name.trim_end_matches('.');
    !name.is_empty() && name.len() <= 255 && crate::smtpd::peername::hostname_labels(name)
}

#[cfg(test)]
mod tests;
