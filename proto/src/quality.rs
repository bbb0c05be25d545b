//! Quality reports (issue 7): scorecards per agent, team, queue and period,
//! the retention of compensated customers against comparable uncompensated
//! ones, and today's quality figures on supervisor boards.
//!
//! Every rate is sent as its numerator and denominator (a [`Ratio`]), every
//! satisfaction figure as a distribution with its count; nothing is a bare
//! average. Handle time is reported as stored and never ranked: rows come
//! in period order, then by group name, never sorted by a figure.

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
    /// What one scorecard row stands for.
    #[derive(Copy, Eq, Hash)]
    #[serde(rename_all = "snake_case")]
    pub enum ScorecardGroup {
        /// One row per agent (an agent may read only their own).
        Agent,
        /// One row per team (an agent in two teams counts in both).
        Team,
        /// One row per queue.
        Queue,
        /// One row for the whole call center.
        All,
    }

    /// How the period is cut into rows.
    #[derive(Copy, Eq, Hash)]
    #[serde(rename_all = "snake_case")]
    pub enum ScorecardPeriod {
        /// One row per UTC day.
        Day,
        /// One row per ISO week (Monday to Sunday), cut at `from` and `to`.
        Week,
        /// One row per calendar month, cut at `from` and `to`.
        Month,
        /// One row for the whole range.
        Range,
    }

    /// A rate as counts: `count` out of `of`. `permille` is
    /// `count * 1000 / of` rounded down, absent when `of` is 0.
    #[derive(Copy, Eq, Default)]
    pub struct Ratio {
        pub count: u64,
        pub of: u64,
        pub permille: Option<u32>,
    }

    /// Satisfaction answers: how many customers gave each score, never an
    /// average alone.
    #[derive(Eq, Default)]
    pub struct Satisfaction {
        /// `counts[0]` answered 1 (worst) … `counts[4]` answered 5 (best).
        pub counts: [u64; 5],
        /// Answers in all (the sum of `counts`).
        pub n: u64,
    }

    /// Where the customer's confirmations stand, for complaints ended in the period.
    #[derive(Copy, Eq, Default)]
    pub struct ConfirmationCounts {
        /// Asked, not answered yet.
        pub awaiting: u64,
        /// The customer said it is still solved.
        pub confirmed: u64,
        /// The customer said it is not (the complaint was reopened).
        pub denied: u64,
        /// Asked, never answered in time.
        pub expired: u64,
    }

    /// A reason given when refusing, and how many times.
    #[derive(Eq)]
    pub struct ReasonTally {
        pub reason_code: String,
        pub count: u64,
    }

    /// One row of a scorecard: one group in one period.
    pub struct ScorecardRow {
        /// First day of the row's period (YYYY-MM-DD, UTC).
        pub period_start: String,
        /// Last day of the row's period, inclusive.
        pub period_end: String,
        /// The agent (group `agent`); 0 for complaints that ended without one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub agent_id: Option<i64>,
        /// The team (group `team`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub team: Option<String>,
        /// The queue (group `queue`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub queue_id: Option<i64>,
        /// The agent's or queue's name, the team, or "all".
        pub name: String,
        /// Complaints that ended in the period.
        pub ended: u64,
        /// Of them, resolved by the agent's own account.
        pub resolved: u64,
        pub confirmations: ConfirmationCounts,
        /// Confirmed out of asked-and-answered (confirmed + denied).
        pub confirmed_of_answered: Ratio,
        /// Confirmed out of resolved.
        pub confirmed_of_resolved: Ratio,
        /// First contact, resolved and confirmed by the customer, out of ended.
        pub first_contact_resolution: Ratio,
        /// Complaints a later complaint of the same customer and category
        /// reopened, out of ended.
        pub reopened: Ratio,
        pub satisfaction: Satisfaction,
        /// A purchase or renewal within 30 days after the complaint, out of
        /// the complaints retained or whose 30 days have certainly passed
        /// (ended on or before the UTC day 31 days before today).
        pub retained_30: Ratio,
        /// The same within 90 days (ended on or before the day 91 days ago).
        pub retained_90: Ratio,
        /// Complaints with compensation granted on them (net of reversals).
        pub compensated: u64,
        /// Net compensation granted on these complaints, in minor units.
        pub compensation_minor: i64,
        /// `compensation_minor` divided by the complaints retained within 90
        /// days (rounded down); absent when none was retained.
        pub compensation_per_retained_minor: Option<i64>,
        /// Time agents held these complaints, as stored. Never a target;
        /// rows are never ordered by it.
        pub handle_ms_total: i64,
        /// Outbound calls of this group in the period refused by the
        /// customer, by reason.
        pub refusal_reasons: Vec<ReasonTally>,
        /// Churn reasons: refusals on renewal calls (journeys triggered by a
        /// membership's end), by reason.
        pub churn_reasons: Vec<ReasonTally>,
    }

    /// `GET /api/reports/scorecard`.
    pub struct Scorecard {
        pub group: ScorecardGroup,
        pub period: ScorecardPeriod,
        /// First day (YYYY-MM-DD, UTC), inclusive.
        pub from: String,
        /// Last day, inclusive.
        pub to: String,
        /// The UTC day the retention denominators were counted on (today).
        pub as_of: String,
        /// In period order, then by name; groups with nothing in a period
        /// have no row for it.
        pub rows: Vec<ScorecardRow>,
    }

    /// Complaints of one stratum, compensated or not.
    #[derive(Copy, Eq, Default)]
    pub struct StratumSide {
        pub complaints: u64,
        pub compensation_minor: i64,
        pub retained_30: Ratio,
        pub retained_90: Ratio,
    }

    /// Comparable complaints: same category, same customer tier and value
    /// band (both as when the complaint ended).
    pub struct CompensationStratum {
        pub category_id: i64,
        pub category: String,
        pub tier: String,
        /// 0: yearly value under 10,000 minor units, 1: under 100,000,
        /// 2: under 1,000,000, 3: 1,000,000 and above.
        pub value_band: u8,
        pub value_band_label: String,
        pub compensated: StratumSide,
        pub uncompensated: StratumSide,
        /// Both sides have complaints, so they can be compared.
        pub comparable: bool,
    }

    /// Both sides summed over the comparable strata only, and the
    /// uncompensated retention standardized to the compensated complaints'
    /// mix of strata (each stratum's uncompensated rate weighted by its
    /// compensated denominator): the fair comparison.
    #[derive(Copy, Eq)]
    pub struct CompensationComparison {
        pub compensated: StratumSide,
        pub uncompensated: StratumSide,
        pub uncompensated_standardized_30_permille: Option<u32>,
        pub uncompensated_standardized_90_permille: Option<u32>,
    }

    /// `GET /api/reports/compensation-retention`.
    pub struct CompensationRetention {
        pub from: String,
        pub to: String,
        pub as_of: String,
        /// By category, tier and value band.
        pub strata: Vec<CompensationStratum>,
        pub comparable: CompensationComparison,
    }

    /// Today's quality figures of complaints that ended today (UTC), as
    /// counts. Confirmations and satisfaction come days after a complaint
    /// ends, so today's rows carry few of them.
    #[derive(Eq, Default)]
    pub struct QualityToday {
        pub ended: u64,
        pub resolved: u64,
        pub confirmations: ConfirmationCounts,
        /// First contact, resolved and confirmed.
        pub first_contact_resolved: u64,
        pub reopened: u64,
        pub satisfaction: Satisfaction,
    }

    /// One queue's figures for today.
    #[derive(Eq)]
    pub struct QueueQualityToday {
        pub queue_id: i64,
        pub today: QualityToday,
    }

    /// Today's quality on a supervisor board: the watched queues and the
    /// whole call center. Read at most every few seconds.
    #[derive(Eq)]
    pub struct BoardQuality {
        /// The UTC day (YYYY-MM-DD).
        pub day: String,
        pub queues: Vec<QueueQualityToday>,
        /// Every queue.
        pub overall: QualityToday,
    }
}

impl Ratio {
    pub fn new(count: u64, of: u64) -> Ratio {
        Ratio {
            count,
            of,
            permille: (of > 0)
                .then(|| (count.saturating_mul(1000) / of).min(u32::MAX as u64) as u32),
        }
    }
}

impl Satisfaction {
    pub fn from_counts(counts: [u64; 5]) -> Satisfaction {
        Satisfaction {
            counts,
            n: counts.iter().sum(),
        }
    }
}
