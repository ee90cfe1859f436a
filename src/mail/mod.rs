//! Shared mail types, free of I/O: queue IDs, addresses, envelopes and the
//! maillog line format. Every role speaks in these types.

pub mod address;
pub mod envelope;
pub mod header;
pub mod maillog;
pub mod queue_id;
pub mod xtext;

pub use address::{Address, AddressError};
pub use envelope::{BodyType, ClientInfo, Disclose, Envelope, Notify, Recipient, Ret};
pub use queue_id::{QueueId, QueueIdError};
