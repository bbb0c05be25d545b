// The supervisor board's quality panel: today's figures of complaints ended
// today (UTC), for the whole call center and per watched queue, as counts
// (never a bare average): ended, resolved by the agent's account, the
// customers' confirmations, first-contact resolutions (confirmed), reopens
// and how many customers gave each satisfaction score. The server reads
// them at most every few seconds and sends them with the board.

import { h, mount } from './ui.js';

const COLUMNS = [
  ['Ended', 'Complaints ended today'],
  ['Resolved', 'Resolved, by the agent\u2019s account'],
  ['Confirmed', 'The customer confirmed it is still solved'],
  ['Denied', 'The customer said it is not solved'],
  ['Awaiting', 'Asked to confirm, no answer yet'],
  ['First-contact resolved', 'First contact, resolved and confirmed by the customer'],
  ['Reopened', 'The customer came back with the same problem'],
];

function row(label, f, isTotal) {
  const cells = [
    f.ended, f.resolved, f.confirmations.confirmed, f.confirmations.denied,
    f.confirmations.awaiting, f.first_contact_resolved, f.reopened,
  ].map((n) => h('td', { class: 'num' }, String(n)));
  const sat = f.satisfaction.counts.map((n, i) => h('td', { class: 'num sat', 'aria-label': `score ${i + 1}: ${n}` }, String(n)));
  return h('tr', { class: isTotal ? 'total' : '', dataset: { qualityRow: label } },
    h('th', { scope: 'row' }, label), ...cells, ...sat, h('td', { class: 'num' }, String(f.satisfaction.n)));
}

/** The panel; `update(board)` redraws it from a board frame. */
export function qualityPanel() {
  const el = h('section', { class: 'panel quality-today', 'aria-labelledby': 'quality-title' });
  const title = (day) => h('h2', { id: 'quality-title' }, 'Quality today ',
    h('span', { class: 'muted' }, day ? `(complaints ended ${day}, UTC)` : ''));
  mount(el, title(null), h('p', { class: 'muted' }, 'Waiting for figures\u2026'));

  function update(board) {
    const q = board && board.quality;
    if (!q) return;
    const names = new Map((board.queues || []).map((x) => [x.queue_id, x.name]));
    mount(el, title(q.day),
      h('table', { class: 'figures quality' },
        h('thead', {},
          h('tr', {},
            h('th', { scope: 'col', rowspan: 2 }, 'Queue'),
            COLUMNS.map(([label, hint]) => h('th', { scope: 'col', rowspan: 2, title: hint, class: 'num' }, label)),
            h('th', { scope: 'colgroup', colspan: 6, class: 'sat-head' }, 'Satisfaction answers (customers per score, 1 worst \u2013 5 best)')),
          h('tr', {}, ['1', '2', '3', '4', '5', 'All'].map((c) => h('th', { scope: 'col', class: 'num' }, c)))),
        h('tbody', {},
          row('All queues', q.overall, true),
          q.queues.map((x) => row(names.get(x.queue_id) || `Queue ${x.queue_id}`, x.today, false)))),
      h('p', { class: 'muted' }, 'Counts, not averages. Customers confirm a few days after a complaint ends, so today\u2019s complaints carry few confirmations yet; scorecards cover past days.'));
  }
  return { el, update };
}
