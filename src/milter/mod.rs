//! Milters (`smtpd_milters`, `non_smtpd_milters`): the MTA side of the
//! Sendmail milter protocol, version 6 ([`protocol`]). A session talks to
//! each milter in turn, event by event (connect, HELO, MAIL, RCPT, DATA,
//! headers, body, end of message), with the macros Postfix sends
//! (`milter_*_macros`); what they answer is a [`Verdict`], and at the end
//! of a message what they changed is a list of [`Edit`]s cleanup applies.
//!
//! A milter that cannot be reached, answers late (`milter_connect_timeout`,
//! `milter_command_timeout`, `milter_content_timeout`) or says something
//! the protocol does not allow is given up for the session, with a
//! warning, and its `milter_default_action` (tempfail, accept, reject,
//! quarantine) stands in for its answers.

pub mod edit;
pub mod protocol;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::BufReader;

pub use self::edit::Edit;
use self::protocol::{Command, Response, actions, steps};
use crate::config::values;

/// What a milter does when it cannot be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    Accept,
    Reject,
    Tempfail,
    Quarantine,
}

impl DefaultAction {
    fn parse(text: &str) -> Result<DefaultAction, String> {
        match text {
            "accept" => Ok(DefaultAction::Accept),
            "reject" => Ok(DefaultAction::Reject),
            "tempfail" => Ok(DefaultAction::Tempfail),
            "quarantine" => Ok(DefaultAction::Quarantine),
            other => Err(format!(
                "milter_default_action = {other}: accept, reject, tempfail or quarantine"
            )),
        }
    }
}

/// Where a milter is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Inet(String),
    Unix(PathBuf),
}

/// One milter of a list, with its own settings.
#[derive(Clone, Debug)]
pub struct Spec {
    /// As written (`inet:127.0.0.1:8891`), for the log.
    pub name: String,
    pub endpoint: Endpoint,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub content_timeout: Duration,
    pub default_action: DefaultAction,
}

/// The macro names sent before each event (`milter_*_macros`).
#[derive(Clone, Debug, Default)]
pub struct MacroLists {
    pub connect: Vec<String>,
    pub helo: Vec<String>,
    pub mail: Vec<String>,
    pub rcpt: Vec<String>,
    pub data: Vec<String>,
    pub end_of_header: Vec<String>,
    pub end_of_data: Vec<String>,
}

/// A list of milters and what is sent to them.
#[derive(Clone, Debug)]
pub struct Milters {
    pub specs: Vec<Arc<Spec>>,
    pub macros: MacroLists,
}

/// The settings a list of milters is read with.
pub struct Settings<'a> {
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub content_timeout: Duration,
    pub default_action: &'a str,
    pub protocol: u32,
    pub queue_directory: &'a std::path::Path,
    pub macros: MacroLists,
}

impl Milters {
    /// The milters a list names: `inet:host:port`, `unix:/path` (a relative
    /// path is under the queue directory), or `{ inet:host:port,
    /// connect_timeout=10s, default_action=accept, ... }`.
    pub fn new(list: &[String], s: &Settings<'_>) -> Result<Option<Milters>, String> {
        if s.protocol != 6 {
            return Err(format!(
                "milter_protocol = {}: postern speaks version 6",
                s.protocol
            ));
        }
        let mut specs = Vec::new();
        for item in list {
            let inner = item
                .strip_prefix('{')
                .and_then(|i| i.strip_suffix('}'))
                .unwrap_or(item);
            let mut parts = values::list(inner).into_iter();
            let name = parts
                .next()
                .ok_or_else(|| format!("milter {item:?}: no address"))?;
            let endpoint = if let Some(addr) = name.strip_prefix("inet:") {
                Endpoint::Inet(addr.to_string())
            } else if let Some(path) = name.strip_prefix("unix:") {
                Endpoint::Unix(s.queue_directory.join(path))
            } else if name.starts_with('/') {
                Endpoint::Unix(PathBuf::from(&name))
            } else {
                return Err(format!("milter {name:?}: inet:host:port or unix:/path"));
            };
            let mut spec = Spec {
                name: name.clone(),
                endpoint,
                connect_timeout: s.connect_timeout,
                command_timeout: s.command_timeout,
                content_timeout: s.content_timeout,
                default_action: DefaultAction::parse(s.default_action)?,
            };
            for setting in parts {
                let (key, value) = setting
                    .split_once('=')
                    .ok_or_else(|| format!("milter {name}: {setting:?} is not name=value"))?;
                let duration =
                    || values::duration(value).map_err(|e| format!("milter {name}: {key}: {e}"));
                match key {
                    "connect_timeout" => spec.connect_timeout = duration()?,
                    "command_timeout" => spec.command_timeout = duration()?,
                    "content_timeout" => spec.content_timeout = duration()?,
                    "default_action" => spec.default_action = DefaultAction::parse(value)?,
                    "protocol" if value == "6" => {}
                    other => return Err(format!("milter {name}: unknown setting {other:?}")),
                }
            }
            specs.push(Arc::new(spec));
        }
        Ok((!specs.is_empty()).then(|| Milters {
            specs,
            macros: s.macros.clone(),
        }))
    }
}

