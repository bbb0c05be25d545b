// The web console in a real browser (Debian's Chromium through
// playwright-core), against a running server:
//
//   node console.mjs <base-url> <admin-password> <artifacts-dir>
//
// An admin sets up the call center over the API; a supervisor watches the
// board on a 1920×1080 screen while an agent (1280×800) logs in, goes
// available, gets a complaint filed through the API, accepts it with the
// keyboard, grants a compensation within authority, asks for one above it
// (the supervisor approves it live), resolves; then the agent's connection
// is cut, a complaint is filed meanwhile, and once the connection is back
// its offer arrives. No console errors anywhere. Screenshots of each screen
// go to <artifacts-dir>. Prints `RESULT {json}` for the Rust test to check
// the record.

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
async function screen(name, viewport) {
  const context = await browser.newContext({ viewport, baseURL: base });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`${name}: console error: ${m.text()}`); });
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
  await desk.routeWebSocket(/\/ws$/, (ws) => {
    if (cut) { ws.close(); return; }
    sockets.push(ws.connectToServer());
    sockets.push(ws);
  });
  await desk.goto('/');
  await shot(desk, '01-login');
  await logIn(desk, 'olga', PASSWORD);
  await desk.getByRole('button', { name: 'Go available' }).click();
  await desk.locator('#my-state', { hasText: 'available' }).waitFor();
  await olgaOnBoard.locator('.badge', { hasText: 'available' }).waitFor();
  step('the agent is available, and the board shows it live');
  await shot(desk, '02-desk-available');

  // An offer through the API; accepted with the keyboard.
  const first = await complain('Charged twice for order 1');
  result.first_ticket = first.id;
  const offer = desk.getByRole('region', { name: 'Incoming offer' });
  await offer.getByText('Charged twice for order 1').first().waitFor();
  await offer.getByText('Anna Petrova').first().waitFor();
  await offer.getByText('gold').first().waitFor();
  assert.match(await offer.locator('.countdown').textContent(), /\d/);
  await billingRow.locator('td.waiting', { hasText: /^1$/ }).waitFor();
  step('the offer arrives with the customer card and a countdown; the board shows it waiting');
  await shot(desk, '03-offer');
  await shot(board, '04-board-waiting');
  await desk.locator('body').press('a');
  await desk.getByRole('heading', { name: `Ticket #${first.id}` }).waitFor();
  await desk.getByRole('region', { name: 'Customer' }).getByText('Washing machine', { exact: false }).first().waitFor();
  await desk.locator('.timeline').getByText('accepted').first().waitFor();
  await olgaOnBoard.getByText('1 ticket').first().waitFor();
  step('accepted with the A key: the ticket view shows the customer card and the timeline');
  await shot(desk, '05-ticket');

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

  // Resolve with an outcome.
  await desk.getByLabel('Resolution').selectOption('compensated');
  await desk.getByLabel('Outcome note').fill('Credited and apologised');
  await desk.getByRole('button', { name: 'Resolve ticket' }).click();
  await desk.getByText('No tickets. Go available to receive offers.').first().waitFor();
  await billingRow.locator('td:last-child', { hasText: /^1$/ }).waitFor();
  step('resolved; the board counts it answered');
  await shot(desk, '08-resolved');

  // The connection is cut; a complaint is filed meanwhile; it arrives after.
  cut = true;
  for (const ws of sockets.splice(0)) await ws.close().catch(() => {});
  await desk.locator('#connection:not([data-state="online"])').waitFor();
  await olgaOnBoard.locator('.badge', { hasText: 'offline' }).waitFor();
  const second = await complain('The refund has still not arrived');
  result.second_ticket = second.id;
  await shot(desk, '09-disconnected');
  step('the connection is cut: the header says so, the board shows the agent offline');
  cut = false;
  await desk.locator('#connection[data-state="online"]').waitFor({ timeout: 30_000 });
  await offer.getByText('The refund has still not arrived').first().waitFor();
  await desk.getByRole('button', { name: 'Accept' }).click();
  await desk.getByRole('heading', { name: `Ticket #${second.id}` }).waitFor();
  step('reconnected: the agent is available again and the offer filed meanwhile arrives');
  await shot(desk, '10-reconnected-offer-accepted');
  await shot(board, '11-board-live');

  // Admin pages.
  const adminPage = await screen('admin', { width: 1280, height: 800 });
  await logIn(adminPage, 'admin', adminPassword);
  for (const [name, check] of [['users', 'olga'], ['queues', 'billing'], ['journeys', 'Contact policy'], ['compensation', 'History']]) {
    await adminPage.goto(`/#/admin/${name}`);
    await adminPage.locator('main h1').waitFor();
    await adminPage.locator('main').getByText(check, { exact: true }).first().waitFor();
    await shot(adminPage, `12-admin-${name}`);
  }
  await adminPage.goto('/#/admin/compensation');
  await adminPage.getByRole('button', { name: 'Dry run' }).click();
  await adminPage.getByText(/requests replayed/).first().waitFor();
  step('the admin pages show users, queues, journeys and the contact policy, and compensation policies (with a dry run)');

  assert.deepEqual(problems, [], 'no console errors');
  console.log(`RESULT ${JSON.stringify(result)}`);
} catch (e) {
  console.error(e);
  if (problems.length) console.error(problems.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}
