//! Durable state behind a small trait: leases (v4 and v6), machine records with their
//! boot timelines, and server metadata.
//!
//! The protocol cores keep leases in memory and emit a [`Change`] for each decision; the
//! shell hands it to a [`Writer`] and sends the reply only once the change is on disk.
//! The writer group-commits: whatever queued while one transaction was being fsynced goes
//! into the next one, so a burst of clients costs a few fsyncs, not one each.

mod sqlite;
mod writer;

pub use sqlite::{SqliteStore, read_machine};
pub use writer::{Durable, Outbox, Writer};

use crate::step::{Protocol, Stage};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Where a lease is in its life. Expiry is by time, not by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Offered (v4) or advertised (v6), held briefly for the client to confirm.
    Offered = 0,
    Bound = 1,
    /// Given back by the client; free, but remembered so the client gets it again.
    Released = 2,
    /// The client found it in use: quarantined until `expires`, owned by nobody.
    Declined = 3,
}

impl LeaseState {
    pub fn from_i64(v: i64) -> Option<LeaseState> {
        Some(match v {
            0 => LeaseState::Offered,
            1 => LeaseState::Bound,
            2 => LeaseState::Released,
            3 => LeaseState::Declined,
            _ => return None,
        })
    }
}

/// One DHCPv4 lease, keyed by address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease4 {
    pub addr: Ipv4Addr,
    /// Client identity: option 61, else htype + chaddr. Empty for a declined address.
    pub client: Vec<u8>,
    /// The hardware address, for ARP and for machine records.
    pub mac: Vec<u8>,
    pub state: LeaseState,
    /// Unix seconds.
    pub expires: u64,
}

/// One DHCPv6 IA_NA lease, keyed by address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease6 {
    pub addr: Ipv6Addr,
    pub duid: Vec<u8>,
    pub iaid: u32,
    /// Link-layer address the client was seen from; tells machines with one DUID apart.
    pub link: Vec<u8>,
    pub state: LeaseState,
    /// Unix seconds.
    pub expires: u64,
}

/// Timeline entries kept per machine; older ones are dropped as new ones arrive.
pub const MACHINE_EVENTS_KEPT: usize = 200;

/// One step on a machine's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineEvent {
    pub mac: [u8; 6],
    /// Unix milliseconds.
    pub at: u64,
    pub protocol: Protocol,
    pub stage: Stage,
    pub detail: String,
}

/// One durable write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Lease4(Lease4),
    Lease6(Lease6),
    /// A small named value, such as the server's DUID.
    Meta {
        key: String,
        value: Vec<u8>,
    },
    /// A machine's whole record, as the machines module serializes it (JSON): the store
    /// keeps it opaque, so the record can grow fields without a schema change.
    Machine {
        mac: [u8; 6],
        record: String,
    },
    /// A timeline step; past [`MACHINE_EVENTS_KEPT`] the machine's oldest go.
    MachineEvent(MachineEvent),
    /// A machine and its timeline, evicted to bound the store.
    ForgetMachine([u8; 6]),
}

/// Everything the store holds, read once at start.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub leases4: Vec<Lease4>,
    pub leases6: Vec<Lease6>,
    pub meta: Vec<(String, Vec<u8>)>,
    /// Each machine's record (JSON), by MAC.
    pub machines: Vec<([u8; 6], String)>,
    /// Every kept timeline step, oldest first.
    pub machine_events: Vec<MachineEvent>,
}

/// A durable store. `commit` returns only once the whole batch is on disk.
pub trait Store: Send + 'static {
    fn load(&mut self) -> Result<Snapshot, StoreError>;
    fn commit(&mut self, batch: &[Change]) -> Result<(), StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("lease store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("lease store: {0}")]
    Io(#[from] std::io::Error),
    #[error("lease store: corrupt row: {0}")]
    Corrupt(String),
    #[error("lease store: commit failed: {0}")]
    Commit(String),
    #[error("lease store: writer has stopped")]
    Closed,
}
