// On a complaint the agent holds: escalate it to a supervisor of the team,
// schedule a callback to the customer; and the customer card's history
// (past tickets and outcomes, compensation with status, consent, calls
// still planned), from GET /api/customers/{id}/history.

import { api } from './api.js';
import { dateTime, field, h, money, notify, problemText, select, words } from './ui.js';

const ESCALATION_STEPS = new Set([
  'escalated', 'escalation_taken', 'escalation_handed_back', 'escalation_requeued', 'escalation_closed',
]);
const FALLBACK_CODES = ['not_resolved', 'explained', 'escalated'];

/** The latest escalation step among a ticket's history events, or null. */
export function latestEscalation(events) {
  const steps = (events || []).filter((e) => ESCALATION_STEPS.has(e.kind));
  return steps.length ? steps[steps.length - 1] : null;
}

let codesCache = null;
/** Active resolution codes ([code, label]), read once per page load. */
export async function resolutionCodes() {
  if (!codesCache) {
    codesCache = api('GET', '/api/resolution-codes')
      .then((codes) => codes.map((c) => [c.code, c.label]))
      .catch(() => FALLBACK_CODES.map((c) => [c, words(c)]));
  }
  return codesCache;
}

/** The escalation panel of a ticket view: the form, or where it stands. */
export function escalationBox(t, live, events, done) {
  const last = latestEscalation(events);
  if (last && last.kind === 'escalated') {
    return h('section', { class: 'stack', 'aria-labelledby': 'escalate-title', id: 'escalation-box' },
      h('h3', { id: 'escalate-title' }, 'Escalation'),
      h('p', { class: 'status-note', role: 'status' }, `Escalated ${dateTime(last.at_ms)}: waiting for a supervisor.`),
      h('p', { class: 'muted' }, `Reason: ${last.data?.reason ?? ''}`));
  }
  const reason = h('textarea', { name: 'escalation_reason', rows: 2, maxlength: 1000, required: true });
  const handedBack = last && last.kind === 'escalation_handed_back'
    ? h('p', { class: 'status-note', role: 'status' },
      `A supervisor handed this back ${dateTime(last.at_ms)}${last.data?.note ? `: “${last.data.note}”` : '.'}`)
    : null;
  return h('form', { class: 'stack', id: 'escalation-box', 'aria-labelledby': 'escalate-title', onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      await live.command('escalate', { ticket_id: t.id, reason: reason.value });
      notify(`Ticket #${t.id} escalated: a supervisor of your team will answer`, 'info');
      done();
    } catch (e) {
      notify(`Could not escalate: ${problemText(e)}`);
    }
  } },
  h('h3', { id: 'escalate-title' }, 'Escalate to a supervisor'),
  handedBack,
  field('Reason for the supervisor', reason),
  h('button', { type: 'submit', id: 'escalate' }, 'Escalate'));
}

/** A datetime-local value (the browser's zone) for a moment. */
function localInput(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/**
 * The callback panel: when (proposed: tomorrow at 10:00), what about, and
 * whether the contact ends now (the usual case) with which outcome.
 * `done(ticket)` gets the ticket as it is afterwards.
 */
export function callbackBox(t, live, customer, codes, done) {
  const tomorrow = new Date();
  tomorrow.setDate(tomorrow.getDate() + 1);
  tomorrow.setHours(10, 0, 0, 0);
  const when = h('input', { type: 'datetime-local', name: 'callback_at', required: true, value: localInput(tomorrow.getTime()) });
  const note = h('textarea', { name: 'callback_note', rows: 2, maxlength: 2000 });
  const end = h('input', { type: 'checkbox', name: 'end_contact', id: `end-contact-${t.id}`, checked: true });
  const code = select('callback_outcome', codes, codes.some(([c]) => c === 'not_resolved') ? 'not_resolved' : codes[0]?.[0]);
  const codeField = field('Outcome of this contact', code);
  end.addEventListener('change', () => { codeField.hidden = !end.checked; });
  const zone = customer?.timezone ? `Your local time. The customer is in ${customer.timezone}.` : 'Your local time.';
  return h('form', { class: 'stack', id: 'callback-box', 'aria-labelledby': 'callback-title', onsubmit: async (ev) => {
    ev.preventDefault();
    const atMs = new Date(when.value).getTime();
    if (!Number.isFinite(atMs)) { notify('Choose when to call back'); when.focus(); return; }
    const at = dateTime(atMs);
    const fields = { ticket_id: t.id, at_ms: atMs, note: note.value };
    if (end.checked) fields.end_with = { code: code.value, resolved: false, note: `Callback scheduled for ${at}. ${note.value}`.trim() };
    try {
      const reply = await live.command('schedule_callback', fields);
      notify(`Callback on ticket #${t.id} scheduled for ${at}`, 'info');
      done(reply.ticket);
    } catch (e) {
      notify(`Could not schedule the callback: ${problemText(e)}`);
      when.focus();
    }
  } },
  h('h3', { id: 'callback-title' }, 'Schedule a callback'),
  field('Call the customer back at', when, zone),
  field('What to call back about', note),
  h('div', { class: 'check' }, end, h('label', { for: end.id }, 'End this contact now (the callback is new work)')),
  codeField,
  h('button', { type: 'submit', id: 'schedule-callback' }, 'Schedule callback'));
}

/** The history part of the customer card. */
export function historyBlocks(history, currentTicketId) {
  if (!history) return h('p', { class: 'muted' }, 'History not available.');
  const c = history.contact;
  const lastChange = c.consent_history?.length ? c.consent_history[c.consent_history.length - 1] : null;
  return [
    h('h4', {}, 'Consent'),
    h('dl', { class: 'facts', id: 'customer-consent' },
      h('dt', {}, 'Service calls'), h('dd', {}, c.consent_calls ? 'consented' : 'no consent'),
      h('dt', {}, 'Do not call'), h('dd', {}, c.do_not_call ? 'yes' : 'no'),
      h('dt', {}, 'Account'), h('dd', {}, words(c.account_status)),
      lastChange ? [h('dt', {}, 'Last change'), h('dd', {}, `${dateTime(lastChange.at_ms)} (${lastChange.source})`)] : null),
    h('h4', {}, 'Past tickets'),
    history.tickets.length
      ? h('ul', { class: 'plain history', id: 'customer-tickets' }, history.tickets.map((p) => h('li', {},
        h('strong', {}, `#${p.id}`), ` ${words(p.kind)} · ${p.category} · ${dateTime(p.created_at_ms)} · `,
        p.id === currentTicketId ? h('em', {}, 'this ticket') : words(p.status),
        p.outcome ? ` · ${words(p.outcome.code)} (${p.outcome.resolved ? 'solved' : 'not solved'})` : '')))
      : h('p', { class: 'muted' }, 'None.'),
    h('h4', {}, 'Compensation'),
    history.compensation.length
      ? h('ul', { class: 'plain history', id: 'customer-compensation' }, history.compensation.map((g) => h('li', {},
        h('strong', {}, money(g.cost_minor)), ` ${words(g.kind)} × ${g.quantity} · ${words(g.status)}${g.reversed ? ', reversed' : ''}`,
        ` · ${words(g.reason_code)} · ticket #${g.ticket_id} · ${dateTime(g.created_at_ms)}`)))
      : h('p', { class: 'muted' }, 'None.'),
    history.scheduled_calls.length ? [
      h('h4', {}, 'Planned calls'),
      h('ul', { class: 'plain history', id: 'customer-calls' }, history.scheduled_calls.map((p) => h('li', {},
        `${dateTime(p.due_at_ms)} · ${p.purpose}`))),
    ] : null,
  ];
}
