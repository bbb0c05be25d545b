//! A node that stops without a word (killed, out of memory, its machine
//! gone) cannot mark its agents absent. Their tickets must not stay theirs
//! forever: the node running the periodic work — a restarted one, or
//! another node of the deployment — finds agents whose connection was held
//! by a node that no longer says it is alive, marks them absent and offline,
//! and after the queue's reconnect grace their tickets go back to the queue.

mod support;

use callcenter::clock::Clock;
use callcenter::config::ServeArgs;
use callcenter_proto::AgentState;
use callcenter_proto::ws::{Command, ReplyResult, ServerEvent};
use support::ws::Socket;
use support::{Live, Options, Storage, TestApp, spawn_with};

/// The reconnect grace of a queue (the default).
const GRACE_MS: i64 = 120_000;

/// A node is taken for dead after one second of silence.
fn quick_silence(serve: &mut ServeArgs) {
    serve.node_silence_seconds = 1;
}

async fn crashable(storage: Storage, live: Live) -> Option<TestApp> {
    let mut options = Options::new(storage, live);
    options.may_crash = true;
    options.tweak = Some(quick_silence);
    spawn_with(options).await
}

/// Olga, connected to `node`, holds a ticket; returns its id.
async fn olga_holds_a_ticket(node: &TestApp, olga: &mut Socket, category: i64) -> i64 {
    let customer = node.customer("shop-9").await;
    olga.go_available().await;
    let filed = node
        .complain(&node.admin_token, "lost-1", customer, category, "No refund")
        .await;
    let ticket_id = filed.body["id"].as_i64().unwrap();
    olga.accept_next_offer(ticket_id).await;
    ticket_id
}

/// A supervisor's team board, until it shows the agent in `state`.
async fn board_shows(board: &mut Socket, agent: &str, state: AgentState) {
    board
        .until(|e| match e {
            ServerEvent::Board(b) => b
                .teams
                .iter()
                .flat_map(|t| &t.agents)
                .find(|a| a.name == agent && a.state == state)
                .map(|_| ()),
            _ => None,
        })
        .await;
}

async fn supervisor_board(node: &TestApp) -> Socket {
    let (_s, sofia) = node.user("sofia", "supervisor").await;
    let mut board = node.socket(&sofia).await;
    let watching = board
        .command(Command::Subscribe {
            queues: vec![],
            teams: vec!["care".into()],
        })
        .await;
    assert_eq!(watching, ReplyResult::Ok { ticket: None });
    board
}

