//! cleanup — canonicalize and enqueue messages.
//!
//! DESCRIPTION
//!   Receivers (smtpd now; qmqpd and pickup later) open a message through
//!   [`CleanupHandle::open`], stream its content into the returned
//!   [`CleanupMessage`] and hand it back with [`CleanupHandle::commit`].
//!   Cleanup qualifies unqualified envelope addresses with `@$myorigin`,
//!   drops duplicate recipients, prepends `Received:`, adds `Message-Id:`,
//!   `Date:` and `From:` when missing, removes `Bcc:` for local submissions
//!   (as Postfix does), and writes the queue file. The commit (sync, rename
//!   into the spool, queue state) is the cleanup actor's job; it runs on the
//!   blocking pool so many commits proceed at once.
//!
//! LOGGING
//!   `QUEUEID: message-id=<...>`; qmgr logs `from=<...>, size=N, nrcpt=N
//!   (queue active)` when it takes the message up.
//!
//! PARAMETERS
//!   `myhostname`, `myorigin`, `mail_name`, `header_size_limit`.
//!
//! FAILURES
//!   A write or sync error fails the commit; the receiver answers 4xx and
//!   the partial file is removed. A panic in the actor is restarted by the
//!   supervisor; a commit that was in flight is lost before its `250`, so
//!   the client retries.

pub mod address;
pub mod capture;
pub mod checks;
pub mod headers;
pub mod message;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use actix::{Actor, Context, Handler, Message, ResponseFuture};

pub use message::{CleanupMessage, Overrides, Preset};

use crate::config::Config;
use crate::mail::{Envelope, QueueId, Recipient};
use crate::maps::MapError;
use crate::rewrite::Rewrite;
use crate::role::exit::ExitGuard;
use crate::role::handle::{RoleError, RoleHandle};
use crate::role::lane::Lane;
use crate::role::{Fault, StopRole};
use crate::store::{Finished, QueueName, Store, StoreError};
use headers::HeaderInfo;
use message::Additions;

#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("queue file write error: {0}")]
    Write(std::io::Error),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Role(#[from] RoleError),
    #[error("the cleanup instance handling the message stopped")]
    Lost,
    /// A header or body check said REJECT: the text of the 550 reply.
    #[error("{0}")]
    Rejected(String),
    /// Virtual alias expansion went past a limit: try again later.
    #[error("{0}")]
    Expansion(#[from] address::ExpansionError),
}

impl CleanupError {
    /// A refusal by policy (a header or body check), logged where it was
    /// decided, rather than a fault.
    pub fn is_refusal(&self) -> bool {
        matches!(self, CleanupError::Rejected(_))
    }

    /// The reply a receiver gives for this failure.
    pub fn reply_text(&self) -> (u16, String) {
        match self {
            CleanupError::Rejected(text) => return (550, text.clone()),
            CleanupError::Expansion(_) => return (451, "4.6.0 Alias expansion error".into()),
            _ => {}
        }
        let no_space = match self {
            CleanupError::Write(e) => {
                matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
            }
            CleanupError::Store(e) => e.is_no_space(),
            _ => false,
        };
        if no_space {
            (452, "4.3.1 Insufficient system storage".into())
        } else {
            (451, "4.3.0 Error: queue file write error".into())
        }
    }
}

/// Where a message was submitted; decides the header rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Received over the network.
    Smtp,
    /// Local submission (sendmail, pickup): `Bcc:` is removed.
    Local,
    /// Made by postern itself (bounces): no client to name.
    Internal,
}

/// The slice of configuration cleanup reads, with its tables open.
pub struct CleanupConfig {
    pub myhostname: String,
    pub myorigin: String,
    pub mail_name: String,
    pub header_size_limit: usize,
    pub body_checks_size_limit: usize,
    /// trivial-rewrite, shared with smtpd's recipient checks.
    pub rewrite: Arc<Rewrite>,
    pub addresses: address::AddressRewriter,
    pub checks: checks::Checks,
    /// `content_filter` for local submissions (smtpd's services set their own).
    pub content_filter: Option<String>,
    /// `non_smtpd_milters`, for local submissions.
    pub milters: Option<Arc<crate::milter::Milters>>,
    /// The names a milter's macros give for local mail.
    pub milter_daemon_name: String,
    pub milter_v: String,
    /// Capture mode, when it is on.
    pub capture: Option<capture::Capture>,
}

