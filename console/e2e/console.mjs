// The web console in a real browser (Debian's Chromium through
// playwright-core), against a running server:
//
//   node console.mjs <base-url> <admin-password> <artifacts-dir>
//
// An admin sets up the call center over the API; a supervisor watches the
// board on a 1920×1080 screen while an agent (1280×800) logs in, takes a
// break with a reason and comes back, goes available, is never shown a
// complaint withdrawn at once whose rescind overtook its offer on the way
// (the test delivers the two frames in that order), declines a complaint
// filed through the API with the D key and accepts it again with A, sees
// the customer card's history, grants a compensation within authority, asks
// for one above it (the supervisor approves it live), escalates (the
// supervisor sees it live and hands it back with a note), resolves; then
// the agent's connection is cut, a complaint is filed meanwhile, and once
// the connection is back its offer arrives; the agent escalates it and the
// supervisor takes it over and resolves it on the board; a third complaint
// ends with a callback scheduled; an outbound service call is offered and
// ended with its outcome buttons. An admin logs in with the keyboard alone
// (focus always visible) and gets a validation error in a form. Every
// screen is checked for WCAG contrast (text ≥ 4.5:1, measured) and, at
// 1280×800, for horizontal scrolling. No console errors anywhere.
// Screenshots of each screen go to <artifacts-dir>. Prints `RESULT {json}`
// for the Rust test to check the record.

