//! `/api/openapi.json` (generated from the handlers' annotations) and
//! `/api/ws-schema.json` (the live channel's messages).

use crate::app::AppState;
use axum::Router;
use axum::routing::get;
use callcenter_proto::http as wire;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "callcenter", description = "Post-sale customer care call center API"),
    paths(
        super::auth::login, super::auth::refresh, super::auth::logout, super::auth::me,
        super::admin::list_users, super::admin::create_user, super::admin::update_user,
        super::admin::list_agents, super::admin::get_agent, super::admin::put_agent,
        super::admin::list_queues, super::admin::create_queue,
        super::admin::list_categories, super::admin::create_category,
        super::customers::upsert_customer, super::customers::get_customer, super::customers::add_purchase,
        super::tickets::file_complaint, super::tickets::get_ticket, super::tickets::history,
        super::tickets::resolve, super::tickets::cancel,
        super::health::healthz, super::health::readyz,
        crate::compensation::http::publish_policy, crate::compensation::http::list_policies,
        crate::compensation::http::get_policy, crate::compensation::http::dry_run,
        crate::compensation::http::allowance, crate::compensation::http::request_grant,
        crate::compensation::http::get_request, crate::compensation::http::decide,
        crate::compensation::http::reverse, crate::compensation::http::approvals,
        crate::compensation::http::ledger, crate::compensation::http::verify_ledger,
        crate::compensation::http::deliveries, crate::compensation::http::get_supervisor_teams,
        crate::compensation::http::put_supervisor_teams, crate::compensation::http::spend_report,
        crate::compensation::http::create_draft, crate::compensation::http::list_drafts,
        crate::compensation::http::get_draft, crate::compensation::http::save_draft,
        crate::compensation::http::dry_run_draft, crate::compensation::http::publish_draft,
        crate::outbound::http::list_journeys, crate::outbound::http::create_journey,
        crate::outbound::http::update_journey, crate::outbound::http::get_contact_policy,
        crate::outbound::http::put_contact_policy, crate::outbound::http::run_scheduler,
        crate::outbound::http::add_membership, crate::outbound::http::add_shared_date,
        crate::outbound::http::get_contact, crate::outbound::http::put_contact,
        crate::outbound::http::export_customer, crate::outbound::http::erase_customer,
        crate::outbound::http::import_csv, crate::outbound::http::list_calls,
        crate::outbound::http::call_outcome, crate::outbound::http::outcome_report,
        crate::quality::http::active_codes, crate::quality::http::all_codes,
        crate::quality::http::create_code, crate::quality::http::update_code,
        crate::quality::http::get_settings, crate::quality::http::put_settings,
        crate::quality::http::ticket_quality, crate::quality::http::quality_rows,
        crate::quality::http::create_survey_link, crate::quality::http::view_survey,
        crate::quality::http::answer_survey,
        crate::quality::reports_http::scorecard, crate::quality::reports_http::compensation_retention,
        super::ticket_actions::escalate, super::ticket_actions::get_escalation,
        super::ticket_actions::list_escalations, super::ticket_actions::decide_escalation,
        super::ticket_actions::resolve_taken, super::ticket_actions::schedule_callback,
        super::ticket_actions::customer_history,
    ),
    components(schemas(wire::Problem, wire::FieldError)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/openapi.json",
            get(|| async { axum::Json(ApiDoc::openapi()) }),
        )
        .route(
            "/api/ws-schema.json",
            get(|| async { axum::Json(callcenter_proto::ws::json_schema()) }),
        )
}
