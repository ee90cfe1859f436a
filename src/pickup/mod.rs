//! pickup — take in mail from the maildrop.
//!
//! DESCRIPTION
//!   The sendmail command leaves messages in `maildrop/` (it needs no
//!   daemon). pickup checks each file (a damaged one is moved to `corrupt/`
//!   with a warning, never lost silently), hands the message to cleanup as
//!   a local submission (`Bcc:` removed, a `Received: ... from userid N`
//!   header), and removes the maildrop file once the queue file is durable.
//!   It looks when told (the sendmail command pokes it through the control
//!   socket) and every second.
//!
//! LOGGING
//!   `QUEUEID: uid=N from=<sender>`.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::cleanup::{CleanupHandle, Source};
use crate::mail::QueueId;
use crate::store::{QueueFile, maildrop};

/// How often the maildrop is looked at without a poke.
const SCAN_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct PickupDeps {
    pub queue_directory: PathBuf,
    pub cleanup: CleanupHandle,
    /// Poked when the sendmail command has left a file.
    pub poke: Arc<Notify>,
    /// For returning what a milter refuses.
    pub bounce: crate::bounce::BounceConfig,
}

/// Serves until `stop` turns true.
pub async fn serve(deps: PickupDeps, mut stop: watch::Receiver<bool>) -> Result<(), String> {
    loop {
        take_in(&deps).await;
        tokio::select! {
            _ = tokio::time::sleep(SCAN_INTERVAL) => {}
            _ = deps.poke.notified() => {}
            _ = stop.changed() => return Ok(()),
        }
    }
}

async fn take_in(deps: &PickupDeps) {
    let queue_directory = deps.queue_directory.clone();
    let names = match tokio::task::spawn_blocking(move || maildrop::waiting(&queue_directory)).await
    {
        Ok(Ok(names)) => names,
        Ok(Err(e)) => {
            tracing::warn!("maildrop: {e}");
            return;
        }
        Err(_) => return,
    };
    for name in names {
        if let Err(e) = take_one(deps, &name).await {
            tracing::warn!("{name}: {e}");
        }
    }
}

async fn take_one(deps: &PickupDeps, name: &str) -> Result<(), String> {
    let path = maildrop::dir(&deps.queue_directory).join(name);
    let corrupt = deps.queue_directory.join("corrupt").join(name);
    let read_path = path.clone();
    let read = tokio::task::spawn_blocking(move || {
        // Anyone may drop files here: only a plain file with one link is
        // taken, and its owner is who submitted it.
        let meta = std::fs::symlink_metadata(&read_path).map_err(|e| e.to_string())?;
        if !meta.file_type().is_file() || std::os::unix::fs::MetadataExt::nlink(&meta) != 1 {
            return Err("not a plain file with one link".to_string());
        }
        let uid = std::os::unix::fs::MetadataExt::uid(&meta);
        let mut file = QueueFile::open(&read_path).map_err(|e| e.to_string())?;
        file.verify().map_err(|e| e.to_string())?;
        let mut content = Vec::with_capacity(usize::try_from(file.content_len).unwrap_or(0));
        file.content()
            .map_err(|e| e.to_string())?
            .read_to_end(&mut content)
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((uid, file.envelope, content))
    })
    .await
    .map_err(|e| e.to_string())?;
    let (uid, mut envelope, content) = match read {
        Ok(found) => found,
        Err(why) => {
            std::fs::rename(&path, &corrupt).map_err(|e| format!("moving to corrupt: {e}"))?;
            tracing::warn!("{name}: damaged maildrop file moved to corrupt: {why}");
            return Ok(());
        }
    };
    envelope.queue_id = QueueId::generate();
    envelope.arrival_time = chrono::Utc::now().timestamp();
    // What the file says about its origin is believed only from the
    // queue's owner; anyone else is the owner of the file, submitting
    // locally, and cannot route around the tables (filter).
    // SAFETY: geteuid has no preconditions.
    let own = uid == unsafe { libc::geteuid() };
    // The file's own word on routing is not taken; content_filter is.
    envelope.filter = deps.cleanup.config().content_filter.clone();
    if !own {
        envelope.client = crate::mail::ClientInfo::local(Some(uid));
    }
    envelope.client.uid = Some(envelope.client.uid.unwrap_or(uid));
    let id = envelope.queue_id.clone();
    let sender = envelope.sender.clone();
    let user = envelope.client.uid.unwrap_or(uid);
    let (hold, edits) = match milters(deps, &envelope, &content, &path).await? {
        Some(passed) => passed,
        // Refused, dropped, or to be tried again: said and done.
        None => return Ok(()),
    };
    let mut message = deps
        .cleanup
        .open(envelope, Source::Local)
        .await
        .map_err(|e| e.to_string())?;
    message.write(&content).await.map_err(|e| e.to_string())?;
    if hold {
        message.preset(crate::cleanup::Preset {
            hold: true,
            ..Default::default()
        });
    }
    tracing::info!("{id}: uid={user} from=<{sender}>");
    deps.cleanup
        .commit_edited(message, &edits)
        .await
        .map_err(|e| e.to_string())?;
    std::fs::remove_file(&path).map_err(|e| format!("removing the maildrop file: {e}"))?;
    Ok(())
}