import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [base, adminPassword, artifacts = 'test-artifacts/console'] = process.argv.slice(2);
if (!base || !adminPassword) {
  console.error('usage: node console.mjs <base-url> <admin-password> [artifacts-dir]');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const PASSWORD = 'console password 1';
const TIMEOUT = 15_000;
const DAY_MS = 86_400_000;

// ---------------------------------------------------------------- the API
async function call(method, path, token, body, headers = {}) {
  const response = await fetch(base + path, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return json;
}

const admin = (await call('POST', '/api/auth/login', null, { username: 'admin', password: adminPassword })).access_token;
const agent = await call('POST', '/api/admin/users', admin, { username: 'olga', display_name: 'Olga Ivanova', role: 'agent', password: PASSWORD });
await call('PUT', `/api/admin/agents/${agent.id}`, admin, { skills: [{ skill: 'billing', level: 5 }], teams: ['care'], capacity_inbound: 1, capacity_outbound: 1 });
const supervisor = await call('POST', '/api/admin/users', admin, { username: 'sveta', display_name: 'Sveta Orlova', role: 'supervisor', password: PASSWORD });
await call('PUT', `/api/admin/supervisors/${supervisor.id}/teams`, admin, { teams: ['care'] });
const queue = await call('POST', '/api/admin/queues', admin, { name: 'billing', required_skills: [{ skill: 'billing', level: 3 }], service_level_seconds: 60, offer_timeout_seconds: 600 });
const category = await call('POST', '/api/admin/categories', admin, { name: 'double charge', queue_id: queue.id });
const customer = await call('POST', '/api/customers', admin, { external_id: 'shop-42', name: 'Anna Petrova', tier: 'gold', value_minor: 120000, phone: '+7 900 000 00 00', timezone: 'Europe/Moscow' });
await call('POST', `/api/customers/${customer.id}/purchases`, admin, { external_id: 'order-1', product: 'Washing machine', amount_minor: 54900, currency: 'EUR' });
await call('POST', '/api/admin/compensation/policies', admin, {
  currency: 'EUR',
  bonus_kinds: [{ kind: 'account_credit', max_quantity: 100000 }, { kind: 'free_days', unit_cost_minor: 300, max_quantity: 30 }],
  roles: [
    { role: 'agent', per_grant: { max_minor: 2000 }, budget_per_day_minor: 5000, budget_per_month_minor: 40000 },
    { role: 'supervisor', per_grant: { max_minor: 20000 }, budget_per_day_minor: 20000, budget_per_month_minor: 200000 },
  ],
  customer_cap_90d: { max_minor: 30000 },
  reason_codes: ['late_delivery', 'double_charge'],
  note_required: false,
  forbidden_category_ids: [],
  approval_timeout_minutes: 15,
});
// Calls at any hour (the test runs whenever CI does); both customers agreed
// to service calls.
await call('PUT', '/api/admin/contact-policy', admin, {
  max_contacts: 5, window_days: 7, merge_window_hours: 1, call_from: '00:00', call_until: '23:59',
  weekdays: [1, 2, 3, 4, 5, 6, 7], default_timezone: 'UTC', retry_backoff_minutes: [120, 1440],
  max_attempts: 3, outbound_rank_offset_seconds: 0, open_complaint_recheck_minutes: 60,
});
await call('PUT', `/api/customers/${customer.id}/contact`, admin, { consent_calls: true, source: 'web_form' });
const boris = await call('POST', '/api/customers', admin, { external_id: 'shop-43', name: 'Boris Sokolov', tier: 'silver', value_minor: 30000, phone: '+7 900 000 00 01', timezone: 'Europe/Moscow' });
await call('PUT', `/api/customers/${boris.id}/contact`, admin, { consent_calls: true, source: 'web_form' });
let complaints = 0;
const complain = (description) => call('POST', '/api/complaints', admin,
  { customer_id: customer.id, category_id: category.id, description, channel: 'phone' },
  { 'Idempotency-Key': `console-e2e-${++complaints}` });

// ---------------------------------------------------------------- the browser
// launch() gives the browser a fresh, temporary user-data-dir of its own.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const problems = [];
// Console errors a step provokes on purpose (say, a 422 answer the page
// shows as a validation error); each pattern excuses one message.
const expectedErrors = [];
async function screen(name, viewport) {
  const context = await browser.newContext({ viewport, baseURL: base });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const i = expectedErrors.findIndex((re) => re.test(m.text()));
    if (i >= 0) expectedErrors.splice(i, 1);
    else problems.push(`${name}: console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`${name}: uncaught: ${e.message}`));
  return page;
}
const shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`) });
async function logIn(page, username, password) {
  await page.goto('/');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('#connection[data-state="online"]').waitFor();
}
const step = (text) => console.log(`- ${text}`);
const result = {};

// ------------------------------------------------------------ measurements
// WCAG 2.x contrast of every visible piece of text against the background
// it is drawn on (backgrounds composited up the tree), from the computed
// styles. Disabled controls are exempt (as WCAG says).
function contrastFailures() {
  const parse = (c) => {
    const m = c.match(/rgba?\(([^)]+)\)/);
    if (!m) return { r: 0, g: 0, b: 0, a: 0 };
    const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const over = (top, under) => ({
    r: top.r * top.a + under.r * (1 - top.a),
    g: top.g * top.a + under.g * (1 - top.a),
    b: top.b * top.a + under.b * (1 - top.a),
    a: 1,
  });
  const lum = ({ r, g, b }) => {
    const f = (v) => { const s = v / 255; return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c.a > 0) layers.push(c);
      if (c.a >= 1) break;
    }
    let bg = { r: 255, g: 255, b: 255, a: 1 };
    for (const layer of layers.reverse()) bg = over(layer, bg);
    return bg;
  };
  const failures = [];
  let checked = 0;
  for (const el of document.querySelectorAll('body *')) {
    if (['SCRIPT', 'STYLE', 'OPTION', 'NOSCRIPT'].includes(el.tagName)) continue;
    const own = [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    const field = ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName) && el.type !== 'checkbox' && el.type !== 'hidden';
    if (!own && !field) continue;
    if (el.closest(':disabled, [hidden], [aria-hidden="true"]')) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0 || box.right < 0 || box.bottom < 0) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || style.display === 'none') continue;
    const bg = background(el);
    const fg = over(parse(style.color), bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    checked += 1;
    if (ratio < 4.5) {
      const text = (el.value || el.textContent || '').trim().slice(0, 40);
      failures.push(`${el.tagName.toLowerCase()}.${el.className} “${text}”: ${ratio.toFixed(2)}:1 (${style.color} on rgb(${bg.r}, ${bg.g}, ${bg.b}))`);
    }
  }
  return { checked, failures };
}
async function checkContrast(page, label) {
  const { checked, failures } = await page.evaluate(contrastFailures);
  assert.ok(checked > 5, `${label}: only ${checked} text elements measured`);
  assert.deepEqual(failures, [], `${label}: text below 4.5:1 contrast`);
  return checked;
}
async function checkNoHorizontalScroll(page, label) {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth, width: document.documentElement.clientWidth,
  }));
  assert.ok(scroll <= width, `${label}: the page scrolls sideways at ${width} px (content ${scroll} px wide)`);
}
/** The focused element shows a focus ring (outline ≥ 2 px, not `none`). */
async function focusRing(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return { ok: false, what: 'nothing focused' };
    const s = getComputedStyle(el);
    const ok = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
    return { ok, what: `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''} “${(el.textContent || el.name || '').trim().slice(0, 30)}” outline ${s.outlineStyle} ${s.outlineWidth}` };
  });
}

