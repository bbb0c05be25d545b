// The board's escalations panel: tickets agents of the supervisor's teams
// escalated (take over, hand back with a note, or back to the queue for
// another agent), and the tickets this supervisor took over (resolve with
// an outcome, or back to the queue). Live: `escalation_changed` events;
// the list is read again after every (re)connection.

import { api, session } from './api.js';
import { dateTime, field, h, mount, notify, problemText, select } from './ui.js';
import { resolutionCodes } from './ticket_actions.js';

/** The panel (a section element); it keeps itself up to date. */
export function escalationsPanel(live) {
  const me = session()?.user?.id;
  const items = new Map(); // ticket id → escalation
  let codes = [];
  const el = h('section', { class: 'panel escalations', 'aria-labelledby': 'escalations-title' });

  async function refresh() {
    try {
      const [list, known] = await Promise.all([api('GET', '/api/escalations'), resolutionCodes()]);
      codes = known;
      items.clear();
      for (const e of list) items.set(e.ticket.id, e);
    } catch (e) {
      notify(`Escalations: ${problemText(e)}`);
    }
    render();
  }

  async function decide(e, action, note) {
    try {
      await live.command('decide_escalation', { ticket_id: e.ticket.id, action, note });
      const done = { take: 'taken over', hand_back: 'handed back', requeue: 'back in the queue' }[action];
      notify(`Ticket #${e.ticket.id} ${done}`, 'info');
    } catch (err) {
      notify(problemText(err));
      refresh();
    }
  }

  function openItem(e) {
    const note = h('input', { type: 'text', name: 'escalation_note', maxlength: 1000,
      'aria-label': `Note to ${e.escalated_by_name} on ticket ${e.ticket.id}` });
    return h('li', { class: 'escalation', dataset: { ticket: e.ticket.id } },
      h('p', {}, h('strong', {}, `#${e.ticket.id} ${e.customer_name}`), ` · escalated by ${e.escalated_by_name} · ${dateTime(e.escalated_at_ms)}`),
      h('p', { class: 'reason' }, `Reason: ${e.reason}`),
      h('p', { class: 'muted' }, e.ticket.description.slice(0, 160)),
      h('div', { class: 'row wrap' }, field(`Note to ${e.escalated_by_name}`, note),
        h('button', { type: 'button', class: 'primary', onclick: () => decide(e, 'take', note.value) }, `Take over #${e.ticket.id}`),
        h('button', { type: 'button', onclick: () => decide(e, 'hand_back', note.value) }, `Hand back #${e.ticket.id}`),
        h('button', { type: 'button', onclick: () => decide(e, 'requeue', note.value) }, `Requeue #${e.ticket.id}`)));
  }

  function takenItem(e) {
    const id = e.ticket.id;
    const code = select('outcome_code', codes, codes[0]?.[0]);
    const solved = h('input', { type: 'checkbox', name: 'solved', id: `taken-solved-${id}`, checked: true });
    const note = h('input', { type: 'text', name: 'outcome_note', maxlength: 2000 });
    const resolve = async (ev) => {
      ev.preventDefault();
      try {
        await api('POST', `/api/tickets/${id}/escalation/resolve`, { code: code.value, resolved: solved.checked, note: note.value });
        items.delete(id);
        render();
        notify(`Ticket #${id} resolved`, 'info');
      } catch (err) { notify(problemText(err)); }
    };
    return h('li', { class: 'escalation taken', dataset: { ticket: id } },
      h('p', {}, h('strong', {}, `#${id} ${e.customer_name}`), ` · you took it over ${dateTime(e.decided_at_ms)} from ${e.escalated_by_name}`),
      h('p', { class: 'reason' }, `Reason: ${e.reason}`),
      h('p', { class: 'muted' }, e.ticket.description.slice(0, 160)),
      h('form', { class: 'row wrap', 'aria-label': `Resolve ticket ${id}`, onsubmit: resolve },
        field('Resolution', code),
        h('div', { class: 'check' }, solved, h('label', { for: solved.id }, 'Solved')),
        field('Outcome note', note),
        h('button', { type: 'submit', class: 'primary' }, `Resolve #${id}`),
        h('button', { type: 'button', onclick: () => decide(e, 'requeue', note.value) }, `Back to queue #${id}`)));
  }

  function render() {
    const all = [...items.values()].sort((a, b) => a.escalated_at_ms - b.escalated_at_ms);
    const open = all.filter((e) => e.status === 'open');
    const taken = all.filter((e) => e.status === 'taken');
    mount(el,
      h('h2', { id: 'escalations-title' }, 'Escalations ', h('span', { class: 'muted' }, `(${open.length})`)),
      open.length === 0 ? h('p', { class: 'muted' }, 'No ticket escalated.') : h('ul', { class: 'approvals' }, open.map(openItem)),
      taken.length ? [h('h3', {}, 'Taken over by you'), h('ul', { class: 'approvals' }, taken.map(takenItem))] : null);
  }

  live.on('welcome', refresh);
  live.on('escalation_changed', ({ detail }) => {
    const e = detail.escalation;
    const mine = e.status === 'taken' && e.decided_by === me && e.ticket.status === 'assigned';
    if (e.status === 'open' || mine) items.set(e.ticket.id, e);
    else items.delete(e.ticket.id);
    if (e.status === 'open' && e.decided_by === null) notify(`Ticket #${e.ticket.id} escalated by ${e.escalated_by_name}`, 'info');
    render();
  });
  render();
  if (live.state === 'online') refresh();
  return el;
}