impl CleanupConfig {
    /// Opens the tables the configuration names.
    pub fn from_config(config: &Config) -> Result<CleanupConfig, MapError> {
        let rewrite = Arc::new(Rewrite::new(config)?);
        Ok(CleanupConfig {
            myhostname: config.myhostname.clone(),
            myorigin: config.myorigin.clone(),
            mail_name: config.mail_name.clone(),
            header_size_limit: config.header_size_limit,
            body_checks_size_limit: config.body_checks_size_limit,
            addresses: address::AddressRewriter::new(config, rewrite.clone())?,
            rewrite,
            checks: checks::Checks {
                header: crate::maps::open_list(&config.header_checks)?,
                body: crate::maps::open_list(&config.body_checks)?,
            },
            content_filter: (!config.content_filter.is_empty())
                .then(|| config.content_filter.clone()),
            milters: crate::milter::Milters::from_config(config, true)
                .map_err(|e| MapError::Syntax("non_smtpd_milters".into(), e))?
                .map(Arc::new),
            milter_daemon_name: config.milter_macro_daemon_name.clone(),
            milter_v: config.milter_macro_v.clone(),
            capture: capture::Capture::from_config(config)
                .map_err(|e| MapError::Syntax("capture_mailbox_by".into(), e))?,
        })
    }
}

/// The cleanup actor: commits finished queue files.
pub struct Cleanup {
    store: Arc<Store>,
    guard: ExitGuard,
    /// Commits waiting for the store: one trip to the blocking pool, and
    /// one journal sync, for all that wait.
    lane: Lane<Committing>,
}

impl Cleanup {
    pub fn new(store: Arc<Store>, guard: ExitGuard) -> Cleanup {
        Cleanup {
            store,
            guard,
            lane: Lane::default(),
        }
    }
}

/// A commit in the lane, and where its outcome goes.
struct Committing {
    job: Job,
    done: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
}

impl Actor for Cleanup {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.guard.normal();
    }
}

struct Job {
    envelope: Envelope,
    finished: Finished,
    info: HeaderInfo,
    queue: QueueName,
}

/// Commit a finished message. The job sits in a shared slot so that a
/// retry after a restart can tell whether a dead instance had taken it.
#[derive(Message)]
#[rtype(result = "Result<QueueId, CleanupError>")]
struct Commit(Arc<Mutex<Option<Job>>>);

impl Handler<Commit> for Cleanup {
    type Result = ResponseFuture<Result<QueueId, CleanupError>>;

    fn handle(&mut self, msg: Commit, _ctx: &mut Context<Self>) -> Self::Result {
        let job = msg.0.lock().ok().and_then(|mut slot| slot.take());
        let store = self.store.clone();
        let lane = self.lane.clone();
        Box::pin(async move {
            let job = job.ok_or(CleanupError::Lost)?;
            let id = job.envelope.queue_id.clone();
            let message_id = job.info.message_id.clone();
            let (done, outcome) = tokio::sync::oneshot::channel();
            let runner = lane.push(Committing { job, done }, move |batch| {
                commit_batch(&store, batch)
            });
            if let Some(runner) = runner {
                tokio::spawn(runner);
            }
            outcome
                .await
                .map_err(|e| CleanupError::Write(std::io::Error::other(e.to_string())))??;
            tracing::info!("{id}: message-id={message_id}");
            Ok(id)
        })
    }
}

/// Commits what waits in the lane, and tells each its outcome.
fn commit_batch(store: &Store, batch: Vec<Committing>) {
    let mut replies = Vec::with_capacity(batch.len());
    let mut files = Vec::with_capacity(batch.len());
    let mut envelopes = Vec::with_capacity(batch.len());
    for Committing { job, done } in batch {
        replies.push(done);
        files.push(job.finished);
        envelopes.push((job.envelope, job.queue));
    }
    let outcomes = store.commit_many(
        files
            .into_iter()
            .zip(&envelopes)
            .map(|(finished, (envelope, queue))| (finished, envelope, *queue))
            .collect(),
    );
    for (done, outcome) in replies.into_iter().zip(outcomes) {
        let _ = done.send(outcome.map(|_| ()));
    }
}

impl Handler<StopRole> for Cleanup {
    type Result = ();
    fn handle(&mut self, _msg: StopRole, ctx: &mut Context<Self>) {
        use actix::ActorContext;
        ctx.stop();
    }
}