/// The embedded default (and every other backend) after a crash and a
/// restart: Olga never comes back, so her ticket goes to Boris once the
/// grace has passed.
async fn a_crashed_nodes_agent_loses_her_ticket_after_the_grace(storage: Storage, live: Live) {
    let Some(mut first) = crashable(storage, live).await else {
        return;
    };
    let (_q, category) = first.queue("care", &[], 30).await;
    let (_olga_id, olga_token) = first.agent("olga", &[], 1).await;
    let (boris_id, boris_token) = first.agent("boris", &[], 1).await;
    let mut olga = first.socket(&olga_token).await;
    let ticket_id = olga_holds_a_ticket(&first, &mut olga, category).await;

    first.crash();
    let restarted = first.another_node().await;

    // The restarted node finds Olga connected to a node that is gone: her
    // supervisor sees her offline…
    let mut board = supervisor_board(&restarted).await;
    board_shows(&mut board, "olga", AgentState::Offline).await;
    // …her ticket stays hers within the grace…
    let mut boris = restarted.socket(&boris_token).await;
    boris.go_available().await;
    restarted.clock.advance_ms(GRACE_MS - 1_000);
    let ticket = restarted
        .get(&format!("/api/tickets/{ticket_id}"), &restarted.admin_token)
        .await;
    assert_eq!(ticket.body["status"], "assigned", "{}", ticket.body);
    // …and past it, it goes to Boris.
    restarted.clock.advance_ms(1_001);
    let accepted = boris.accept_next_offer(ticket_id).await;
    assert_eq!(accepted.assigned_agent_id, Some(boris_id));
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_and_restart_sqlite_memory() {
    a_crashed_nodes_agent_loses_her_ticket_after_the_grace(Storage::Sqlite, Live::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_and_restart_postgres_memory() {
    a_crashed_nodes_agent_loses_her_ticket_after_the_grace(Storage::Postgres, Live::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_and_restart_sqlite_redis() {
    a_crashed_nodes_agent_loses_her_ticket_after_the_grace(Storage::Sqlite, Live::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_and_restart_postgres_redis() {
    a_crashed_nodes_agent_loses_her_ticket_after_the_grace(Storage::Postgres, Live::Redis).await;
}

/// Two nodes; the one holding Olga's console dies. The other takes her for
/// absent: her pending offer goes to Boris at once, and her ticket after
/// the grace. An agent whose console was on the surviving node is left
/// alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_one_of_two_nodes_dies_the_other_takes_its_agents_work_back() {
    let Some(mut dying) = crashable(Storage::Postgres, Live::Redis).await else {
        return;
    };
    let survivor = dying.another_node().await;
    let (_q, category) = survivor.queue("care", &[], 30).await;
    let (_olga_id, olga_token) = survivor.agent("olga", &[], 2).await;
    let (boris_id, boris_token) = survivor.agent("boris", &[], 1).await;
    let mut olga = dying.socket(&olga_token).await;
    let held = olga_holds_a_ticket(&survivor, &mut olga, category).await;
    // A second complaint is offered to Olga (she has room for two) and
    // still pending when her node dies.
    let customer = survivor.customer("shop-10").await;
    let pending = survivor
        .complain(&survivor.admin_token, "lost-2", customer, category, "Late")
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    assert_eq!(olga.next_offer().await.ticket.id, pending);
    let mut board = supervisor_board(&survivor).await;
    board_shows(&mut board, "olga", AgentState::Available).await;

    dying.crash();

    // The survivor notices: Olga is offline, her pending offer goes to
    // Boris (connected to the survivor) without waiting for its timeout.
    board_shows(&mut board, "olga", AgentState::Offline).await;
    let mut boris = survivor.socket(&boris_token).await;
    boris.go_available().await;
    boris.accept_next_offer(pending).await;

    // Past the grace, the ticket Olga held is back in the queue; Vera takes it.
    let (_vera_id, vera_token) = survivor.agent("vera", &[], 1).await;
    let mut vera = survivor.socket(&vera_token).await;
    vera.go_available().await;
    survivor.clock.advance_ms(GRACE_MS + 1);
    assert_eq!(vera.next_offer().await.ticket.id, held);
    // Boris, on the surviving node, was not taken for absent: his ticket
    // is still his past the grace.
    let ticket = survivor
        .get(&format!("/api/tickets/{pending}"), &survivor.admin_token)
        .await;
    assert_eq!(ticket.body["assigned_agent_id"], boris_id);
    survivor.stop().await;
}

/// Two nodes; Olga's console (kept open) on the one about to be stuck,
/// holding a ticket; a supervisor's board on the other.
struct StuckNode {
    stuck: TestApp,
    other: TestApp,
    _olga: Socket,
    olga_id: i64,
    held: i64,
    board: Socket,
}

async fn olga_on_a_node_about_to_stick() -> Option<StuckNode> {
    let stuck = crashable(Storage::Postgres, Live::Redis).await?;
    let other = stuck.another_node().await;
    let (_q, category) = other.queue("care", &[], 30).await;
    let (olga_id, olga_token) = other.agent("olga", &[], 1).await;
    let mut olga = stuck.socket(&olga_token).await;
    let held = olga_holds_a_ticket(&other, &mut olga, category).await;
    let mut board = supervisor_board(&other).await;
    board_shows(&mut board, "olga", AgentState::Available).await;
    Some(StuckNode {
        stuck,
        other,
        _olga: olga,
        olga_id,
        held,
        board,
    })
}

impl StuckNode {
    /// The node is stuck until the other takes Olga for absent (her node is
    /// silent), then back: until it has found its word lapsed and recorded
    /// its consoles' connections again.
    async fn stuck_and_back(&mut self) {
        let thaw = self.stuck.freeze();
        board_shows(&mut self.board, "olga", AgentState::Offline).await;
        drop(thaw);
        while self.stuck.metric("callcenter_node_lapses_total").await == 0 {
            tokio::task::yield_now().await;
        }
    }

    /// Past the grace, both nodes having ticked, the ticket is still Olga's.
    async fn past_the_grace_the_ticket_is_still_olgas(self) {
        let (other, stuck) = (self.other, self.stuck);
        other.clock.advance_ms(GRACE_MS + 1);
        let ticks = async || {
            other.metric("callcenter_ticks_total").await
                + stuck.metric("callcenter_ticks_total").await
        };
        let before = ticks().await;
        while ticks().await < before + 2 {
            tokio::task::yield_now().await;
        }
        let ticket = other
            .get(&format!("/api/tickets/{}", self.held), &other.admin_token)
            .await;
        assert_eq!(ticket.body["status"], "assigned", "{}", ticket.body);
        assert_eq!(ticket.body["assigned_agent_id"], self.olga_id);
        other.stop().await;
        stuck.stop().await;
    }
}

/// A node stuck past its term (every worker busy, or cut off) is taken for
/// dead by the others: its agent is marked absent and offline. When it
/// comes back it finds its word lapsed and records its consoles'
/// connections again: the agent, still at her console, keeps her ticket
/// past the grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stuck_past_its_term_keeps_its_agents_tickets_once_back() {
    let Some(mut node) = olga_on_a_node_about_to_stick().await else {
        return;
    };
    node.stuck_and_back().await;
    node.past_the_grace_the_ticket_is_still_olgas().await;
}

/// The node running the periodic work reads a stuck node's name as silent;
/// the node comes back and records its consoles again; only then does the
/// other one forget that node's consoles (the sweep lands just after the
/// return). The node, checking its consoles each tick for a while after a
/// lapse, records them once more, so its agent, still at her console,
/// keeps her ticket past the grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_landing_just_after_a_stuck_node_is_back_takes_nothing() {
    let Some(mut node) = olga_on_a_node_about_to_stick().await else {
        return;
    };
    let record = callcenter::store::Db::connect_only(&node.other.database_url)
        .await
        .unwrap();
    let nodes = record.nodes_with_connected_agents().await.unwrap();
    assert_eq!(nodes.len(), 1, "Olga's console is on one node: {nodes:?}");
    node.stuck_and_back().await;

    // The late sweep: Olga's console on the node is forgotten after the
    // node recorded it again.
    let absent = record
        .mark_node_lost(&nodes[0], node.other.clock.now_ms())
        .await
        .unwrap();
    assert_eq!(absent, vec![node.olga_id]);

    // The node records her console once more.
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while record.nodes_with_connected_agents().await.unwrap() != nodes {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the node that came back records its consoles again");
    node.past_the_grace_the_ticket_is_still_olgas().await;
}