try {
  // The supervisor's wall screen.
  const board = await screen('supervisor', { width: 1920, height: 1080 });
  await logIn(board, 'sveta', PASSWORD);
  const billingRow = board.locator('tr[data-queue="billing"]');
  const olgaOnBoard = board.locator('li[data-agent="Olga Ivanova"]');
  await olgaOnBoard.locator('.badge', { hasText: 'offline' }).waitFor();
  step('the supervisor sees the board');

  // The agent's desk, with a connection the test can cut.
  const desk = await screen('agent', { width: 1280, height: 800 });
  let cut = false;
  const sockets = [];
  // Frames from the server pass through, except while an overtaking is set
  // up: then the next offer waits for its own rescind, which goes first
  // with the offer's stream number (the order in which a busy server can
  // write them: the offer's delivery reads the customer's card while the
  // rescind is written).
  let overtaking = null;
  await desk.routeWebSocket(/\/ws$/, (ws) => {
    if (cut) { ws.close(); return; }
    const server = ws.connectToServer();
    server.onMessage((message) => {
      const frame = overtaking && JSON.parse(message);
      if (frame?.type === 'offer' && !overtaking.offer) {
        overtaking.offer = frame;
        overtaking.held(frame);
        return;
      }
      if (frame?.type === 'offer_rescinded' && frame.ticket_id === overtaking.offer?.ticket.id) {
        const offer = overtaking.offer;
        ws.send(JSON.stringify({ ...frame, seq: offer.seq }));
        ws.send(JSON.stringify({ ...offer, seq: frame.seq }));
        overtaking.passed();
        overtaking = null;
        return;
      }
      ws.send(message);
    });
    sockets.push(server);
    sockets.push(ws);
  });
  const overtake = () => {
    let held, passed;
    overtaking = { held: (f) => held(f), passed: () => passed() };
    return { held: new Promise((r) => { held = r; }), passed: new Promise((r) => { passed = r; }) };
  };
  await desk.goto('/');
  await shot(desk, '01-login');
  await checkContrast(desk, 'login');
  await logIn(desk, 'olga', PASSWORD);

  // A break with a reason, and back.
  await desk.getByLabel('Break reason').selectOption('coffee');
  await desk.getByRole('button', { name: 'Take a break' }).click();
  await desk.locator('#my-state', { hasText: 'break' }).waitFor();
  await desk.locator('.state-now', { hasText: '(coffee)' }).waitFor();
  await olgaOnBoard.locator('.badge', { hasText: 'break' }).waitFor();
  await shot(desk, '02-desk-break');
  await desk.getByRole('button', { name: 'Go available' }).click();
  await desk.locator('#my-state', { hasText: 'available' }).waitFor();
  await olgaOnBoard.locator('.badge', { hasText: 'available' }).waitFor();
  step('the agent takes a coffee break and comes back; the board shows both live');
  await shot(desk, '02-desk-available');
  await checkContrast(desk, 'desk');
  await checkNoHorizontalScroll(desk, 'desk');

  // A complaint withdrawn at once: its rescind overtakes its offer on the
  // way to the console, which then never shows that offer.
  const overtaken = overtake();
  const withdrawn = await complain('Filed by mistake');
  result.withdrawn_ticket = withdrawn.id;
  assert.equal((await overtaken.held).ticket.id, withdrawn.id);
  await call('POST', `/api/tickets/${withdrawn.id}/cancel`, admin, { reason: 'filed by mistake' });
  await overtaken.passed;

  // An offer through the API; declined with D, offered again, accepted with A.
  const first = await complain('Charged twice for order 1');
  result.first_ticket = first.id;
  const offer = desk.getByRole('region', { name: 'Incoming offer' });
  await desk.locator('section.offer[data-ticket]:not([hidden])').waitFor();
  assert.equal(await offer.getAttribute('data-ticket'), String(first.id), 'the offer withdrawn before it arrived is shown');
  await offer.getByText('Charged twice for order 1').first().waitFor();
  await offer.getByText('Anna Petrova').first().waitFor();
  await offer.getByText('gold').first().waitFor();
  assert.match(await offer.locator('.countdown').textContent(), /\d/);
  await billingRow.locator('td.waiting', { hasText: /^1$/ }).waitFor();
  step('the offer arrives with the customer card and a countdown; the board shows it waiting (an offer withdrawn before it arrived is not shown)');
  await shot(desk, '03-offer');
  await shot(board, '04-board-waiting');
  await checkContrast(desk, 'offer');
  const firstVersion = await offer.getAttribute('data-version');
  await desk.locator('body').press('d');
  await desk.locator(`section.offer[data-ticket="${first.id}"]:not([data-version="${firstVersion}"])`).waitFor();
  step('declined with the D key: the only agent gets it offered again');
  await desk.locator('body').press('a');
  await desk.getByRole('heading', { name: `Ticket #${first.id}` }).waitFor();
  const card = desk.getByRole('region', { name: 'Customer' });
  await card.getByText('Washing machine', { exact: false }).first().waitFor();
  await card.locator('#customer-consent', { hasText: 'consented' }).waitFor();
  await card.locator('#customer-tickets', { hasText: 'this ticket' }).waitFor();
  await desk.locator('.timeline').getByText('declined').first().waitFor();
  await desk.locator('.timeline').getByText('accepted').first().waitFor();
  await olgaOnBoard.getByText('1 ticket').first().waitFor();
  step('accepted with the A key: the ticket view shows the customer card (purchases, consent, tickets) and the timeline');
  await shot(desk, '05-ticket');
  await checkContrast(desk, 'ticket view');
  await checkNoHorizontalScroll(desk, 'ticket view');

  // A grant within the agent's authority.
  await desk.getByRole('button', { name: 'Compensate…' }).click();
  const dialog = desk.getByRole('dialog');
  await dialog.getByText('You may grant now').first().waitFor();
  await dialog.getByLabel('Kind').selectOption('account_credit');
  await dialog.getByLabel(/Amount/).fill('1500');
  await dialog.getByText('within your authority').first().waitFor();
  await dialog.getByLabel('Reason').selectOption('double_charge');
  await dialog.getByLabel('Note').fill('Refund took a week');
  await shot(desk, '06-compensation-within');
  await checkContrast(desk, 'compensation dialog');
  await dialog.getByRole('button', { name: 'Grant' }).click();
  await dialog.locator('#comp-result', { hasText: 'Granted' }).waitFor();
  await dialog.getByRole('button', { name: 'Close' }).click();
  step('a credit of 15.00 within the limit is granted at once');

  // Above the limit: a supervisor approves it live.
  await desk.getByRole('button', { name: 'Compensate…' }).click();
  await dialog.getByLabel(/Amount/).fill('5000');
  await dialog.getByText('a supervisor must approve').first().waitFor();
  await dialog.getByLabel('Reason').selectOption('double_charge');
  await dialog.getByRole('button', { name: 'Ask a supervisor' }).click();
  await dialog.locator('#comp-result', { hasText: 'Sent to a supervisor' }).waitFor();
  await dialog.getByRole('button', { name: 'Close' }).click();
  const approval = board.locator('li.approval');
  await approval.getByText('50.00').first().waitFor();
  await shot(board, '07-board-approval');
  await approval.getByRole('button', { name: /^Approve/ }).click();
  await board.getByText('Nothing to decide.').first().waitFor();
  await desk.locator('#notice', { hasText: 'approved' }).waitFor();
  step('a credit of 50.00 goes to the supervisor, who approves it on the board; the agent sees it');

  // Escalated: the supervisor sees it live and hands it back with a note.
  await desk.getByLabel('Reason for the supervisor').fill('Customer asks for a manager');
  await desk.getByRole('button', { name: 'Escalate', exact: true }).click();
  await desk.locator('#escalation-box', { hasText: 'waiting for a supervisor' }).waitFor();
  const escalated = board.locator(`li.escalation[data-ticket="${first.id}"]`);
  await escalated.getByText('Customer asks for a manager').first().waitFor();
  await escalated.getByText('escalated by Olga Ivanova').first().waitFor();
  await escalated.scrollIntoViewIfNeeded();
  await shot(board, '08-board-escalation');
  await checkContrast(board, 'board with an escalation');
  await escalated.getByLabel(`Note to Olga Ivanova on ticket ${first.id}`).fill('Offer the repair first');
  await escalated.getByRole('button', { name: `Hand back #${first.id}` }).click();
  await board.getByText('No ticket escalated.').first().waitFor();
  await desk.locator('#notice', { hasText: 'Offer the repair first' }).waitFor();
  await desk.locator('#escalation-box', { hasText: 'handed this back' }).waitFor();
  step('escalated: the supervisor sees it on the board at once and hands it back with a note the agent reads');
  await shot(desk, '09-handed-back');

  // Resolve with an outcome.
  await desk.getByLabel('Resolution', { exact: true }).selectOption('compensated');
  await desk.getByLabel('Outcome note').fill('Credited and apologised');
  await desk.getByRole('button', { name: 'Resolve ticket' }).click();
  await desk.getByText('No tickets. Go available to receive offers.').first().waitFor();
  await billingRow.locator('td:last-child', { hasText: /^1$/ }).waitFor();
  step('resolved; the board counts it answered');
  await shot(desk, '10-resolved');

  // The connection is cut; a complaint is filed meanwhile; it arrives after.
  cut = true;
  for (const ws of sockets.splice(0)) await ws.close().catch(() => {});
  await desk.locator('#connection:not([data-state="online"])').waitFor();
  await olgaOnBoard.locator('.badge', { hasText: 'offline' }).waitFor();
  const second = await complain('The refund has still not arrived');
  result.second_ticket = second.id;
  await shot(desk, '11-disconnected');
  await checkContrast(desk, 'disconnected');
  step('the connection is cut: the header says so, the board shows the agent offline');
  cut = false;
  await desk.locator('#connection[data-state="online"]').waitFor({ timeout: 30_000 });
  await offer.getByText('The refund has still not arrived').first().waitFor();
  await desk.getByRole('button', { name: 'Accept' }).click();
  await desk.getByRole('heading', { name: `Ticket #${second.id}` }).waitFor();
  step('reconnected: the agent is available again and the offer filed meanwhile arrives');
  await shot(desk, '12-reconnected-offer-accepted');
  await shot(board, '13-board-live');

  // The customer card now has the first ticket, its outcome and its grants.
  const history = card.locator('#customer-tickets li', { hasText: `#${first.id}` });
  await history.getByText('compensated (solved)').first().waitFor();
  await card.locator('#customer-compensation', { hasText: '15.00' }).waitFor();
  await card.locator('#customer-compensation li', { hasText: '50.00' }).getByText('approved').first().waitFor();
  await card.locator('#customer-compensation li', { hasText: '15.00' }).getByText('granted').first().waitFor();
  step('the customer card shows the earlier ticket with its outcome and both grants with their status');
  await card.scrollIntoViewIfNeeded();
  await shot(desk, '14-customer-history');

  // Escalated again: the supervisor takes it over and resolves it.
  await desk.getByLabel('Reason for the supervisor').fill('Wants to cancel the contract');
  await desk.getByRole('button', { name: 'Escalate', exact: true }).click();
  await desk.locator('#escalation-box', { hasText: 'waiting for a supervisor' }).waitFor();
  const again = board.locator(`li.escalation[data-ticket="${second.id}"]`);
  await again.getByText('Wants to cancel the contract').first().waitFor();
  await again.getByRole('button', { name: `Take over #${second.id}` }).click();
  await desk.locator('#notice', { hasText: `took ticket #${second.id} over` }).waitFor();
  await desk.getByText('No tickets. Go available to receive offers.').first().waitFor();
  const taken = board.locator(`li.escalation.taken[data-ticket="${second.id}"]`);
  await taken.getByLabel('Resolution').selectOption('explained');
  await taken.getByLabel('Outcome note').fill('Kept the contract after a call with the supervisor');
  await taken.scrollIntoViewIfNeeded();
  await shot(board, '15-board-taken-over');
  await checkContrast(board, 'board with a taken ticket');
  await taken.getByRole('button', { name: `Resolve #${second.id}` }).click();
  await taken.waitFor({ state: 'detached' });
  step('escalated again: the supervisor takes it over (the agent is free) and resolves it from the board');

  // A callback: the contact ends, the callback is planned.
  const third = await complain('The refund is announced but not on the card yet');
  result.third_ticket = third.id;
  await offer.getByText('The refund is announced').first().waitFor();
  await desk.getByRole('button', { name: 'Accept' }).click();
  await desk.getByRole('heading', { name: `Ticket #${third.id}` }).waitFor();
  const callback = desk.locator('#callback-box');
  await callback.getByLabel('What to call back about').fill('Check that the refund reached the card');
  result.callback_at_ms = await callback.getByLabel('Call the customer back at')
    .evaluate((input) => new Date(input.value).getTime());
  assert.ok(result.callback_at_ms > Date.now() && result.callback_at_ms < Date.now() + 2 * DAY_MS);
  await callback.getByLabel('Outcome of this contact').selectOption('not_resolved');
  await shot(desk, '16-callback');
  await checkContrast(desk, 'callback form');
  await checkNoHorizontalScroll(desk, 'callback form');
  await callback.getByRole('button', { name: 'Schedule callback' }).click();
  await desk.locator('#notice', { hasText: `Callback on ticket #${third.id} scheduled` }).waitFor();
  await desk.getByText('No tickets. Go available to receive offers.').first().waitFor();
  step('a callback is scheduled for tomorrow and the contact ends as not resolved yet');

  // An outbound service call: offered with its purpose, ended with a button.
  await call('POST', '/api/admin/journeys', admin, {
    name: 'check-in', trigger: 'purchase', category_id: category.id, restricted_accounts: { action: 'skip' },
    steps: [{ days: 3, purpose: 'Check-in after delivery', script: 'Ask whether the kettle works; no selling.' }],
  });
  await call('POST', `/api/customers/${boris.id}/purchases`, admin, {
    external_id: 'order-2', product: 'Kettle', amount_minor: 4900, currency: 'EUR',
    purchased_at_ms: Date.now() - 3 * DAY_MS - 10 * 60_000,
  });
  await offer.getByText('Outbound call offered').first().waitFor();
  await offer.getByText('Check-in after delivery').first().waitFor();
  await shot(desk, '17-outbound-offer');
  await desk.getByRole('button', { name: 'Accept' }).click();
  const callView = desk.locator('section.ticket');
  await callView.getByRole('region', { name: 'Why we call' }).getByText('Ask whether the kettle works').first().waitFor();
  const outboundTicket = await callView.locator('h2', { hasText: /#\d+/ }).first().textContent();
  result.outbound_ticket = Number(outboundTicket.match(/#(\d+)/)[1]);
  await desk.getByLabel('Refusal reason').selectOption('too_expensive');
  await shot(desk, '18-outbound-call');
  await checkContrast(desk, 'outbound call');
  await desk.getByRole('button', { name: 'Refused', exact: true }).click();
  await desk.locator('#notice', { hasText: 'refused' }).waitFor();
  await desk.getByText('No tickets. Go available to receive offers.').first().waitFor();
  step('an outbound check-in call is offered with its purpose and script, and ended with "Refused" and a reason');

  // Admin: keyboard only, focus always visible.
  const adminPage = await screen('admin', { width: 1280, height: 800 });
  await adminPage.goto('/');
  await adminPage.getByLabel('Username').waitFor();
  const rings = [];
  await adminPage.keyboard.type('admin');
  rings.push(await focusRing(adminPage));
  await adminPage.keyboard.press('Tab');
  await adminPage.keyboard.type(adminPassword);
  rings.push(await focusRing(adminPage));
  await adminPage.keyboard.press('Tab');
  rings.push(await focusRing(adminPage));
  await shot(adminPage, '19-keyboard-focus');
  await adminPage.keyboard.press('Enter');
  await adminPage.locator('#connection[data-state="online"]').waitFor();
  for (let i = 0; i < 6; i++) {
    await adminPage.keyboard.press('Tab');
    rings.push(await focusRing(adminPage));
  }
  const unringed = rings.filter((r) => !r.ok).map((r) => r.what);
  assert.deepEqual(unringed, [], 'every control reached by Tab shows its focus');
  step(`the admin logs in with the keyboard alone; ${rings.length} focused controls all show a focus ring`);

  for (const [name, check] of [['users', 'olga'], ['queues', 'billing'], ['journeys', 'Contact policy'], ['compensation', 'History']]) {
    await adminPage.goto(`/#/admin/${name}`);
    await adminPage.locator('main h1').waitFor();
    await adminPage.locator('main').getByText(check, { exact: true }).first().waitFor();
    await shot(adminPage, `20-admin-${name}`);
    await checkNoHorizontalScroll(adminPage, `admin ${name}`);
  }
  await adminPage.goto('/#/admin/compensation');
  await adminPage.getByRole('button', { name: 'Dry run' }).click();
  await adminPage.getByText(/requests replayed/).first().waitFor();
  step('the admin pages show users, queues, journeys and the contact policy, and compensation policies (with a dry run), without sideways scrolling at 1280×800');

  // A form the server refuses: the field's problem is shown.
  await adminPage.goto('/#/admin/users');
  const newUser = adminPage.getByRole('form', { name: 'New user' });
  await newUser.getByLabel('Username').fill('new agent!');
  await newUser.getByLabel('Password').fill('a long enough password');
  expectedErrors.push(/status of 422/);
  await newUser.getByRole('button', { name: 'Create user' }).click();
  await adminPage.locator('#notice', { hasText: 'letters, digits and . _ - @ only' }).waitFor();
  const badName = newUser.getByLabel('Username');
  assert.equal(await badName.getAttribute('aria-invalid'), 'true');
  assert.ok(await badName.evaluate((el) => el === document.activeElement), 'the invalid field has the focus');
  await shot(adminPage, '21-admin-validation');
  await checkContrast(adminPage, 'admin users with an error');
  step('creating a user with a bad username shows the server\'s field error, marks the field invalid and focuses it');
  await checkContrast(board, 'board');

  assert.deepEqual(problems, [], 'no console errors');
  console.log(`RESULT ${JSON.stringify({ ...result, anna: customer.id, boris: boris.id })}`);
} catch (e) {
  console.error(e);
  if (problems.length) console.error(problems.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}
