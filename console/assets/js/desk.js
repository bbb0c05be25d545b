// The agent desk: state (available / break / offline), the incoming offer
// with its countdown (A accepts, D declines), the agent's tickets, and the
// ticket view: customer card, timeline, notes, outcome, compensation,
// outbound call outcomes.

import { api } from './api.js';
import { openCompensation } from './compensation.js';
import { callbackBox, escalationBox, historyBlocks, resolutionCodes } from './ticket_actions.js';
import { dateTime, duration, field, h, money, mount, notify, problemText, select, words } from './ui.js';

const WANTED = 'callcenter.wanted_state';
const BREAK_REASONS = ['lunch', 'coffee', 'training', 'meeting', 'personal'];
const OUTCOME_CODES = ['explained', 'refund_issued', 'replacement_sent', 'repair_booked', 'compensated', 'escalated', 'not_resolved'];
const REFUSAL_REASONS = ['not_interested', 'too_expensive', 'switched_provider', 'bad_time', 'other'];

export function startDesk(root, live, me) {
  const desk = {
    state: null,
    reason: null,
    offers: new Map(),
    // Offers ("ticket:version") withdrawn before they arrived: an offer and
    // its rescind can reach the stream in either order, and an offer whose
    // rescind came first is void.
    voided: new Set(),
    tickets: new Map(),
    briefs: new Map(),
    selected: null,
    wanted: JSON.parse(sessionStorage.getItem(WANTED) || 'null'),
  };

  const stateBar = h('section', { class: 'panel statebar', 'aria-labelledby': 'state-title' });
  const offerBox = h('section', { class: 'offer', 'aria-live': 'assertive', 'aria-label': 'Incoming offer' });
  const list = h('section', { class: 'panel tickets', 'aria-labelledby': 'tickets-title' });
  const view = h('section', { class: 'panel ticket', 'aria-label': 'Ticket' });
  mount(root, h('div', { class: 'desk' },
    h('div', { class: 'desk-side' }, stateBar, list),
    h('div', { class: 'desk-main' }, offerBox, view)));

  function remember(wanted) {
    desk.wanted = wanted;
    sessionStorage.setItem(WANTED, JSON.stringify(wanted));
  }

  async function setState(state, reason) {
    remember({ state, reason: reason || null });
    try {
      await live.command('set_state', { state, reason: reason || null });
    } catch (e) {
      notify(`Could not change state: ${problemText(e)}`);
    }
  }

  // After a drop the server takes the agent offline; the console puts the
  // agent back where they chose to be, so no offer is missed.
  function restoreWanted() {
    const w = desk.wanted;
    if (!w || live.state !== 'online') return;
    if (desk.state === 'offline' && desk.reason === 'disconnected' && w.state !== 'offline') {
      live.command('set_state', { state: w.state, reason: w.reason }).catch((e) => notify(problemText(e)));
    }
  }

  function renderState() {
    const reasonSelect = select('reason', BREAK_REASONS.map((r) => [r, words(r)]), desk.wanted?.reason || 'lunch');
    const label = desk.state ? words(desk.state) : 'unknown';
    mount(stateBar,
      h('h2', { id: 'state-title' }, 'My state'),
      h('p', { class: 'state-now' }, 'Now: ', h('strong', { class: `badge state-${desk.state}`, id: 'my-state' }, label),
        desk.reason && desk.state !== 'available' ? ` (${words(desk.reason)})` : ''),
      h('div', { class: 'row' },
        h('button', { type: 'button', class: 'primary', id: 'go-available', onclick: () => setState('available'),
          disabled: desk.state === 'available' }, 'Go available'),
        h('button', { type: 'button', id: 'go-offline', onclick: () => setState('offline'),
          disabled: desk.state === 'offline' }, 'Go offline')),
      h('div', { class: 'row' },
        field('Break reason', reasonSelect),
        h('button', { type: 'button', id: 'go-break', onclick: () => setState('break', reasonSelect.value) }, 'Take a break')));
  }

  function renderOffers() {
    const offer = [...desk.offers.values()][0];
    if (!offer) {
      offerBox.hidden = true;
      mount(offerBox);
      return;
    }
    offerBox.hidden = false;
    offerBox.dataset.ticket = offer.ticket.id;
    offerBox.dataset.version = offer.version;
    const c = offer.customer;
    const t = offer.ticket;
    const countdown = h('strong', { class: 'countdown', 'aria-live': 'off' });
    const tick = () => {
      const left = offer.deadline_ms - Date.now();
      countdown.textContent = left > 0 ? duration(left) : 'expiring';
    };
    tick();
    clearInterval(desk.countdown);
    desk.countdown = setInterval(tick, 1000);
    mount(offerBox,
      h('h2', {}, t.kind === 'outbound' ? 'Outbound call offered' : 'New ticket offered', ' ', h('span', { class: 'muted' }, `#${t.id}`)),
      h('div', { class: 'offer-body' },
        customerSummary(c),
        h('div', {},
          h('p', { class: 'description' }, t.description),
          h('p', { class: 'muted' }, `${words(t.channel)} · filed ${dateTime(t.created_at_ms)}`),
          offer.outbound ? purposes(offer.outbound) : null)),
      h('div', { class: 'row offer-actions' },
        h('span', {}, 'Answer within ', countdown),
        h('button', { type: 'button', class: 'primary', id: 'accept', 'aria-keyshortcuts': 'A',
          onclick: () => answer(offer, 'accept') }, h('u', {}, 'A'), 'ccept'),
        h('button', { type: 'button', id: 'decline', 'aria-keyshortcuts': 'D',
          onclick: () => answer(offer, 'decline') }, h('u', {}, 'D'), 'ecline')));
  }

  // A declined ticket may be offered again (a new version) before the
  // reply to the decline arrives: only the answered offer is dropped.
  function dropOffer(offer) {
    if (desk.offers.get(offer.ticket.id)?.version === offer.version) desk.offers.delete(offer.ticket.id);
  }

  async function answer(offer, how) {
    const id = offer.ticket.id;
    try {
      const reply = await live.command(how, { ticket_id: id, version: offer.version });
      dropOffer(offer);
      if (how === 'accept' && reply.ticket) {
        if (offer.outbound) desk.briefs.set(id, offer.outbound);
        desk.tickets.set(id, reply.ticket);
        select_(id);
      }
    } catch (e) {
      dropOffer(offer);
      notify(`Could not ${how}: ${problemText(e)}`);
    }
    renderOffers();
    renderList();
  }

  function renderList() {
    const mine = [...desk.tickets.values()].sort((a, b) => a.created_at_ms - b.created_at_ms);
    mount(list,
      h('h2', { id: 'tickets-title' }, 'My tickets ', h('span', { class: 'muted' }, `(${mine.length})`)),
      mine.length === 0
        ? h('p', { class: 'muted' }, 'No tickets. Go available to receive offers.')
        : h('ul', { class: 'ticket-list' }, mine.map((t) => h('li', {},
          h('button', { type: 'button', class: `ticket-link${t.id === desk.selected ? ' current' : ''}`,
            'aria-current': t.id === desk.selected ? 'true' : null, onclick: () => select_(t.id) },
          h('strong', {}, `#${t.id} `), words(t.kind), ' · ', t.description.slice(0, 60))))));
  }

  function select_(id) {
    desk.selected = id;
    renderList();
    renderTicket();
  }

  async function renderTicket() {
    const id = desk.selected;
    const t = desk.tickets.get(id);
    if (!t) {
      mount(view, h('h2', {}, 'Ticket'), h('p', { class: 'muted' }, 'Select a ticket, or accept an offer.'));
      return;
    }
    mount(view, h('h2', {}, `Ticket #${id}`), h('p', { class: 'muted' }, 'Loading…'));
    let customer; let contact = null; let history; let past = null; let codes = [];
    try {
      [customer, history] = await Promise.all([
        api('GET', `/api/customers/${t.customer_id}`),
        api('GET', `/api/tickets/${id}/history`),
      ]);
      [past, codes] = await Promise.all([
        api('GET', `/api/customers/${t.customer_id}/history`).catch(() => null),
        resolutionCodes(),
      ]);
      contact = past ? past.contact : await api('GET', `/api/customers/${t.customer_id}/contact`).catch(() => null);
    } catch (e) {
      // Taken over or ended meanwhile: the view moved on already.
      if (desk.selected !== id || !desk.tickets.has(id)) return;
      mount(view, h('h2', {}, `Ticket #${id}`), h('p', { role: 'alert' }, problemText(e)));
      return;
    }
    if (desk.selected !== id) return;
    const brief = desk.briefs.get(id);
    mount(view,
      h('h2', {}, `Ticket #${id} `, h('span', { class: `badge status-${t.status}` }, words(t.status))),
      h('p', { class: 'description' }, t.description),
      h('p', { class: 'muted' }, `${words(t.kind)} · ${words(t.channel)} · filed ${dateTime(t.created_at_ms)}`),
      h('div', { class: 'columns' },
        customerCard(customer, contact, past, id),
        h('section', { 'aria-labelledby': 'timeline-title' },
          h('h3', { id: 'timeline-title' }, 'Timeline'),
          h('ol', { class: 'timeline' }, history.events.map((e) => h('li', {},
            h('time', {}, dateTime(e.at_ms)), ' ', h('strong', {}, words(e.kind)), eventDetail(e)))))),
      t.status === 'assigned' ? actions(t, brief) : null,
      t.status === 'assigned' && t.kind === 'inbound' ? h('div', { class: 'columns' },
        escalationBox(t, live, history.events, () => renderTicket()),
        callbackBox(t, live, customer, codes, (after) => {
          if (after && after.status !== 'assigned') {
            desk.tickets.delete(t.id);
            desk.selected = null;
            renderList();
          }
          renderTicket();
        })) : null);
  }

  function actions(t, brief) {
    const noteText = h('textarea', { name: 'note', rows: 2, maxlength: 2000, required: true });
    const noteForm = h('form', { class: 'stack', onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        await live.command('note', { ticket_id: t.id, text: noteText.value });
        noteText.value = '';
        renderTicket();
      } catch (e) { notify(problemText(e)); }
    } }, field('Note', noteText), h('button', { type: 'submit' }, 'Add note'));

    const compensate = h('button', { type: 'button', id: 'compensate', onclick: () => openCompensation(t) }, 'Compensate…');

    if (t.kind === 'outbound') {
      return h('div', { class: 'columns' }, h('div', { class: 'stack' }, brief ? purposes(brief) : null, noteForm, compensate),
        callOutcomeForm(t));
    }
    const code = select('code', OUTCOME_CODES.map((c) => [c, words(c)]), 'explained');
    const resolved = h('input', { type: 'checkbox', name: 'resolved', id: `resolved-${t.id}`, checked: true });
    const outcomeNote = h('textarea', { name: 'outcome_note', rows: 2, maxlength: 2000 });
    const outcomeForm = h('form', { class: 'stack', 'aria-labelledby': 'outcome-title', onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        await live.command('resolve', { ticket_id: t.id, outcome: { code: code.value, resolved: resolved.checked, note: outcomeNote.value } });
        desk.tickets.delete(t.id);
        desk.selected = null;
        notify(`Ticket #${t.id} resolved`, 'info');
        renderList();
        renderTicket();
      } catch (e) { notify(problemText(e)); }
    } },
    h('h3', { id: 'outcome-title' }, 'Outcome'),
    field('Resolution', code),
    h('div', { class: 'check' }, resolved, h('label', { for: resolved.id }, 'The customer\'s problem is solved')),
    field('Outcome note', outcomeNote),
    h('button', { type: 'submit', class: 'primary', id: 'resolve' }, 'Resolve ticket'));
    return h('div', { class: 'columns' }, h('div', { class: 'stack' }, noteForm, compensate), outcomeForm);
  }

  function callOutcomeForm(t) {
    const reason = select('reason_code', REFUSAL_REASONS.map((r) => [r, words(r)]), 'not_interested');
    const when = h('input', { type: 'datetime-local', name: 'callback_at' });
    const note = h('textarea', { name: 'call_note', rows: 2, maxlength: 2000 });
    const send = async (result) => {
      const outcome = { result, note: note.value };
      if (result === 'refused') outcome.reason_code = reason.value;
      if (result === 'callback_requested') {
        if (!when.value) { notify('Choose when to call back'); when.focus(); return; }
        outcome.callback_at_ms = new Date(when.value).getTime();
      }
      try {
        await live.command('call_outcome', { ticket_id: t.id, outcome });
        desk.tickets.delete(t.id);
        desk.selected = null;
        notify(`Call #${t.id}: ${words(result)}`, 'info');
        renderList();
        renderTicket();
      } catch (e) { notify(problemText(e)); }
    };
    return h('section', { class: 'stack', 'aria-labelledby': 'call-title' },
      h('h3', { id: 'call-title' }, 'Call outcome'),
      field('Note', note),
      h('div', { class: 'row' },
        h('button', { type: 'button', class: 'primary', onclick: () => send('reached') }, 'Reached'),
        h('button', { type: 'button', onclick: () => send('no_answer') }, 'No answer'),
        h('button', { type: 'button', onclick: () => send('wrong_number') }, 'Wrong number')),
      h('div', { class: 'row' }, field('Refusal reason', reason), h('button', { type: 'button', onclick: () => send('refused') }, 'Refused')),
      h('div', { class: 'row' }, field('Call back at', when), h('button', { type: 'button', onclick: () => send('callback_requested') }, 'Callback')));
  }

  // Keyboard: A accepts and D declines the offer (not while typing).
  document.addEventListener('keydown', (ev) => {
    if (!root.isConnected || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const tag = ev.target?.tagName;
    if (['INPUT', 'TEXTAREA', 'SELECT'].includes(tag) || document.querySelector('dialog[open]')) return;
    const offer = [...desk.offers.values()][0];
    if (!offer) return;
    if (ev.key === 'a' || ev.key === 'A') { ev.preventDefault(); answer(offer, 'accept'); }
    if (ev.key === 'd' || ev.key === 'D') { ev.preventDefault(); answer(offer, 'decline'); }
  }, { signal: live.scope.signal });

  live.on('snapshot', ({ detail }) => {
    desk.state = detail.state;
    desk.reason = null;
    desk.offers = new Map(detail.pending_offers.map((o) => [o.ticket.id, o]));
    for (const o of detail.pending_offers) if (o.outbound) desk.briefs.set(o.ticket.id, o.outbound);
    desk.tickets = new Map(detail.assigned.map((t) => [t.id, t]));
    if (desk.state === 'offline') desk.reason = 'disconnected';
    renderState(); renderOffers(); renderList(); renderTicket();
    restoreWanted();
  });
  live.on('offer', ({ detail }) => {
    if (desk.voided.delete(`${detail.ticket.id}:${detail.version}`)) return;
    desk.offers.set(detail.ticket.id, detail);
    if (detail.outbound) desk.briefs.set(detail.ticket.id, detail.outbound);
    renderOffers();
  });
  live.on('offer_rescinded', ({ detail }) => {
    const o = desk.offers.get(detail.ticket_id);
    if (o && o.version === detail.version) {
      desk.offers.delete(detail.ticket_id);
      renderOffers();
      if (detail.reason !== 'disconnected') notify(`Offer #${detail.ticket_id} withdrawn (${words(detail.reason)})`, 'info');
    } else if (!o || o.version < detail.version) {
      if (desk.voided.size >= 64) desk.voided.delete(desk.voided.values().next().value);
      desk.voided.add(`${detail.ticket_id}:${detail.version}`);
    }
  });
  live.on('agent_state_changed', ({ detail }) => {
    desk.state = detail.state;
    desk.reason = detail.reason;
    renderState();
    restoreWanted();
  });
  live.on('ticket_updated', ({ detail }) => {
    const t = detail.ticket;
    if (t.status === 'assigned' && t.assigned_agent_id === me.id) desk.tickets.set(t.id, t);
    else desk.tickets.delete(t.id);
    renderList();
    if (desk.selected === t.id) renderTicket();
  });
  live.on('compensation_decided', ({ detail }) => {
    const r = detail.request;
    notify(`Compensation request #${r.id} for ticket #${r.ticket_id}: ${words(r.status)}`, r.status === 'approved' ? 'info' : 'error');
    if (desk.selected === r.ticket_id) renderTicket();
  });
  live.on('escalation_changed', ({ detail }) => {
    const e = detail.escalation;
    if (e.escalated_by !== me.id) return;
    const by = e.decided_by_name || 'a supervisor';
    const text = {
      taken: `${by} took ticket #${e.ticket.id} over`,
      handed_back: `${by} handed ticket #${e.ticket.id} back${e.note ? `: “${e.note}”` : ''}`,
      requeued: `${by} put ticket #${e.ticket.id} back in the queue for another agent`,
    }[e.status];
    if (text) notify(text, 'info');
    if (desk.selected === e.ticket.id) renderTicket();
  });
  live.on('welcome', () => restoreWanted());

  renderState();
  renderOffers();
  renderList();
  renderTicket();
}