/// What the milters said of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    /// Refused: `550 5.7.1 Command rejected`, or the milter's own reply.
    Reject(String),
    /// `451 4.7.1 Service unavailable - try again later`, or the milter's.
    Tempfail(String),
    Discard,
    /// Held, and why.
    Quarantine(String),
}

impl Verdict {
    fn is_final(&self) -> bool {
        !matches!(self, Verdict::Continue | Verdict::Quarantine(_))
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Where one milter is in the session.
enum State {
    /// Talking to it; `steps` are what it asked not to be sent or not to
    /// answer.
    Open {
        stream: BufReader<Box<dyn Io>>,
        steps: u32,
    },
    /// It accepted the message (or the session): nothing more for it.
    Done,
    /// Given up: its default action stands in.
    Failed,
}

struct Conn {
    spec: Arc<Spec>,
    state: State,
    /// It accepted the whole session at connect or HELO.
    session_accepted: bool,
    /// Done with this message only.
    message_done: bool,
}

/// The milters of one session (an SMTP session, or one local submission).
pub struct Session {
    conns: Vec<Conn>,
    macros: MacroLists,
    /// Quarantine asked for during this message.
    quarantine: Option<String>,
}

/// How macro values are found.
pub type MacroValue<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

impl Session {
    /// Connects to every milter and negotiates; one that fails is given up
    /// (its default action then applies).
    pub async fn open(milters: &Milters) -> Session {
        let mut conns = Vec::new();
        for spec in &milters.specs {
            let state = match tokio::time::timeout(spec.connect_timeout, negotiate(spec)).await {
                Ok(Ok(state)) => state,
                Ok(Err(e)) => {
                    tracing::warn!(target: "smtpd", "milter {}: {e}", spec.name);
                    State::Failed
                }
                Err(_) => {
                    tracing::warn!(target: "smtpd", "milter {}: can't connect: timeout", spec.name);
                    State::Failed
                }
            };
            conns.push(Conn {
                spec: spec.clone(),
                state,
                session_accepted: false,
                message_done: false,
            });
        }
        Session {
            conns,
            macros: milters.macros.clone(),
            quarantine: None,
        }
    }

    pub async fn connect(
        &mut self,
        host: &str,
        ip: std::net::IpAddr,
        port: u16,
        macros: MacroValue<'_>,
    ) -> Verdict {
        let family = if ip.is_ipv4() { b'4' } else { b'6' };
        let command = Command::Connect {
            host: host.to_string(),
            family,
            port,
            address: ip.to_string(),
        };
        let names = self.macros.connect.clone();
        self.event(
            command,
            steps::NOCONNECT,
            steps::NR_CONN,
            &names,
            macros,
            true,
        )
        .await
    }

    pub async fn helo(&mut self, name: &str, macros: MacroValue<'_>) -> Verdict {
        let names = self.macros.helo.clone();
        self.event(
            Command::Helo(name.into()),
            steps::NOHELO,
            steps::NR_HELO,
            &names,
            macros,
            true,
        )
        .await
    }

    /// MAIL FROM: a new message begins.
    pub async fn mail(&mut self, args: Vec<String>, macros: MacroValue<'_>) -> Verdict {
        for c in &mut self.conns {
            c.message_done = false;
        }
        self.quarantine = None;
        let names = self.macros.mail.clone();
        self.event(
            Command::Mail(args),
            steps::NOMAIL,
            steps::NR_MAIL,
            &names,
            macros,
            false,
        )
        .await
    }

    pub async fn rcpt(&mut self, args: Vec<String>, macros: MacroValue<'_>) -> Verdict {
        let names = self.macros.rcpt.clone();
        self.event(
            Command::Rcpt(args),
            steps::NORCPT,
            steps::NR_RCPT,
            &names,
            macros,
            false,
        )
        .await
    }

    pub async fn data(&mut self, macros: MacroValue<'_>) -> Verdict {
        let names = self.macros.data.clone();
        self.event(
            Command::Data,
            steps::NODATA,
            steps::NR_DATA,
            &names,
            macros,
            false,
        )
        .await
    }

    pub async fn header(&mut self, name: &str, value: &str, macros: MacroValue<'_>) -> Verdict {
        let command = Command::Header {
            name: name.into(),
            value: value.into(),
        };
        self.event(command, steps::NOHDRS, steps::NR_HDR, &[], macros, false)
            .await
    }

    pub async fn end_of_headers(&mut self, macros: MacroValue<'_>) -> Verdict {
        let names = self.macros.end_of_header.clone();
        self.event(
            Command::EndOfHeaders,
            steps::NOEOH,
            steps::NR_EOH,
            &names,
            macros,
            false,
        )
        .await
    }

    /// A body chunk (at most 64 KiB).
    pub async fn body(&mut self, chunk: &[u8], macros: MacroValue<'_>) -> Verdict {
        let mut verdict = Verdict::Continue;
        for piece in chunk.chunks(protocol::CHUNK_MAX) {
            verdict = self
                .event(
                    Command::Body(piece.to_vec()),
                    steps::NOBODY,
                    steps::NR_BODY,
                    &[],
                    macros,
                    false,
                )
                .await;
            if verdict.is_final() {
                break;
            }
        }
        verdict
    }

    /// The end of the message: each milter's last word and its changes.
    pub async fn end_of_message(&mut self, macros: MacroValue<'_>) -> (Verdict, Vec<Edit>) {
        let names = self.macros.end_of_data.clone();
        let mut edits = Vec::new();
        let mut verdict = Verdict::Continue;
        for i in 0..self.conns.len() {
            if self.conns[i].session_accepted || self.conns[i].message_done {
                continue;
            }
            let spec = self.conns[i].spec.clone();
            let said = match &mut self.conns[i].state {
                State::Open { stream, .. } => {
                    let timeout = spec.content_timeout;
                    let exchange = async {
                        send_macros(stream, b'E', &names, macros).await?;
                        protocol::write(stream.get_mut(), &Command::EndOfBody).await?;
                        let mut mine = Vec::new();
                        loop {
                            match protocol::read(stream).await? {
                                Response::Progress => continue,
                                Response::Edit(edit) => mine.push(edit),
                                Response::Quarantine(reason) => mine.push(Edit::Quarantine(reason)),
                                other => return Ok::<_, protocol::ProtocolError>((other, mine)),
                            }
                        }
                    };
                    match tokio::time::timeout(timeout, exchange).await {
                        Ok(Ok(found)) => Some(found),
                        Ok(Err(e)) => {
                            self.fail(i, &format!("end of message: {e}"));
                            None
                        }
                        Err(_) => {
                            self.fail(i, "end of message: timeout");
                            None
                        }
                    }
                }
                _ => None,
            };
            let this = match said {
                Some((response, mine)) => {
                    for edit in mine {
                        match edit {
                            Edit::Quarantine(reason) => self.quarantine = Some(reason),
                            other => edits.push(other),
                        }
                    }
                    self.judge(i, response)
                }
                None => self.default_verdict(i),
            };
            if this.is_final() {
                verdict = this;
                break;
            }
        }
        if verdict == Verdict::Continue
            && let Some(reason) = self.quarantine.take()
        {
            verdict = Verdict::Quarantine(reason);
        }
        (verdict, edits)
    }

    /// The message is over (sent or given up): milters forget it.
    pub async fn abort(&mut self) {
        for c in &mut self.conns {
            c.message_done = false;
            if let State::Open { stream, .. } = &mut c.state {
                let _ = tokio::time::timeout(
                    c.spec.command_timeout,
                    protocol::write(stream.get_mut(), &Command::Abort),
                )
                .await;
            }
        }
        self.quarantine = None;
    }

    /// The session ends.
    pub async fn quit(&mut self) {
        for c in &mut self.conns {
            if let State::Open { stream, .. } = &mut c.state {
                let _ = tokio::time::timeout(
                    c.spec.command_timeout,
                    protocol::write(stream.get_mut(), &Command::Quit),
                )
                .await;
            }
            c.state = State::Done;
        }
    }

    fn fail(&mut self, i: usize, why: &str) {
        let c = &mut self.conns[i];
        tracing::warn!(target: "smtpd", "milter {}: {why}", c.spec.name);
        c.state = State::Failed;
    }

    fn default_verdict(&mut self, i: usize) -> Verdict {
        match self.conns[i].state {
            State::Failed => match self.conns[i].spec.default_action {
                DefaultAction::Accept => Verdict::Continue,
                DefaultAction::Reject => Verdict::Reject("550 5.7.1 Command rejected".into()),
                DefaultAction::Tempfail => {
                    Verdict::Tempfail("451 4.7.1 Service unavailable - try again later".into())
                }
                DefaultAction::Quarantine => {
                    self.quarantine = Some("milter unavailable".into());
                    Verdict::Continue
                }
            },
            _ => Verdict::Continue,
        }
    }

    /// What a milter's answer to an event means.
    fn judge(&mut self, i: usize, response: Response) -> Verdict {
        let c = &mut self.conns[i];
        match response {
            Response::Continue | Response::Skip => Verdict::Continue,
            Response::Accept => {
                c.message_done = true;
                Verdict::Continue
            }
            Response::Discard => Verdict::Discard,
            Response::Reject => Verdict::Reject("550 5.7.1 Command rejected".into()),
            Response::Tempfail => {
                Verdict::Tempfail("451 4.7.1 Service unavailable - try again later".into())
            }
            Response::ReplyCode(text) => reply_code(&text),
            Response::Quarantine(reason) => {
                self.quarantine = Some(reason);
                Verdict::Continue
            }
            other => {
                self.fail(i, &format!("unexpected answer {other:?}"));
                self.default_verdict(i)
            }
        }
    }

    /// Sends one event to every milter that wants it, in order; the first
    /// refusal decides. `session_wide`: an accept then covers the session.
    async fn event(
        &mut self,
        command: Command,
        skip: u32,
        no_reply: u32,
        macro_names: &[String],
        macros: MacroValue<'_>,
        session_wide: bool,
    ) -> Verdict {
        let code = command.code();
        let mut verdict = Verdict::Continue;
        for i in 0..self.conns.len() {
            if self.conns[i].session_accepted || self.conns[i].message_done {
                continue;
            }
            let spec = self.conns[i].spec.clone();
            let answer = match &mut self.conns[i].state {
                State::Open { stream, steps } => {
                    if *steps & skip != 0 {
                        continue;
                    }
                    let wants_reply = *steps & no_reply == 0;
                    let timeout = if matches!(command, Command::Body(_)) {
                        spec.content_timeout
                    } else {
                        spec.command_timeout
                    };
                    // Header values go without their first space, as
                    // Sendmail sends them, unless the milter asked for it.
                    let trimmed;
                    let sent = match &command {
                        Command::Header { name, value } if *steps & steps::HDR_LEADSPC == 0 => {
                            trimmed = Command::Header {
                                name: name.clone(),
                                value: value.strip_prefix(' ').unwrap_or(value).to_string(),
                            };
                            &trimmed
                        }
                        other => other,
                    };
                    let exchange = async {
                        send_macros(stream, code, macro_names, macros).await?;
                        protocol::write(stream.get_mut(), sent).await?;
                        if !wants_reply {
                            return Ok(None);
                        }
                        loop {
                            match protocol::read(stream).await? {
                                Response::Progress => continue,
                                other => return Ok::<_, protocol::ProtocolError>(Some(other)),
                            }
                        }
                    };
                    match tokio::time::timeout(timeout, exchange).await {
                        Ok(Ok(answer)) => Ok(answer),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err("timeout".to_string()),
                    }
                }
                State::Done => continue,
                // A milter given up answers HELO with nothing: its default
                // is for the mail (and was said at connect).
                State::Failed if code == b'H' => continue,
                State::Failed => Err(String::new()),
            };
            let this = match answer {
                Ok(None) => Verdict::Continue,
                Ok(Some(Response::Accept)) if session_wide => {
                    self.conns[i].session_accepted = true;
                    Verdict::Continue
                }
                Ok(Some(response)) => self.judge(i, response),
                Err(why) => {
                    if !why.is_empty() {
                        self.fail(i, &format!("{} event: {why}", code as char));
                    }
                    self.default_verdict(i)
                }
            };
            if this.is_final() {
                verdict = this;
                break;
            }
        }
        verdict
    }
}

/// A milter's `NNN x.y.z text`, checked.
fn reply_code(text: &str) -> Verdict {
    let code = text.get(..3).and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(c) if (500..600).contains(&c) => Verdict::Reject(text.to_string()),
        Some(c) if (400..500).contains(&c) => Verdict::Tempfail(text.to_string()),
        _ => {
            tracing::warn!(target: "smtpd", "milter reply code {text:?} is not 4xx or 5xx; taken as tempfail");
            Verdict::Tempfail("451 4.7.1 Service unavailable - try again later".into())
        }
    }
}

async fn send_macros(
    stream: &mut BufReader<Box<dyn Io>>,
    code: u8,
    names: &[String],
    value: MacroValue<'_>,
) -> Result<(), protocol::ProtocolError> {
    if names.is_empty() {
        return Ok(());
    }
    let pairs: Vec<(String, String)> = names
        .iter()
        .filter_map(|n| value(n.trim_matches(['{', '}'])).map(|v| (n.clone(), v)))
        .collect();
    if pairs.is_empty() {
        return Ok(());
    }
    protocol::write(
        stream.get_mut(),
        &Command::Macros {
            for_command: code,
            pairs,
        },
    )
    .await?;
    Ok(())
}

async fn negotiate(spec: &Spec) -> Result<State, String> {
    let stream: Box<dyn Io> = match &spec.endpoint {
        Endpoint::Inet(addr) => Box::new(
            tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("can't connect: {e}"))?,
        ),
        Endpoint::Unix(path) => Box::new(
            tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| format!("can't connect: {e}"))?,
        ),
    };
    let mut stream = BufReader::new(stream);
    let offer = Command::OptNeg {
        version: protocol::VERSION,
        actions: actions::ALL,
        steps: steps::ALL,
    };
    protocol::write(stream.get_mut(), &offer)
        .await
        .map_err(|e| e.to_string())?;
    match protocol::read(&mut stream)
        .await
        .map_err(|e| e.to_string())?
    {
        Response::OptNeg { version, steps, .. } if version >= 2 => Ok(State::Open {
            stream,
            steps: steps & protocol::steps::ALL,
        }),
        other => Err(format!("bad negotiation answer {other:?}")),
    }
}

