//! The control socket's server side, a supervised task of the daemon.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use super::{Request, Response, Status};
use crate::mail::QueueId;
use crate::store::Store;

/// A request line longer than this is refused.
const REQUEST_MAX: u64 = 4096;

/// Makes the named role panic; true when the role has such a trigger.
pub type FaultTrigger = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What the control server needs from the rest of the daemon.
#[derive(Clone)]
pub struct ControlDeps {
    pub store: Arc<Store>,
    /// Turned to true to stop the whole instance.
    pub shutdown: watch::Sender<bool>,
    /// The SMTP listener addresses (they change on reload).
    pub smtpd: Arc<Mutex<Vec<String>>>,
    /// Asks the supervisor to reload; the answer says what happened.
    pub reload:
        tokio::sync::mpsc::UnboundedSender<tokio::sync::oneshot::Sender<Result<String, String>>>,
    pub admin: Arc<Mutex<Vec<String>>>,
    pub restarts: Arc<Mutex<BTreeMap<String, u64>>>,
    /// Present only when fault injection is enabled.
    pub fault: Option<FaultTrigger>,
    /// For `postqueue -f`.
    pub qmgr: crate::role::handle::RoleHandle<crate::qmgr::Qmgr>,
    /// Wakes pickup: the sendmail command left a file.
    pub pickup: std::sync::Arc<tokio::sync::Notify>,
}

/// Serves until `stop` turns true.
pub async fn serve(
    listener: Arc<UnixListener>,
    deps: ControlDeps,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let deps = deps.clone();
                    tokio::spawn(async move {
                        if let Err(e) = handle(stream, &deps).await {
                            tracing::warn!("control connection: {e}");
                        }
                    });
                }
                Err(e) => tracing::warn!("control socket accept: {e}"),
            },
            _ = stop.changed() => return Ok(()),
        }
    }
}

async fn handle(stream: UnixStream, deps: &ControlDeps) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    tokio::io::AsyncReadExt::take(BufReader::new(read), REQUEST_MAX)
        .read_line(&mut line)
        .await?;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(request) => answer(request, deps).await,
        Err(e) => Response::Error {
            message: format!("bad request: {e}"),
        },
    };
    let mut out = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
    drop(response);
    out.push(b'\n');
    let big = out.len() > 1 << 20;
    write.write_all(&out).await?;
    drop(out);
    if big {
        crate::store::release_memory();
    }
    write.shutdown().await
}

async fn entries(deps: &ControlDeps) -> Result<Vec<crate::store::Entry>, String> {
    let store = deps.store.clone();
    match tokio::task::spawn_blocking(move || store.list()).await {
        Ok(Ok(entries)) => Ok(entries),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The IDs a postsuper request names, `ALL` expanded.
async fn select(
    deps: &ControlDeps,
    ids: &[String],
    queues: &[String],
) -> Result<Vec<QueueId>, String> {
    if ids.iter().any(|i| i == "ALL") {
        let entries = entries(deps).await?;
        return Ok(crate::store::select_all(&entries, queues));
    }
    ids.iter()
        .map(|i| QueueId::parse(i).map_err(|e| e.to_string()))
        .collect()
}

async fn answer(request: Request, deps: &ControlDeps) -> Response {
    match request {
        Request::Status => Response::Status(Status {
            pid: std::process::id(),
            smtpd: deps.smtpd.lock().map(|a| a.clone()).unwrap_or_default(),
            admin: deps.admin.lock().map(|a| a.clone()).unwrap_or_default(),
            restarts: deps.restarts.lock().map(|r| r.clone()).unwrap_or_default(),
        }),
        Request::Stop => {
            tracing::info!(target: "master", "stop requested through the control socket");
            deps.shutdown.send_replace(true);
            Response::Ok
        }
        Request::List => {
            let store = deps.store.clone();
            let listed = tokio::task::spawn_blocking(move || {
                let mut entries = crate::store::maildrop::entries(store.root());
                entries.extend(store.list()?);
                Ok::<_, crate::store::StoreError>(entries)
            });
            match listed.await {
                Ok(Ok(entries)) => Response::List { entries },
                Ok(Err(e)) => Response::Error {
                    message: e.to_string(),
                },
                Err(e) => Response::Error {
                    message: e.to_string(),
                },
            }
        }
        Request::Show { queue_id } => {
            let id = match QueueId::parse(&queue_id) {
                Ok(id) => id,
                Err(e) => {
                    return Response::Error {
                        message: e.to_string(),
                    };
                }
            };
            let store = deps.store.clone();
            // Whoever asks (postcat) reads the queue file next: one held in
            // memory by the spool journal is written out first.
            let shown = move || {
                let state = store.get(&id)?;
                store.spill(&id)?;
                Ok::<_, crate::store::StoreError>(state)
            };
            match tokio::task::spawn_blocking(shown).await {
                Ok(Ok(state)) => Response::Show { state },
                Ok(Err(e)) => Response::Error {
                    message: e.to_string(),
                },
                Err(e) => Response::Error {
                    message: e.to_string(),
                },
            }
        }
        Request::Flush => match deps.qmgr.send(|| crate::qmgr::Flush).await {
            Ok(count) => Response::Flushed { count },
            Err(e) => Response::Error {
                message: e.to_string(),
            },
        },
        Request::FlushSome { queue_id, site } => {
            let ids = match (queue_id, site) {
                (Some(id), _) => match QueueId::parse(&id) {
                    Ok(id) => vec![id],
                    Err(e) => {
                        return Response::Error {
                            message: e.to_string(),
                        };
                    }
                },
                (None, Some(site)) => match entries(deps).await {
                    Ok(entries) => crate::store::for_site(&entries, &site),
                    Err(message) => return Response::Error { message },
                },
                (None, None) => Vec::new(),
            };
            match deps
                .qmgr
                .send(|| crate::qmgr::FlushSome { ids: ids.clone() })
                .await
            {
                Ok(count) => Response::Flushed { count },
                Err(e) => Response::Error {
                    message: e.to_string(),
                },
            }
        }
        Request::Admin { op, ids, queues } => {
            let ids = match select(deps, &ids, &queues).await {
                Ok(ids) => ids,
                Err(message) => return Response::Error { message },
            };
            match deps
                .qmgr
                .send(|| crate::qmgr::Admin {
                    op,
                    ids: ids.clone(),
                })
                .await
            {
                Ok(applied) => {
                    for id in &applied {
                        tracing::info!(target: "postsuper", "{id}: {}", op.words().0);
                        if op == crate::store::AdminOp::Hold {
                            crate::metrics::count(crate::metrics::Event::Held);
                        }
                    }
                    Response::Applied {
                        ids: applied.iter().map(|i| i.to_string()).collect(),
                    }
                }
                Err(e) => Response::Error {
                    message: e.to_string(),
                },
            }
        }
        Request::Reload => {
            let (reply, answer) = tokio::sync::oneshot::channel();
            if deps.reload.send(reply).is_err() {
                return Response::Error {
                    message: "reload is not available".into(),
                };
            }
            match answer.await {
                Ok(Ok(_)) => Response::Ok,
                Ok(Err(message)) => Response::Error { message },
                Err(_) => Response::Error {
                    message: "reload did not answer".into(),
                },
            }
        }
        Request::Pickup => {
            deps.pickup.notify_one();
            Response::Ok
        }
        Request::Fault { role } => match &deps.fault {
            Some(fault) if fault(&role) => Response::Ok,
            Some(_) => Response::Error {
                message: format!("no fault trigger for role {role}"),
            },
            None => Response::Error {
                message: "fault injection is not enabled".into(),
            },
        },
    }
}
