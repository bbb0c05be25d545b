//! Outbound service calls: the business calls the customer after the sale,
//! at the right moment, for the customer's benefit, and never pesters.
//!
//! - [`journeys`]: admin-defined, versioned rules that plan calls from
//!   events (purchase, membership end, resolved complaint, shared date);
//! - [`policy`]: the one contact policy (consent, do-not-call, account
//!   status, open complaints, one frequency cap across all journeys,
//!   calling hours in the customer's zone), judged when a call is planned
//!   and again when it falls due;
//! - [`scheduler`]: due times in a Redis sorted set (or in process) over the
//!   database's record; each due call fires once across nodes, merging the
//!   customer's other calls due in the merge window into one ticket;
//! - [`outcomes`]: what came of a call (retries, callbacks, refusal reasons);
//! - [`rights`]: consent history, export and erasure;
//! - [`import`]: CSV onboarding with a per-row error report;
//! - [`store`]: the SQL; [`http`]: the routes.
//!
//! Outbound calls are tickets of kind `outbound` in the queue of the
//! journey's category, offered through the same routing as complaints, at a
//! rank behind inbound tickets (`outbound_rank_offset_seconds`). The offer
//! carries the call's purposes and scripts (`OfferDetails::outbound`).

pub mod http;
pub mod import;
pub mod journeys;
pub mod outcomes;
pub mod policy;
pub mod rights;
pub mod scheduler;
pub mod store;

pub use scheduler::{DueIndex, MemoryDueIndex, RedisDueIndex};