impl Milters {
    /// `smtpd_milters` (or, with `local`, `non_smtpd_milters`) and the
    /// milter_* settings of a configuration; `None` when the list is empty.
    pub fn from_config(
        config: &crate::config::Config,
        local: bool,
    ) -> Result<Option<Milters>, String> {
        let list = if local {
            &config.non_smtpd_milters
        } else {
            &config.smtpd_milters
        };
        Milters::new(
            list,
            &Settings {
                connect_timeout: config.milter_connect_timeout,
                command_timeout: config.milter_command_timeout,
                content_timeout: config.milter_content_timeout,
                default_action: &config.milter_default_action,
                protocol: config.milter_protocol,
                queue_directory: &config.queue_directory,
                macros: MacroLists {
                    connect: config.milter_connect_macros.clone(),
                    helo: config.milter_helo_macros.clone(),
                    mail: config.milter_mail_macros.clone(),
                    rcpt: config.milter_rcpt_macros.clone(),
                    data: config.milter_data_macros.clone(),
                    end_of_header: config.milter_end_of_header_macros.clone(),
                    end_of_data: config.milter_end_of_data_macros.clone(),
                },
            },
        )
        .map_err(|e| {
            format!(
                "{}: {e}",
                if local {
                    "non_smtpd_milters"
                } else {
                    "smtpd_milters"
                }
            )
        })
    }
}

