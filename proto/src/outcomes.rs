//! Outcomes and what customers say about them (issue 7, the quality record):
//! resolution codes, the quality settings, one quality row per ended
//! complaint, survey links and their answers.

use serde::{Deserialize, Serialize};

macro_rules! wire {
    ($($item:item)*) => {
        $(
            #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
            $item
        )*
    };
}

wire! {
    /// A resolution code an outcome may carry (an administrator's list).
    pub struct ResolutionCode {
        /// 1 to 64 of a-z, 0-9, _ (e.g. `refund_issued`).
        pub code: String,
        pub label: String,
        /// Retired codes stay on past outcomes but are refused on new ones.
        pub active: bool,
        pub created_at_ms: i64,
    }

    #[serde(deny_unknown_fields)]
    pub struct ResolutionCodeCreate {
        pub code: String,
        pub label: String,
    }

    #[serde(deny_unknown_fields)]
    pub struct ResolutionCodeUpdate {
        pub label: Option<String>,
        pub active: Option<bool>,
    }

    /// The definitions behind the quality figures.
    #[serde(deny_unknown_fields)]
    pub struct QualitySettings {
        /// A complaint is a first contact when the customer filed no other
        /// complaint in its category this many days before it (1 to 365).
        pub first_contact_window_days: u32,
        /// A complaint filed this many days after an earlier one of the same
        /// customer and category ended is its reopen (0 to 365; 0: never).
        pub reopen_window_days: u32,
        /// Days after a resolved complaint ends before the customer is asked
        /// to confirm it (0 to 90).
        pub confirmation_delay_days: u32,
        /// How long a survey link may be answered (1 to 90 days).
        pub survey_ttl_days: u32,
        /// A complaint reopened by a "no" waits this long for the agent who
        /// resolved it to be free before any agent may take it (0 to 3600).
        pub same_agent_wait_seconds: u32,
        /// Head start of a complaint reopened by a "no", in seconds of
        /// waiting, when its queue sets no larger `reopen_head_start_seconds`
        /// (0 to 86400).
        pub denied_head_start_seconds: u32,
    }

    /// What the customer said about a resolved complaint.
    #[serde(rename_all = "snake_case")]
    pub enum Confirmation {
        /// Not asked yet.
        None,
        /// A survey link is out.
        Asked,
        /// The customer says it is still solved.
        Confirmed,
        /// The customer says it is not: the complaint was reopened.
        Denied,
        /// Every survey link expired unanswered.
        Expired,
    }

    /// The quality record of one ended inbound complaint: the facts the
    /// scorecards aggregate.
    pub struct TicketQuality {
        pub ticket_id: i64,
        pub customer_id: i64,
        pub category_id: i64,
        pub queue_id: i64,
        /// The agent who ended it.
        pub agent_id: Option<i64>,
        pub ended_at_ms: i64,
        /// UTC day number (`ended_at_ms / 86400000`).
        pub ended_day: i64,
        pub resolved: bool,
        pub resolution_code: Option<String>,
        /// No other complaint of the customer in the category inside the
        /// first-contact window before it, and not a reopen. First-contact
        /// resolution also needs `resolved` and `confirmation: confirmed`.
        pub first_contact: bool,
        pub confirmation: Confirmation,
        pub confirmed_at_ms: Option<i64>,
        /// `survey` or `call`.
        pub confirmation_via: Option<String>,
        /// 1 to 5, when the customer gave one.
        pub satisfaction: Option<u8>,
        /// The customer came back with the same problem (a complaint linked
        /// to this one as its reopen).
        pub reopened: bool,
        /// A purchase or renewal within 30 (90) days after it ended.
        pub retained_30: bool,
        pub retained_90: bool,
        pub retention_purchase_id: Option<i64>,
        pub retention_membership_id: Option<i64>,
        /// Compensation granted on it, net of reversals, in minor units.
        pub compensation_minor: i64,
        /// From the agent's accept to the end. Stored, never ranked.
        pub handle_ms: i64,
        /// From the original start of its reopen chain to its end.
        pub duration_ms: i64,
        /// The complaint it reopens, if any.
        pub reopen_of: Option<i64>,
        /// The first complaint of its reopen chain (itself when none).
        pub origin_id: i64,
        pub origin_started_ms: i64,
    }

    /// A survey link, shown once: only its hash is stored.
    pub struct SurveyLink {
        pub survey_id: i64,
        pub ticket_id: i64,
        /// The page the customer opens, relative to this server's public
        /// address: `/survey#<token>` (the token stays out of server logs
        /// and `Referer` headers).
        pub path: String,
        pub token: String,
        pub expires_at_ms: i64,
    }

    /// A survey token, as the public page sends it.
    #[serde(deny_unknown_fields)]
    pub struct SurveyToken {
        pub token: String,
    }

    /// What the public page shows before the customer answers.
    pub struct SurveyView {
        /// The complaint's category, e.g. "double charge".
        pub category: String,
        pub resolved_at_ms: i64,
        pub expires_at_ms: i64,
    }

    /// The customer's answer on the public page.
    #[serde(deny_unknown_fields)]
    pub struct SurveyAnswer {
        pub token: String,
        /// Is the problem still solved?
        pub still_solved: bool,
        /// 1 (very unhappy) to 5 (very happy).
        pub satisfaction: Option<u8>,
        /// At most 1000 characters.
        #[serde(default)]
        pub comment: String,
    }

    /// The answer was recorded.
    pub struct SurveyReceipt {
        /// A "no" reopened the complaint: someone will contact the customer.
        pub reopened: bool,
    }

    /// The customer's confirmation, given on a confirmation call (with the
    /// `reached` result of a call that follows a complaint).
    #[serde(deny_unknown_fields)]
    pub struct ResolutionConfirmation {
        pub still_solved: bool,
        pub satisfaction: Option<u8>,
    }
}

impl Default for QualitySettings {
    fn default() -> Self {
        QualitySettings {
            first_contact_window_days: 7,
            reopen_window_days: 14,
            confirmation_delay_days: 3,
            survey_ttl_days: 14,
            same_agent_wait_seconds: 120,
            denied_head_start_seconds: 600,
        }
    }
}

impl Confirmation {
    pub fn as_str(&self) -> &'static str {
        match self {
            Confirmation::None => "none",
            Confirmation::Asked => "asked",
            Confirmation::Confirmed => "confirmed",
            Confirmation::Denied => "denied",
            Confirmation::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Confirmation::None,
            "asked" => Confirmation::Asked,
            "confirmed" => Confirmation::Confirmed,
            "denied" => Confirmation::Denied,
            "expired" => Confirmation::Expired,
            _ => return None,
        })
    }
}