function customerSummary(c) {
  return h('dl', { class: 'facts' },
    h('dt', {}, 'Customer'), h('dd', {}, c.name),
    h('dt', {}, 'Tier'), h('dd', {}, h('span', { class: `badge tier-${c.tier}` }, c.tier)),
    h('dt', {}, 'Yearly value'), h('dd', {}, money(c.value_minor)),
    h('dt', {}, 'Purchases'), h('dd', {}, String(c.purchases?.length ?? 0)));
}

function customerCard(c, contact, past, ticketId) {
  return h('section', { class: 'card', 'aria-labelledby': 'customer-title' },
    h('h3', { id: 'customer-title' }, 'Customer'),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Name'), h('dd', {}, c.name),
      h('dt', {}, 'Tier'), h('dd', {}, h('span', { class: `badge tier-${c.tier}` }, c.tier)),
      h('dt', {}, 'Yearly value'), h('dd', {}, money(c.value_minor)),
      h('dt', {}, 'Phone'), h('dd', {}, c.phone || '—'),
      h('dt', {}, 'Email'), h('dd', {}, c.email || '—'),
      h('dt', {}, 'Time zone'), h('dd', {}, c.timezone || '—'),
      contact && !past ? [
        h('dt', {}, 'Consent to calls'), h('dd', {}, contact.consent_calls ? 'yes' : 'no'),
        h('dt', {}, 'Do not call'), h('dd', {}, contact.do_not_call ? 'yes' : 'no'),
        h('dt', {}, 'Account'), h('dd', {}, words(contact.account_status)),
      ] : null),
    h('h4', {}, 'Purchases'),
    c.purchases?.length
      ? h('ul', { class: 'plain' }, c.purchases.map((p) => h('li', {}, `${p.product} · ${money(p.amount_minor, p.currency)} · ${dateTime(p.purchased_at_ms)}`)))
      : h('p', { class: 'muted' }, 'None recorded.'),
    past !== undefined ? historyBlocks(past, ticketId) : null);
}

function purposes(brief) {
  return h('section', { class: 'brief', 'aria-label': 'Why we call' },
    h('p', { class: 'muted' }, `Attempt ${brief.attempt}`),
    brief.purposes.map((p) => h('div', {}, h('h4', {}, p.purpose), h('p', { class: 'script' }, p.script))));
}

function eventDetail(e) {
  const d = e.data || {};
  const parts = [];
  if (d.text) parts.push(d.text);
  if (d.reason) parts.push(words(d.reason));
  if (d.code) parts.push(`${words(d.code)}${d.resolved ? ' (solved)' : ''}`);
  if (d.note) parts.push(d.note);
  if (d.at_ms) parts.push(`for ${dateTime(d.at_ms)}`);
  return parts.length ? `: ${parts.join(' · ')}` : '';
}