/// `non_smtpd_milters` on a local submission: whether it is held and the
/// milters' changes, or `None` when they refused it (returned to the
/// sender), dropped it, or want it again later (left in the maildrop).
async fn milters(
    deps: &PickupDeps,
    envelope: &crate::mail::Envelope,
    content: &[u8],
    path: &std::path::Path,
) -> Result<Option<(bool, Vec<crate::milter::Edit>)>, String> {
    use crate::milter::Verdict;
    let config = deps.cleanup.config();
    let Some(milters) = config.milters.clone() else {
        return Ok(Some((false, Vec::new())));
    };
    let id = envelope.queue_id.to_string();
    let sender = envelope.sender.to_string();
    let recipients: Vec<String> = envelope
        .recipients
        .iter()
        .map(|r| r.address.to_string())
        .collect();
    let values = |name: &str| -> Option<String> {
        Some(match name {
            "i" => id.clone(),
            "j" => config.myhostname.clone(),
            "daemon_name" => config.milter_daemon_name.clone(),
            "v" => config.milter_v.clone(),
            "_" => "localhost [127.0.0.1]".into(),
            "mail_addr" => sender.clone(),
            _ => return None,
        })
    };
    let mut session = crate::milter::Session::open(&milters).await;
    let (verdict, edits) = session
        .whole_message(
            &sender,
            &recipients,
            content,
            config.header_size_limit,
            &values,
        )
        .await;
    let said = |action: &str, text: &str| {
        tracing::info!(
            "{id}: {action}: END-OF-MESSAGE from localhost[127.0.0.1]: {text}; from=<{sender}> to=<{}> proto=local",
            recipients.first().map(String::as_str).unwrap_or("")
        );
    };
    match verdict {
        Verdict::Continue => Ok(Some((false, edits))),
        Verdict::Quarantine(_) => {
            said("milter-hold", "milter triggers HOLD action");
            Ok(Some((true, edits)))
        }
        Verdict::Discard => {
            said("milter-discard", "milter triggers DISCARD action");
            std::fs::remove_file(path).map_err(|e| format!("removing the maildrop file: {e}"))?;
            Ok(None)
        }
        Verdict::Tempfail(text) => {
            tracing::warn!(
                "{id}: milter said {text}; the submission stays in the maildrop for the next pickup"
            );
            Ok(None)
        }
        Verdict::Reject(text) => {
            said("milter-reject", &text);
            let (code, rest) = text.split_at(text.len().min(3));
            let rest = rest.trim_start();
            let status = rest
                .split(' ')
                .next()
                .filter(|s| s.matches('.').count() == 2)
                .unwrap_or("5.7.1");
            let failed = envelope
                .recipients
                .iter()
                .map(|r| crate::bounce::Failed {
                    recipient: r.clone(),
                    dsn: crate::store::DsnRecord {
                        status: status.to_string(),
                        diagnostic: format!("{code} {rest}"),
                        remote_mta: None,
                    },
                    relayed: false,
                })
                .collect();
            crate::bounce::notify(
                &deps.bounce,
                crate::bounce::Kind::Failure,
                &deps.cleanup,
                envelope,
                crate::store::QueueRef::new(path.to_path_buf(), None),
                failed,
            )
            .await
            .map_err(|e| e.to_string())?;
            std::fs::remove_file(path).map_err(|e| format!("removing the maildrop file: {e}"))?;
            Ok(None)
        }
    }
}
