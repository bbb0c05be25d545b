// The compensation dialog: what this agent may grant this customer now
// (per grant, day and month budgets, the customer's 90-day cap) and, as the
// agent types, whether the grant is within that authority or would go to a
// supervisor. The request carries an Idempotency-Key made when the dialog
// opens, so a retried submit never grants twice.

import { api } from './api.js';
import { field, h, money, mount, notify, problemText, select, uuid, words } from './ui.js';

let dialog;

function cost(kind, rule, quantity, order) {
  const q = Number(quantity) || 0;
  switch (kind) {
    case 'account_credit': return q;
    case 'percent_discount': return Math.floor(((Number(order) || 0) * q) / 10000);
    default: return (rule?.unit_cost_minor ?? 0) * q;
  }
}

const UNITS = {
  account_credit: 'Amount (minor units, e.g. cents)',
  free_days: 'Days',
  gift: 'Items',
  percent_discount: 'Discount (basis points: 1000 = 10 %)',
};

export async function openCompensation(ticket) {
  if (!dialog) {
    dialog = h('dialog', { class: 'dialog', 'aria-labelledby': 'comp-title' });
    document.body.append(dialog);
  }
  let allowance;
  try {
    allowance = await api('GET', `/api/compensation/allowance?ticket_id=${ticket.id}`);
  } catch (e) {
    notify(`No compensation possible: ${problemText(e)}`);
    return;
  }
  const key = uuid();
  const kinds = allowance.bonus_kinds;
  const kind = select('kind', kinds.map((k) => [k.kind, words(k.kind)]), kinds[0]?.kind);
  const quantity = h('input', { type: 'number', name: 'quantity', min: 1, step: 1, required: true, inputmode: 'numeric' });
  const order = h('input', { type: 'number', name: 'order_amount_minor', min: 0, step: 1 });
  const orderField = field('Order amount (minor units)', order);
  const reason = select('reason_code', allowance.reason_codes.map((r) => [r, words(r)]), allowance.reason_codes[0]);
  const note = h('textarea', { name: 'note', rows: 2, maxlength: 1000, required: allowance.note_required });
  const verdict = h('p', { class: 'verdict', id: 'comp-verdict', 'aria-live': 'polite' });
  const result = h('div', { 'aria-live': 'polite' });
  const quantityField = field(UNITS[kind.value] || 'Quantity', quantity);
  const submit = h('button', { type: 'submit', class: 'primary', id: 'comp-submit' }, 'Grant');

  const update = () => {
    const rule = kinds.find((k) => k.kind === kind.value);
    quantityField.querySelector('label').textContent = UNITS[kind.value] || 'Quantity';
    orderField.hidden = kind.value !== 'percent_discount';
    const c = cost(kind.value, rule, quantity.value, order.value);
    if (!quantity.value) {
      verdict.textContent = `You may grant up to ${money(allowance.may_grant_now_minor)} now.`;
      verdict.dataset.kind = '';
      submit.textContent = 'Grant';
    } else if (c <= allowance.may_grant_now_minor) {
      verdict.textContent = `Costs ${money(c)}: within your authority, granted at once.`;
      verdict.dataset.kind = 'ok';
      submit.textContent = 'Grant';
    } else {
      verdict.textContent = `Costs ${money(c)}: above your ${money(allowance.may_grant_now_minor)}, a supervisor must approve.`;
      verdict.dataset.kind = 'approval';
      submit.textContent = 'Ask a supervisor';
    }
  };
  [kind, quantity, order].forEach((el) => el.addEventListener('input', update));

  const form = h('form', { class: 'stack', method: 'dialog', onsubmit: async (ev) => {
    ev.preventDefault();
    const body = {
      ticket_id: ticket.id,
      kind: kind.value,
      quantity: Number(quantity.value),
      reason_code: reason.value,
      note: note.value,
    };
    if (kind.value === 'percent_discount') body.order_amount_minor = Number(order.value);
    submit.disabled = true;
    try {
      const r = await api('POST', '/api/compensation/requests', body, { 'Idempotency-Key': key });
      const text = {
        granted: `Granted: ${money(r.cost_minor)} (policy v${r.policy_version}, ${words(r.rule)}).`,
        pending: `Sent to a supervisor: ${money(r.cost_minor)}. You will see the decision here.`,
        refused: `Refused by the policy: ${words(r.rule)}.`,
      }[r.status] || words(r.status);
      mount(result, h('p', { class: `result result-${r.status}`, id: 'comp-result', role: 'status' }, text));
      notify(text, r.status === 'refused' ? 'error' : 'info');
    } catch (e) {
      mount(result, h('p', { class: 'result result-refused', role: 'alert' }, problemText(e)));
      submit.disabled = false;
    }
  } },
  h('h2', { id: 'comp-title' }, `Compensate on ticket #${ticket.id}`),
  h('dl', { class: 'facts' },
    h('dt', {}, 'You may grant now'), h('dd', { id: 'comp-may' }, money(allowance.may_grant_now_minor)),
    h('dt', {}, 'Per grant limit'), h('dd', {}, money(allowance.per_grant_limit_minor)),
    h('dt', {}, 'Left today'), h('dd', {}, money(allowance.budget_day_remaining_minor)),
    h('dt', {}, 'Left this month'), h('dd', {}, money(allowance.budget_month_remaining_minor)),
    h('dt', {}, 'Customer\'s 90-day cap left'), h('dd', {}, allowance.customer_cap_remaining_minor === null ? 'no cap' : money(allowance.customer_cap_remaining_minor)),
    h('dt', {}, 'Policy'), h('dd', {}, `version ${allowance.policy_version}`)),
  allowance.category_forbidden ? h('p', { role: 'alert' }, 'This ticket\'s category allows no compensation.') : null,
  field('Kind', kind), quantityField, orderField, field('Reason', reason),
  field(allowance.note_required ? 'Note (required)' : 'Note', note),
  verdict, result,
  h('div', { class: 'row' }, submit,
    h('button', { type: 'button', onclick: () => dialog.close() }, 'Close')));
  mount(dialog, form);
  update();
  dialog.showModal();
  quantity.focus();
}
