//! Reading the queue for the commands: from the running instance through
//! the control socket, or straight from the queue directory when no
//! instance runs (sled admits one process at a time).

use std::path::Path;

use anyhow::{Context as _, bail};

use crate::control::client::{self, ClientError};
use crate::control::{Request, Response};
use crate::mail::QueueId;
use crate::store::{Entry, MessageState, Store};

/// Every queued message, oldest first, after what waits in the maildrop
/// (Postfix's showq lists the maildrop first).
pub fn entries(queue_directory: &Path) -> anyhow::Result<Vec<Entry>> {
    match client::request(queue_directory, &Request::List) {
        Ok(Response::List { entries }) => Ok(entries),
        Ok(Response::Error { message }) => bail!("{message}"),
        Ok(other) => bail!("unexpected answer: {other:?}"),
        Err(ClientError::NotRunning) => {
            let mut entries = crate::store::maildrop::entries(queue_directory);
            if let Some(store) = offline(queue_directory)? {
                entries.extend(store.list()?);
            }
            Ok(entries)
        }
        Err(e) => Err(e.into()),
    }
}

/// One message's queue state.
pub fn state(queue_directory: &Path, id: &QueueId) -> anyhow::Result<MessageState> {
    match client::request(
        queue_directory,
        &Request::Show {
            queue_id: id.to_string(),
        },
    ) {
        Ok(Response::Show { state }) => Ok(state),
        Ok(Response::Error { message }) => bail!("{message}"),
        Ok(other) => bail!("unexpected answer: {other:?}"),
        Err(ClientError::NotRunning) => match offline(queue_directory)? {
            Some(store) => Ok(store.get(id)?),
            None => bail!("{id}: no such message"),
        },
        Err(e) => Err(e.into()),
    }
}

fn offline(queue_directory: &Path) -> anyhow::Result<Option<Store>> {
    if !queue_directory.join("state").exists() {
        return Ok(None);
    }
    let store = Store::open(queue_directory)
        .with_context(|| format!("open queue in {}", queue_directory.display()))?;
    Ok(Some(store))
}