/// What message content is to milters: header events, then body chunks.
#[derive(Debug, PartialEq, Eq)]
pub enum Part {
    Header(String, String),
    EndOfHeaders,
    Body(Vec<u8>),
}

/// Turns message content, as it arrives, into [`Part`]s: headers are
/// collected (up to `limit` bytes; past it the rest is body), unfolded
/// into name and value (folds kept as LF, as Postfix sends them).
pub struct Feed {
    header: Vec<u8>,
    in_body: bool,
    limit: usize,
}

impl Feed {
    pub fn new(limit: usize) -> Feed {
        Feed {
            header: Vec::new(),
            in_body: false,
            limit,
        }
    }

    /// The parts `bytes` completes.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Part> {
        if self.in_body {
            return if bytes.is_empty() {
                Vec::new()
            } else {
                vec![Part::Body(bytes.to_vec())]
            };
        }
        self.header.extend_from_slice(bytes);
        let end = if self.header.starts_with(b"\r\n") {
            Some((0, 2))
        } else {
            self.header
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|i| (i + 2, i + 4))
        };
        let (fields_end, body_start) = match end {
            Some(found) => found,
            None if self.header.len() > self.limit => (self.header.len(), self.header.len()),
            None => return Vec::new(),
        };
        self.in_body = true;
        let mut parts = headers(&self.header[..fields_end]);
        parts.push(Part::EndOfHeaders);
        let rest = self.header[body_start..].to_vec();
        self.header = Vec::new();
        if !rest.is_empty() {
            parts.push(Part::Body(rest));
        }
        parts
    }

    /// The end of the content: what is left.
    pub fn finish(&mut self) -> Vec<Part> {
        if self.in_body {
            return Vec::new();
        }
        self.in_body = true;
        let mut parts = headers(&std::mem::take(&mut self.header));
        parts.push(Part::EndOfHeaders);
        parts
    }
}

