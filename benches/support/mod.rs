//! What the benchmarks share: a plain queued message's envelope.

use postern::mail::{Address, ClientInfo, Envelope, QueueId, Recipient};

/// An envelope from sender@example.com to `rcpt`, arrived at `arrival_time`.
pub fn envelope(rcpt: &str, arrival_time: i64) -> Envelope {
    Envelope {
        queue_id: QueueId::generate(),
        arrival_time,
        sender: Address::parse_mailbox("sender@example.com").expect("an address"),
        recipients: vec![Recipient {
            address: Address::parse_mailbox(rcpt).expect("an address"),
            notify: None,
            orcpt: None,
        }],
        body: None,
        ret: None,
        envid: None,
        smtputf8: false,
        client: ClientInfo::local(None),
        filter: None,
        captured: None,
    }
}