impl Handler<Fault> for Cleanup {
    type Result = ();
    fn handle(&mut self, _msg: Fault, _ctx: &mut Context<Self>) {
        panic!("fault injected into cleanup");
    }
}

/// How receivers reach cleanup.
#[derive(Clone)]
pub struct CleanupHandle {
    role: RoleHandle<Cleanup>,
    store: Arc<Store>,
    /// Swapped on reload; sessions that began before keep what they read.
    config: Arc<std::sync::RwLock<Arc<CleanupConfig>>>,
    /// Told of every committed message.
    arrivals: crate::role::trigger::Arrivals,
}

impl CleanupHandle {
    pub fn new(
        role: RoleHandle<Cleanup>,
        store: Arc<Store>,
        config: Arc<CleanupConfig>,
        arrivals: crate::role::trigger::Arrivals,
    ) -> CleanupHandle {
        CleanupHandle {
            role,
            store,
            config: Arc::new(std::sync::RwLock::new(config)),
            arrivals,
        }
    }

    /// Starts a message: canonicalizes the envelope and creates its queue file.
    pub async fn open(
        &self,
        envelope: Envelope,
        source: Source,
    ) -> Result<CleanupMessage, CleanupError> {
        self.open_with(envelope, source, Overrides::default()).await
    }

