//! Compensation authority (issue 6): front-line staff fix a customer's
//! inconvenience on the spot within a written, versioned policy, and the
//! business sees afterwards exactly which rule allowed each grant.
//!
//! - [`policy`]: policy documents, validation, and the pure evaluation of a
//!   request (every limit kind is table-tested there).
//! - [`drafts`]: stored, editable policy drafts, their dry runs, and
//!   publishing a draft as the next immutable version.
//! - [`grants`]: requests, live approvals, automatic expiry and reversals
//!   (`impl Desk`), serialized in the database per requester's budget and
//!   per customer, and their ledger appends by the ledger head's row lock.
//! - [`ledger`]: the append-only, hash-chained ledger and its verifier.
//! - [`outbox`]: signed webhook deliveries of every ledger entry, with retries.
//! - [`store`]: the SQL (`impl Db`); [`http`]: the routes.

pub mod drafts;
pub mod grants;
pub mod http;
pub mod ledger;
pub mod outbox;
pub mod policy;
pub mod store;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::ApiResult;
use callcenter_proto::compensation::ApprovalDecision;

/// The socket's `decide_compensation` command.
pub async fn decide_on_socket(
    state: &AppState,
    user: &AuthUser,
    compensation_id: i64,
    approve: bool,
    note: String,
) -> ApiResult<()> {
    state
        .desk
        .decide_compensation(user, compensation_id, &ApprovalDecision { approve, note })
        .await?;
    Ok(())
}
