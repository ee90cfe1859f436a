//! What postqueue and postsuper ask of qmgr: flush deferred mail (all of
//! it, one message, a site's), hold, release, requeue and delete messages.
//! A flush also ends dead destinations' suspensions, as Postfix's does.

use actix::{AsyncContext, Context, Handler, Message};

use super::Qmgr;
use crate::mail::QueueId;
use crate::store::AdminOp;

/// Try all deferred mail now (`postqueue -f`).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Flush;

impl Handler<Flush> for Qmgr {
    type Result = usize;
    fn handle(&mut self, _msg: Flush, _ctx: &mut Context<Self>) -> usize {
        let due: Vec<(i64, QueueId)> = std::mem::take(&mut self.deferred).into_iter().collect();
        let count = due.len();
        self.scheduler.revive_all();
        self.incoming.extend(due.into_iter().map(|(_, id)| id));
        self.activate();
        count
    }
}

/// Deferred mail due now: one message (`-i`), or those with a recipient
/// in a domain (`-s`).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct FlushSome {
    pub ids: Vec<QueueId>,
}

impl Handler<FlushSome> for Qmgr {
    type Result = usize;
    fn handle(&mut self, msg: FlushSome, _ctx: &mut Context<Self>) -> usize {
        let due: Vec<(i64, QueueId)> = self
            .deferred
            .iter()
            .filter(|(_, id)| msg.ids.contains(id))
            .cloned()
            .collect();
        for entry in &due {
            self.deferred.remove(entry);
            self.revive.insert(entry.1.clone());
            self.incoming.push_back(entry.1.clone());
        }
        self.activate();
        due.len()
    }
}

/// A `postsuper` operation on some messages; answers with those it applied to.
#[derive(Message)]
#[rtype(result = "Vec<QueueId>")]
pub struct Admin {
    pub op: AdminOp,
    pub ids: Vec<QueueId>,
}

impl Handler<Admin> for Qmgr {
    type Result = actix::ResponseFuture<Vec<QueueId>>;

    fn handle(&mut self, msg: Admin, ctx: &mut Context<Self>) -> Self::Result {
        let Admin { op, ids } = msg;
        let mut for_store = Vec::new();
        let mut done_now = Vec::new();
        for id in ids {
            let forget = |q: &mut Qmgr| {
                q.incoming.retain(|i| *i != id);
                q.deferred.retain(|(_, i)| *i != id);
                q.known.remove(&id);
            };
            match op {
                AdminOp::Delete => {
                    forget(self);
                    if self.active.remove(&id).is_some() {
                        // Its deliveries in flight report to nobody.
                        self.gone.insert(id.clone());
                    }
                    for_store.push(id);
                }
                AdminOp::Hold => match self.active.get_mut(&id) {
                    // Held when its delivery round ends.
                    Some(message) => {
                        message.hold = true;
                        done_now.push(id);
                    }
                    None => {
                        forget(self);
                        for_store.push(id);
                    }
                },
                AdminOp::Release | AdminOp::Requeue => {
                    if !self.active.contains_key(&id) {
                        forget(self);
                        for_store.push(id);
                    }
                }
            }
        }
        let store = self.deps.store.clone();
        let addr = ctx.address();
        Box::pin(async move {
            let applied = tokio::task::spawn_blocking(move || {
                let mut applied = Vec::new();
                for id in for_store {
                    match store.admin(&id, op) {
                        Ok(true) => applied.push(id),
                        Ok(false) => {}
                        Err(e) => tracing::warn!("{id}: {e}"),
                    }
                }
                applied
            })
            .await
            .unwrap_or_default();
            if matches!(op, AdminOp::Release | AdminOp::Requeue) {
                addr.do_send(Resume(applied.clone()));
            }
            done_now.extend(applied);
            done_now
        })
    }
}

/// Messages released or requeued: take them up now.
#[derive(Message)]
#[rtype(result = "()")]
struct Resume(Vec<QueueId>);

impl Handler<Resume> for Qmgr {
    type Result = ();
    fn handle(&mut self, msg: Resume, _ctx: &mut Context<Self>) {
        for id in msg.0 {
            self.revive.insert(id.clone());
            if self.known.insert(id.clone()) {
                self.incoming.push_back(id);
            }
        }
        self.activate();
    }
}
