// The supervisor board: queues (waiting, oldest wait, service level), agents
// by team and state, pending compensation approvals to approve or deny.
// Live: the server pushes a whole board whenever figures change; waits tick
// locally between pushes.

import { api } from './api.js';
import { escalationsPanel } from './escalations.js';
import { qualityPanel } from './quality_board.js';
import { duration, h, money, mount, notify, problemText, words } from './ui.js';

export function startBoard(root, live) {
  const board = { figures: null, receivedAt: 0, approvals: new Map(), agents: new Map() };
  const queuesEl = h('section', { class: 'panel', 'aria-labelledby': 'queues-title' });
  const agentsEl = h('section', { class: 'panel', 'aria-labelledby': 'agents-title' });
  const approvalsEl = h('section', { class: 'panel', 'aria-labelledby': 'approvals-title' });
  const stamp = h('p', { class: 'muted', id: 'board-stamp' });
  const quality = qualityPanel();
  mount(root, h('div', { class: 'board' },
    h('div', { class: 'board-head' }, h('h1', {}, 'Supervisor board'), stamp),
    queuesEl, quality.el, agentsEl, approvalsEl, escalationsPanel(live)));

  async function subscribe() {
    try {
      const [queues, agents] = await Promise.all([api('GET', '/api/admin/queues'), api('GET', '/api/admin/agents')]);
      board.agents = new Map(agents.map((a) => [a.user.id, a]));
      const teams = [...new Set(agents.flatMap((a) => a.profile.teams))].sort();
      await live.command('subscribe', { queues: queues.map((q) => q.id), teams });
    } catch (e) {
      notify(`Board: ${problemText(e)}`);
    }
    try {
      const pending = await api('GET', '/api/compensation/approvals');
      board.approvals = new Map(pending.map((r) => [r.id, r]));
    } catch (e) {
      notify(`Approvals: ${problemText(e)}`);
    }
    renderApprovals();
  }

  function waitOf(q) {
    if (!q.oldest_waiting_since_ms) return '—';
    return duration(board.figures.at_ms - q.oldest_waiting_since_ms + (Date.now() - board.receivedAt));
  }

  function renderQueues() {
    const f = board.figures;
    if (!f) {
      mount(queuesEl, h('h2', { id: 'queues-title' }, 'Queues'), h('p', { class: 'muted' }, 'Waiting for figures…'));
      return;
    }
    stamp.textContent = `Figures of ${new Date(f.at_ms).toLocaleTimeString('en-GB')}`;
    mount(queuesEl, h('h2', { id: 'queues-title' }, 'Queues'),
      h('table', { class: 'figures' },
        h('thead', {}, h('tr', {}, ['Queue', 'Waiting', 'Oldest wait', 'Service level', 'Answered today'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, f.queues.map((q) => h('tr', { dataset: { queue: q.name } },
          h('th', { scope: 'row' }, q.name),
          h('td', { class: `num waiting${q.waiting > 0 ? ' hot' : ''}` }, String(q.waiting)),
          h('td', { class: 'num wait', dataset: { since: q.oldest_waiting_since_ms ?? '' } }, waitOf(q)),
          h('td', { class: 'num' }, q.service_level_permille === null ? '—' : `${(q.service_level_permille / 10).toFixed(1)} %`),
          h('td', { class: 'num' }, String(q.answered_today)))))));
  }

  function renderAgents() {
    const f = board.figures;
    if (!f) { mount(agentsEl, h('h2', { id: 'agents-title' }, 'Agents')); return; }
    mount(agentsEl, h('h2', { id: 'agents-title' }, 'Agents'),
      f.teams.map((team) => h('div', { class: 'team' },
        h('h3', {}, team.team),
        h('ul', { class: 'agents' }, team.agents.map((a) => h('li', { dataset: { agent: a.name } },
          h('span', { class: 'agent-name' }, a.name),
          h('span', { class: `badge state-${a.state}` }, words(a.state)),
          h('span', { class: 'muted' }, a.tickets === 1 ? '1 ticket' : `${a.tickets} tickets`)))))));
  }

  function renderApprovals() {
    const pending = [...board.approvals.values()].sort((a, b) => a.created_at_ms - b.created_at_ms);
    mount(approvalsEl, h('h2', { id: 'approvals-title' }, 'Pending approvals ', h('span', { class: 'muted' }, `(${pending.length})`)),
      pending.length === 0 ? h('p', { class: 'muted' }, 'Nothing to decide.') :
        h('ul', { class: 'approvals' }, pending.map((r) => {
          const who = board.agents.get(r.requested_by)?.user.display_name || `user ${r.requested_by}`;
          const note = h('input', { type: 'text', name: 'decision_note', maxlength: 500, 'aria-label': `Note on request ${r.id}` });
          const decide = async (approve) => {
            try {
              await live.command('decide_compensation', { compensation_id: r.id, approve, note: note.value });
              board.approvals.delete(r.id);
              renderApprovals();
              notify(`Request #${r.id} ${approve ? 'approved' : 'denied'}`, 'info');
            } catch (e) { notify(problemText(e)); }
          };
          return h('li', { class: 'approval', dataset: { request: r.id } },
            h('p', {}, h('strong', {}, `${money(r.cost_minor)} `), `${words(r.kind)} × ${r.quantity} for ticket #${r.ticket_id}`),
            h('p', { class: 'muted' }, `asked by ${who} · ${words(r.reason_code)}${r.note ? ` · “${r.note}”` : ''} · limit ${money(r.inputs.per_grant_limit_minor)}`),
            h('div', { class: 'row' }, note,
              h('button', { type: 'button', class: 'primary', onclick: () => decide(true) }, `Approve #${r.id}`),
              h('button', { type: 'button', onclick: () => decide(false) }, `Deny #${r.id}`)));
        })));
  }

  live.on('welcome', subscribe);
  live.on('board', ({ detail }) => {
    board.figures = detail;
    board.receivedAt = Date.now();
    renderQueues();
    quality.update(detail);
    renderAgents();
  });
  live.on('compensation_pending', ({ detail }) => {
    board.approvals.set(detail.request.id, detail.request);
    renderApprovals();
  });
  live.on('compensation_decided', ({ detail }) => {
    board.approvals.delete(detail.request.id);
    renderApprovals();
  });
  const ticker = setInterval(() => {
    if (!root.isConnected) { clearInterval(ticker); return; }
    if (!board.figures) return;
    for (const cell of root.querySelectorAll('td.wait')) {
      const since = Number(cell.dataset.since);
      if (since) cell.textContent = duration(board.figures.at_ms - since + (Date.now() - board.receivedAt));
    }
  }, 1000);

  renderQueues();
  renderAgents();
  renderApprovals();
  if (live.state === 'online') subscribe();
}