fn headers(block: &[u8]) -> Vec<Part> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in block.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(line);
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some((_, value)) = out.last_mut() {
                value.push('\n');
                value.push_str(&text);
            }
            continue;
        }
        match text.split_once(':') {
            Some((name, value)) => out.push((name.trim_end().to_string(), value.to_string())),
            None => out.push((text.into_owned(), String::new())),
        }
    }
    out.into_iter().map(|(n, v)| Part::Header(n, v)).collect()
}

impl Session {
    /// A whole message at once (a local submission): connect and HELO as
    /// `localhost`, the envelope, the content, the end. What the milters
    /// decided, and their changes.
    pub async fn whole_message(
        &mut self,
        sender: &str,
        recipients: &[String],
        content: &[u8],
        header_limit: usize,
        macros: MacroValue<'_>,
    ) -> (Verdict, Vec<Edit>) {
        let localhost = std::net::IpAddr::from([127, 0, 0, 1]);
        for verdict in [
            self.connect("localhost", localhost, 0, macros).await,
            self.helo("localhost", macros).await,
            self.mail(vec![format!("<{sender}>")], macros).await,
        ] {
            if verdict.is_final() {
                return (verdict, Vec::new());
            }
        }
        for rcpt in recipients {
            let verdict = self.rcpt(vec![format!("<{rcpt}>")], macros).await;
            if verdict.is_final() {
                return (verdict, Vec::new());
            }
        }
        let verdict = self.data(macros).await;
        if verdict.is_final() {
            return (verdict, Vec::new());
        }
        let mut feed = Feed::new(header_limit);
        let mut parts = feed.feed(content);
        parts.extend(feed.finish());
        for part in parts {
            let verdict = match part {
                Part::Header(name, value) => self.header(&name, &value, macros).await,
                Part::EndOfHeaders => self.end_of_headers(macros).await,
                Part::Body(chunk) => self.body(&chunk, macros).await,
            };
            if verdict.is_final() {
                return (verdict, Vec::new());
            }
        }
        let result = self.end_of_message(macros).await;
        self.quit().await;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_into_parts() {
        let mut feed = Feed::new(1000);
        assert!(feed.feed(b"Subject: a\r\n folded\r\nFrom: x").is_empty());
        let parts = feed.feed(b"@y\r\n\r\nbody\r\n");
        assert_eq!(
            parts,
            vec![
                Part::Header("Subject".into(), " a\n folded".into()),
                Part::Header("From".into(), " x@y".into()),
                Part::EndOfHeaders,
                Part::Body(b"body\r\n".to_vec()),
            ]
        );
        assert_eq!(feed.feed(b"more"), vec![Part::Body(b"more".to_vec())]);
        let mut headless = Feed::new(1000);
        assert_eq!(headless.feed(b"Subject: only"), vec![]);
        assert_eq!(
            headless.finish(),
            vec![
                Part::Header("Subject".into(), " only".into()),
                Part::EndOfHeaders
            ]
        );
    }
}