    /// The same, with what the receiving service turns off.
    pub async fn open_with(
        &self,
        mut envelope: Envelope,
        source: Source,
        overrides: Overrides,
    ) -> Result<CleanupMessage, CleanupError> {
        let c = self.config();
        let qualified = envelope.sender.qualified(&c.myorigin);
        envelope.sender = if overrides.no_address_mappings {
            qualified
        } else {
            c.addresses
                .address(&qualified, address::Role::EnvelopeSender)
        };
        let mut seen = HashSet::new();
        let mut recipients = Vec::with_capacity(envelope.recipients.len());
        for r in std::mem::take(&mut envelope.recipients) {
            let original = r.address.qualified(&c.myorigin);
            let mapped = if overrides.no_address_mappings {
                vec![original.clone()]
            } else {
                let canonical = c
                    .addresses
                    .address(&original, address::Role::EnvelopeRecipient);
                c.addresses.virtual_alias(&canonical)?
            };
            for address in mapped {
                if !seen.insert(address.to_string().to_ascii_lowercase()) {
                    continue;
                }
                // The address the sender gave stays on record for the
                // logs' orig_to and the DSN's Original-Recipient.
                let orcpt = r
                    .orcpt
                    .clone()
                    .or_else(|| (address != original).then(|| format!("rfc822;{original}")));
                recipients.push(Recipient {
                    address,
                    notify: r.notify,
                    orcpt,
                });
            }
        }
        envelope.recipients = recipients;
        let now = chrono::Local::now();
        let id = envelope.queue_id.clone();
        let client = &envelope.client;
        let helo = client
            .helo
            .as_deref()
            .map(clean)
            .unwrap_or_else(|| client.name.clone());
        let for_clause = match envelope.recipients.as_slice() {
            [only] => format!("\r\n\tfor <{}>", clean(&only.address.to_string())),
            _ => String::new(),
        };
        let date = now.format("%a, %d %b %Y %H:%M:%S %z").to_string();
        let received = if source == Source::Internal {
            format!(
                "Received: by {} ({}) id {id};\r\n\t{date}\r\n",
                c.myhostname, c.mail_name
            )
        } else if source == Source::Local {
            let uid = client.uid.unwrap_or(0);
            format!(
                "Received: by {} ({}, from userid {uid})\r\n\tid {id}{for_clause};\r\n\t{date}\r\n",
                c.myhostname, c.mail_name
            )
        } else {
            let mut tls = match &client.tls {
                Some(tls) if client.disclose.tls => format!("\r\n\t(using {})", clean(tls)),
                _ => String::new(),
            };
            if let Some((_, user)) = client.sasl.as_ref().filter(|_| client.disclose.sasl) {
                tls.push_str(&format!("\r\n\t(Authenticated sender: {})", clean(user)));
            }
            format!(
                "Received: from {helo} ({} [{}]){tls}\r\n\tby {} ({}) with {} id {id}{for_clause};\r\n\t{date}\r\n",
                client.name,
                client.addr,
                c.myhostname,
                c.mail_name,
                client.with_word()
            )
        };
        let from = if envelope.sender.is_null() {
            "MAILER-DAEMON".to_string()
        } else {
            clean(&envelope.sender.to_string())
        };
        let additions = Additions {
            received,
            strip_bcc: source == Source::Local,
            message_id: format!("<{}.{id}@{}>", now.format("%Y%m%d%H%M%S"), c.myhostname),
            date,
            from,
        };
        let log = checks::LogContext {
            queue_id: id.to_string(),
            client: crate::mail::maillog::client(&client.name, &client.addr),
            from: envelope.sender.to_string(),
            to: envelope
                .recipients
                .first()
                .map(|r| r.address.to_string())
                .unwrap_or_default(),
            proto: client.protocol.clone(),
            helo: client.helo.clone().unwrap_or_default(),
        };
        let tmp_path = self.store.tmp_path(&id);
        Ok(CleanupMessage::new(
            envelope, c, tmp_path, additions, log, overrides,
        ))
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<CleanupConfig> {
        self.config
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// trivial-rewrite as configured now (smtpd's recipient checks).
    pub fn rewrite(&self) -> Arc<Rewrite> {
        self.config().rewrite.clone()
    }

    /// Puts a new configuration in force for messages opened from now on.
    pub fn set_config(&self, config: Arc<CleanupConfig>) {
        if let Ok(mut current) = self.config.write() {
            *current = config;
        }
    }

    /// Ends the message and makes it durable; returns its queue ID.
    pub async fn commit(&self, message: CleanupMessage) -> Result<QueueId, CleanupError> {
        self.commit_edited(message, &[]).await
    }

    /// The same, with what milters changed applied first: header edits,
    /// a new body, recipients added or removed, a new sender. The queue
    /// file is written again for that.
    pub async fn commit_edited(
        &self,
        message: CleanupMessage,
        edits: &[crate::milter::Edit],
    ) -> Result<QueueId, CleanupError> {
        let (mut envelope, mut finished, info, verdict) =
            message.finish().await.map_err(CleanupError::Write)?;
        if !edits.is_empty() && verdict.reject.is_none() && !verdict.discard {
            finished = self
                .apply_edits(&mut envelope, finished, edits)
                .await
                .map_err(CleanupError::Write)?;
        }
        if let Some(text) = verdict.reject {
            return Err(CleanupError::Rejected(text));
        }
        if verdict.discard {
            // Accepted and dropped: the unfinished file removes itself.
            return Ok(envelope.queue_id);
        }
        let mut queue = if verdict.hold {
            QueueName::Hold
        } else {
            QueueName::Incoming
        };
        if let Some(capture) = self.config().capture.clone() {
            let (released, kept): (Vec<Recipient>, Vec<Recipient>) = envelope
                .recipients
                .iter()
                .cloned()
                .partition(|r| capture.is_released(r));
            if !kept.is_empty() {
                let content =
                    crate::store::WholeContent(finished.content().map_err(CleanupError::Write)?);
                if !released.is_empty() {
                    // Split: the released recipients' copy goes on.
                    let mut copy = envelope.clone();
                    copy.queue_id = QueueId::generate();
                    copy.recipients = released;
                    let path = self.store.tmp_path(&copy.queue_id);
                    let written = write_queue_file(path, &copy, &[&content])
                        .await
                        .map_err(CleanupError::Write)?;
                    tracing::info!(
                        "{}: capture_release_domains: {} recipient(s) go on as {}",
                        envelope.queue_id,
                        copy.recipients.len(),
                        copy.queue_id
                    );
                    self.enqueue(copy, written, info.clone(), QueueName::Incoming)
                        .await?;
                }
                envelope.recipients = kept;
                let (section, _) = crate::mail::header::split_entity(&content);
                let mailbox = capture.mailbox(&envelope, section);
                envelope.captured = Some(mailbox.clone());
                let path = finished.path_with_suffix("captured");
                drop(finished);
                finished = write_queue_file(path, &envelope, &[&content])
                    .await
                    .map_err(CleanupError::Write)?;
                tracing::info!(
                    "{}: captured: mailbox={mailbox}, nrcpt={}",
                    envelope.queue_id,
                    envelope.recipients.len()
                );
                crate::metrics::count(crate::metrics::Event::Captured);
                queue = QueueName::Hold;
            }
        }
        self.enqueue(envelope, finished, info, queue).await
    }

    /// A copy of a queued message for other recipients (a captured
    /// message released to an address typed in): a new queue file, into
    /// `incoming`, past capture mode.
    pub async fn resend(
        &self,
        mut envelope: Envelope,
        recipients: Vec<crate::mail::Address>,
        content: &[u8],
    ) -> Result<QueueId, CleanupError> {
        envelope.queue_id = QueueId::generate();
        envelope.arrival_time = chrono::Utc::now().timestamp();
        envelope.captured = None;
        envelope.recipients = recipients
            .into_iter()
            .map(|address| Recipient {
                address,
                notify: None,
                orcpt: None,
            })
            .collect();
        let path = self.store.tmp_path(&envelope.queue_id);
        let finished = write_queue_file(path, &envelope, &[content])
            .await
            .map_err(CleanupError::Write)?;
        let info = HeaderInfo {
            message_id: capture::header_value(
                crate::mail::header::split_entity(content).0,
                "message-id",
            )
            .unwrap_or_default(),
        };
        self.enqueue(envelope, finished, info, QueueName::Incoming)
            .await
    }

    /// Commits a written queue file into `queue`; announces it to qmgr
    /// when it is to be delivered.
    async fn enqueue(
        &self,
        envelope: Envelope,
        finished: Finished,
        info: HeaderInfo,
        queue: QueueName,
    ) -> Result<QueueId, CleanupError> {
        let slot = Arc::new(Mutex::new(Some(Job {
            envelope,
            finished,
            info,
            queue,
        })));
        let id = self.role.send(|| Commit(slot.clone())).await??;
        if queue == QueueName::Incoming {
            self.arrivals.announce(id.clone());
        }
        Ok(id)
    }
}

/// Writes a queue file of `envelope` and the content in `pieces`.
async fn write_queue_file(
    path: std::path::PathBuf,
    envelope: &Envelope,
    pieces: &[&[u8]],
) -> std::io::Result<Finished> {
    let mut draft = crate::store::Draft::create(path, envelope).await?;
    for piece in pieces {
        draft.write(piece).await?;
    }
    draft.finish().await
}

impl CleanupHandle {
    /// Writes the queue file again with milters' edits.
    async fn apply_edits(
        &self,
        envelope: &mut Envelope,
        finished: Finished,
        edits: &[crate::milter::Edit],
    ) -> std::io::Result<Finished> {
        use crate::mail::Address;
        use crate::milter::Edit;
        let content = finished.content()?;
        let (header, body) = crate::mail::header::split_entity(&content);
        let header_edits: Vec<Edit> = edits.iter().filter(|e| e.is_header()).cloned().collect();
        let new_header = crate::milter::edit::apply_to_header(header, &header_edits);
        let mut new_body: Option<Vec<u8>> = None;
        let myorigin = self.config().myorigin.clone();
        let address = |text: &str| {
            let text = text.trim();
            let inner = text.trim_start_matches('<').trim_end_matches('>');
            Address::parse_mailbox(inner)
                .ok()
                .map(|a| a.qualified(&myorigin))
        };
        for edit in edits {
            match edit {
                Edit::ReplaceBody(piece) => new_body
                    .get_or_insert_with(Vec::new)
                    .extend_from_slice(piece),
                Edit::AddRcpt(rcpt) => {
                    if let Some(a) = address(rcpt) {
                        envelope.recipients.push(Recipient {
                            address: a,
                            notify: None,
                            orcpt: None,
                        });
                    }
                }
                Edit::DelRcpt(rcpt) => {
                    if let Some(a) = address(rcpt) {
                        let gone = a.to_string().to_ascii_lowercase();
                        envelope
                            .recipients
                            .retain(|r| r.address.to_string().to_ascii_lowercase() != gone);
                    }
                }
                Edit::ChangeFrom(from) => {
                    let inner = from.trim().trim_start_matches('<').trim_end_matches('>');
                    if inner.is_empty() {
                        envelope.sender = Address::null();
                    } else if let Some(a) = address(from) {
                        envelope.sender = a;
                    }
                }
                _ => {}
            }
        }
        let path = finished.path_with_suffix("edited");
        drop(finished);
        // The blank line stays between the header and the body.
        let body = new_body.as_deref().unwrap_or(body);
        write_queue_file(path, envelope, &[&new_header, b"\r\n", body]).await
    }
}

/// Text safe inside a header: printable, no CR/LF.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
