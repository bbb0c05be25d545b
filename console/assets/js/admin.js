// Admin pages: users (and agents' routing profiles, supervisors' teams),
// queues and categories, journeys and the contact policy, compensation
// policy versions (edit a draft, dry-run it, publish, history).

import { api } from './api.js';
import { dateTime, field, h, money, mount, notify, problemText, select, uuid, words } from './ui.js';

export const ADMIN_PAGES = [
  ['users', 'Users'],
  ['queues', 'Queues'],
  ['journeys', 'Journeys'],
  ['compensation', 'Compensation policy'],
];

export async function startAdmin(root, page) {
  const render = { users, queues, journeys, compensation }[page] || users;
  mount(root, h('p', { class: 'muted' }, 'Loading…'));
  try {
    await render(root);
  } catch (e) {
    mount(root, h('p', { role: 'alert' }, problemText(e)));
  }
}

function table(columns, rows) {
  return h('table', { class: 'figures' },
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows));
}

/** Submit handler that reports problems and re-renders on success. */
function submitting(action, done) {
  return async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    try {
      await action();
      await done();
    } catch (e) {
      notify(problemText(e));
      markInvalid(form, e);
    }
  };
}

/** The controls a problem's field errors name (by their `name`): marked
 * invalid, the first one focused, so the error is found by keyboard too. */
function markInvalid(form, e) {
  const named = (e?.problem?.errors || [])
    .map((f) => form.querySelector(`[name="${CSS.escape(String(f.field).split(/[.[]/)[0])}"]`))
    .filter(Boolean);
  for (const el of named) el.setAttribute('aria-invalid', 'true');
  if (named.length) named[0].focus();
}

function skillsText(skills) {
  return skills.map((s) => `${s.skill}:${s.level}`).join(', ');
}

function parseSkills(text) {
  return text.split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
    const [skill, level] = s.split(':').map((x) => x.trim());
    return { skill, level: Number(level || 5) };
  });
}

function list(text) {
  return text.split(',').map((s) => s.trim()).filter(Boolean);
}

async function users(root) {
  const [all, agents] = await Promise.all([api('GET', '/api/admin/users'), api('GET', '/api/admin/agents')]);
  const profiles = new Map(agents.map((a) => [a.user.id, a.profile]));
  const again = () => users(root);

  const username = h('input', { name: 'username', required: true, maxlength: 64, autocomplete: 'off' });
  const display = h('input', { name: 'display_name', maxlength: 200 });
  const role = select('role', ['agent', 'supervisor', 'admin', 'integration'].map((r) => [r, r]), 'agent');
  const password = h('input', { name: 'password', type: 'password', required: true, minlength: 12, autocomplete: 'new-password' });
  const create = h('form', { class: 'row wrap', 'aria-label': 'New user', onsubmit: submitting(async () => {
    await api('POST', '/api/admin/users', { username: username.value, display_name: display.value || null, role: role.value, password: password.value });
    notify(`User ${username.value} created`, 'info');
  }, again) },
  field('Username', username), field('Display name', display), field('Role', role),
  field('Password', password, 'at least 12 characters'), h('button', { type: 'submit', class: 'primary' }, 'Create user'));

  const rows = all.map((u) => {
    const profile = profiles.get(u.id);
    const toggle = h('button', { type: 'button', onclick: submitting(
      () => api('PATCH', `/api/admin/users/${u.id}`, { disabled: !u.disabled }), again) }, u.disabled ? 'Enable' : 'Disable');
    let routing = '';
    if (u.role === 'agent') {
      const p = profile || { skills: [], teams: [], capacity_inbound: 1, capacity_outbound: 1 };
      const skills = h('input', { name: 'skills', value: skillsText(p.skills), 'aria-label': `Skills of ${u.username} (skill:level, …)` });
      const teams = h('input', { name: 'teams', value: p.teams.join(', '), 'aria-label': `Teams of ${u.username}` });
      const inbound = h('input', { type: 'number', min: 0, max: 20, value: p.capacity_inbound, class: 'short', 'aria-label': `Inbound capacity of ${u.username}` });
      const outbound = h('input', { type: 'number', min: 0, max: 20, value: p.capacity_outbound, class: 'short', 'aria-label': `Outbound capacity of ${u.username}` });
      routing = h('form', { class: 'row', onsubmit: submitting(() => api('PUT', `/api/admin/agents/${u.id}`, {
        skills: parseSkills(skills.value), teams: list(teams.value),
        capacity_inbound: Number(inbound.value), capacity_outbound: Number(outbound.value),
      }), again) }, skills, teams, inbound, outbound, h('button', { type: 'submit' }, 'Save'));
    } else if (u.role === 'supervisor') {
      const teams = h('input', { name: 'teams', 'aria-label': `Teams ${u.username} approves for` });
      api('GET', `/api/admin/supervisors/${u.id}/teams`).then((t) => { teams.value = t.teams.join(', '); }).catch(() => {});
      routing = h('form', { class: 'row', onsubmit: submitting(() => api('PUT', `/api/admin/supervisors/${u.id}/teams`, { teams: list(teams.value) }), again) },
        teams, h('button', { type: 'submit' }, 'Save teams'));
    }
    return h('tr', {}, h('th', { scope: 'row' }, u.username), h('td', {}, u.display_name), h('td', {}, u.role),
      h('td', {}, u.disabled ? 'disabled' : 'active'), h('td', {}, routing), h('td', {}, toggle));
  });
  mount(root, h('h1', {}, 'Users'), h('section', { class: 'panel' }, h('h2', {}, 'New user'), create),
    h('section', { class: 'panel' }, h('h2', {}, 'All users'),
      table(['Username', 'Name', 'Role', 'Status', 'Skills, teams, capacity (agents) / approval teams (supervisors)', ''], rows)));
}

async function queues(root) {
  const [qs, categories] = await Promise.all([api('GET', '/api/admin/queues'), api('GET', '/api/admin/categories')]);
  const again = () => queues(root);
  const name = h('input', { name: 'name', required: true, maxlength: 100 });
  const skills = h('input', { name: 'required_skills' });
  const sl = h('input', { name: 'service_level_seconds', type: 'number', min: 1, value: 60, required: true });
  const timeout = h('input', { name: 'offer_timeout_seconds', type: 'number', min: 1, value: 30, required: true });
  const wrap = h('input', { name: 'wrap_up_seconds', type: 'number', min: 0, value: 0 });
  const strategy = select('strategy', [['longest_idle', 'longest idle'], ['best_skill', 'best skill'], ['fewest_today', 'fewest today']], 'longest_idle');
  const createQueue = h('form', { class: 'row wrap', 'aria-label': 'New queue', onsubmit: submitting(async () => {
    await api('POST', '/api/admin/queues', {
      name: name.value, required_skills: parseSkills(skills.value), service_level_seconds: Number(sl.value),
      offer_timeout_seconds: Number(timeout.value), wrap_up_seconds: Number(wrap.value), strategy: strategy.value,
    });
    notify(`Queue ${name.value} created`, 'info');
  }, again) },
  field('Name', name), field('Required skills', skills, 'skill:level, …'), field('Service level (s)', sl),
  field('Offer timeout (s)', timeout), field('Wrap-up (s)', wrap), field('Strategy', strategy),
  h('button', { type: 'submit', class: 'primary' }, 'Create queue'));

  const catName = h('input', { name: 'category', required: true, maxlength: 100 });
  const catQueue = select('queue_id', qs.map((q) => [q.id, q.name]), qs[0]?.id);
  const createCategory = h('form', { class: 'row wrap', 'aria-label': 'New category', onsubmit: submitting(
    () => api('POST', '/api/admin/categories', { name: catName.value, queue_id: Number(catQueue.value) }), again) },
  field('Category', catName), field('Routed to queue', catQueue), h('button', { type: 'submit' }, 'Create category'));

  const queueName = new Map(qs.map((q) => [q.id, q.name]));
  mount(root, h('h1', {}, 'Queues'),
    h('section', { class: 'panel' }, h('h2', {}, 'New queue'), createQueue),
    h('section', { class: 'panel' }, h('h2', {}, 'Queues'),
      table(['Queue', 'Required skills', 'Service level', 'Offer timeout', 'Wrap-up', 'Strategy'], qs.map((q) => h('tr', {},
        h('th', { scope: 'row' }, q.name), h('td', {}, skillsText(q.required_skills)), h('td', {}, `${q.service_level_seconds} s`),
        h('td', {}, `${q.offer_timeout_seconds} s`), h('td', {}, `${q.wrap_up_seconds} s`), h('td', {}, words(q.strategy)))))),
    h('section', { class: 'panel' }, h('h2', {}, 'Categories'), createCategory,
      table(['Category', 'Queue'], categories.map((c) => h('tr', {}, h('th', { scope: 'row' }, c.name), h('td', {}, queueName.get(c.queue_id) || c.queue_id))))));
}

/** A JSON editor: a labelled textarea that reports parse errors. */
function jsonEditor(label, value, rows = 16) {
  const area = h('textarea', { class: 'code', rows, spellcheck: 'false' });
  area.value = JSON.stringify(value, null, 2);
  const wrap = field(label, area);
  wrap.read = () => {
    try {
      return JSON.parse(area.value);
    } catch (e) {
      area.focus();
      throw new Error(`${label}: not valid JSON (${e.message})`);
    }
  };
  return wrap;
}

async function journeys(root) {
  const [all, policy] = await Promise.all([api('GET', '/api/admin/journeys'), api('GET', '/api/admin/contact-policy')]);
  const again = () => journeys(root);
  const policyEditor = jsonEditor('Contact policy (JSON)', policy, 14);
  const draft = jsonEditor('New journey (JSON)', {
    name: 'Check-in after delivery', trigger: 'purchase', category_id: 1,
    restricted_accounts: { action: 'skip' }, steps: [{ days: 3, purpose: 'Check-in after delivery', script: 'Hello! We are calling to make sure everything arrived and works.' }], active: true,
  }, 12);
  mount(root, h('h1', {}, 'Journeys and contact policy'),
    h('section', { class: 'panel' }, h('h2', {}, 'Contact policy'),
      h('form', { class: 'stack', onsubmit: submitting(() => api('PUT', '/api/admin/contact-policy', policyEditor.read()), again) },
        policyEditor, h('button', { type: 'submit', class: 'primary' }, 'Save contact policy'))),
    h('section', { class: 'panel' }, h('h2', {}, 'Journeys'),
      table(['Journey', 'Version', 'Trigger', 'Steps', 'Active'], all.map((j) => h('tr', {},
        h('th', { scope: 'row' }, j.name), h('td', {}, String(j.version)), h('td', {}, words(j.trigger)),
        h('td', {}, j.steps.map((s) => `${s.days} d: ${s.purpose}`).join('; ')), h('td', {}, j.active ? 'yes' : 'no')))),
      h('form', { class: 'stack', onsubmit: submitting(() => api('POST', '/api/admin/journeys', draft.read()), again) },
        draft, h('button', { type: 'submit' }, 'Create journey'))));
}

const POLICY_TEMPLATE = {
  currency: 'EUR',
  bonus_kinds: [{ kind: 'account_credit', max_quantity: 100000 }, { kind: 'free_days', unit_cost_minor: 300, max_quantity: 30 }],
  roles: [
    { role: 'agent', per_grant: { max_minor: 2000, max_value_bp: 500 }, budget_per_day_minor: 5000, budget_per_month_minor: 40000 },
    { role: 'supervisor', per_grant: { max_minor: 20000 }, budget_per_day_minor: 20000, budget_per_month_minor: 200000 },
  ],
  customer_cap_90d: { max_minor: 30000 },
  reason_codes: ['late_delivery', 'double_charge'],
  note_required: false,
  forbidden_category_ids: [],
  approval_timeout_minutes: 15,
};

// Compensation policy: stored drafts (each save validated by the server,
// every bad field listed), a dry run of the stored draft, publishing it as
// the next immutable version (the draft is then frozen), and the history.
const policyPage = { draftId: null, createKey: null, publishKeys: new Map() };

async function compensation(root) {
  const [versions, drafts] = await Promise.all([
    api('GET', '/api/admin/compensation/policies'),
    api('GET', '/api/admin/compensation/drafts'),
  ]);
  const again = () => compensation(root);
  const latest = versions.reduce((a, v) => (!a || v.version > a.version ? v : a), null);
  // The draft being edited: the one picked, else the newest still editable,
  // else a new one (stored on its first save) from the version in force.
  let draft = drafts.find((d) => d.id === policyPage.draftId)
    || drafts.find((d) => d.published_version === null && policyPage.draftId === null) || null;
  policyPage.draftId = draft ? draft.id : null;
  if (!draft) policyPage.createKey = policyPage.createKey || uuid();
  const frozen = Boolean(draft && draft.published_version !== null);

  const name = h('input', { name: 'draft_name', maxlength: 100, required: true, disabled: frozen,
    value: draft ? draft.name : (latest ? `Changes to version ${latest.version}` : 'First policy') });
  const editor = jsonEditor('Policy document (JSON)', draft ? draft.document : (latest ? latest.document : POLICY_TEMPLATE), 24);
  const area = editor.querySelector('textarea');
  area.readOnly = frozen;
  let dirty = !draft;
  for (const el of [name, area]) el.addEventListener('input', () => { dirty = true; });
  const errors = h('div', { role: 'alert', 'aria-live': 'assertive' });
  const last = h('input', { type: 'number', min: 1, max: 1000, value: 100, class: 'short' });
  const report = h('div', { 'aria-live': 'polite' });

  const showProblem = (e) => {
    const list = e && e.problem && e.problem.errors;
    if (list && list.length) {
      mount(errors, h('p', { class: 'error' }, `Not saved: ${list.length === 1 ? 'one field needs' : `${list.length} fields need`} fixing.`),
        h('ul', { class: 'error' }, list.map((f) => h('li', {}, h('code', {}, f.field), `: ${f.message}`))));
    } else {
      mount(errors, h('p', { class: 'error' }, problemText(e)));
    }
  };
  // Store the editor's draft (create it on the first save); true when stored.
  const save = async () => {
    mount(errors);
    try {
      const document = editor.read();
      if (draft) {
        draft = await api('PUT', `/api/admin/compensation/drafts/${draft.id}`, { revision: draft.revision, name: name.value, document });
      } else {
        draft = await api('POST', '/api/admin/compensation/drafts',
          { name: name.value, document, based_on_version: latest ? latest.version : null },
          { 'Idempotency-Key': policyPage.createKey });
        policyPage.createKey = null;
        policyPage.draftId = draft.id;
      }
      dirty = false;
      status.textContent = draftStatus(draft);
      title.textContent = `Draft #${draft.id}`;
      return true;
    } catch (e) {
      showProblem(e);
      return false;
    }
  };
  const dryRun = async () => {
    if ((dirty || !draft) && !(await save())) return;
    try {
      const r = await api('POST', `/api/admin/compensation/drafts/${draft.id}/dry-run`, { last: Number(last.value) });
      mount(report, h('p', {}, `Draft revision ${draft.revision}: ${r.evaluated} requests replayed: ${r.unchanged} unchanged, ${r.changes.length} would change.`),
        r.changes.length ? table(['Request', 'Cost', 'Was', 'Would be'], r.changes.map((c) => h('tr', {},
          h('td', {}, `#${c.request_id}`), h('td', {}, money(c.cost_minor)), h('td', {}, `${words(c.was_status)} (${words(c.was_rule)})`),
          h('td', {}, `${words(c.would_be)} (${words(c.would_rule)})`)))) : null);
    } catch (e) {
      mount(report, h('p', { role: 'alert' }, problemText(e)));
    }
  };
  const publish = async () => {
    if (dirty || !draft) {
      mount(errors, h('p', { class: 'error' }, 'Save the draft first, so that what you publish is what you saved and dry-ran.'));
      return;
    }
    const tag = `${draft.id}:${draft.revision}`;
    if (!policyPage.publishKeys.has(tag)) policyPage.publishKeys.set(tag, uuid());
    try {
      const v = await api('POST', `/api/admin/compensation/drafts/${draft.id}/publish`, { revision: draft.revision },
        { 'Idempotency-Key': policyPage.publishKeys.get(tag) });
      policyPage.publishKeys.delete(tag);
      notify(`Published version ${v.version}; it is in force from now on.`, 'info');
      policyPage.draftId = null;
      await again();
    } catch (e) {
      showProblem(e);
    }
  };
  const open = (id) => { policyPage.draftId = id; again(); };
  const fresh = () => { policyPage.draftId = -1; policyPage.createKey = uuid(); again(); };
  const status = h('p', { class: 'muted' }, draft ? draftStatus(draft) : 'New draft, not saved yet.');
  const title = h('h2', {}, draft ? `Draft #${draft.id}` : 'New draft');

  const editSection = h('section', { class: 'panel' },
    title,
    h('p', { class: 'muted' }, latest ? `In force: version ${latest.version} (published ${dateTime(latest.published_at_ms)}).` : 'No policy published yet: nothing can be granted.'),
    status,
    h('form', { class: 'stack', 'aria-label': 'Policy draft', onsubmit: async (ev) => {
      ev.preventDefault();
      if (await save()) notify(`Draft #${draft.id} saved (revision ${draft.revision})`, 'info');
    } },
    field('Draft name', name), editor, errors,
    frozen
      ? h('p', {}, `This draft was published as version ${draft.published_version} and can no longer change. `,
        h('button', { type: 'button', onclick: fresh }, 'New draft from the version in force'))
      : h('div', { class: 'row wrap' },
        h('button', { type: 'submit' }, 'Save draft'),
        field('Dry run over the last … requests', last),
        h('button', { type: 'button', onclick: dryRun }, 'Dry run'),
        h('button', { type: 'button', class: 'primary', onclick: publish }, 'Publish new version')),
    report));

  const draftRows = drafts.map((d) => h('tr', {},
    h('th', { scope: 'row' }, `#${d.id} ${d.name}`), h('td', {}, String(d.revision)),
    h('td', {}, d.based_on_version ? `version ${d.based_on_version}` : '—'),
    h('td', {}, `${dateTime(d.updated_at_ms)} by user ${d.updated_by}`),
    h('td', {}, d.published_version === null ? 'editable' : `published as version ${d.published_version}`),
    h('td', {}, d.id === policyPage.draftId ? h('span', { class: 'badge' }, 'open')
      : h('button', { type: 'button', onclick: () => open(d.id) }, d.published_version === null ? 'Edit' : 'View'))));
  const draftOf = new Map(drafts.filter((d) => d.published_version !== null).map((d) => [d.published_version, d]));
  const history = [...versions].sort((a, b) => b.version - a.version);
  mount(root, h('h1', {}, 'Compensation policy'),
    editSection,
    h('section', { class: 'panel' }, h('h2', {}, 'Drafts'),
      h('button', { type: 'button', onclick: fresh }, 'New draft'),
      drafts.length ? table(['Draft', 'Revision', 'Started from', 'Last saved', 'State', ''], draftRows)
        : h('p', { class: 'muted' }, 'No drafts stored yet.')),
    h('section', { class: 'panel' }, h('h2', {}, 'History'),
      history.length ? table(['Version', 'Published', 'By', 'From draft', 'Agent per grant', 'Document'], history.map((v) => h('tr', {},
        h('th', { scope: 'row' }, String(v.version)), h('td', {}, dateTime(v.published_at_ms)), h('td', {}, `user ${v.published_by}`),
        h('td', {}, draftOf.has(v.version) ? `#${draftOf.get(v.version).id} ${draftOf.get(v.version).name}` : '—'),
        h('td', {}, JSON.stringify(v.document.roles.find((r) => r.role === 'agent')?.per_grant ?? {})),
        h('td', {}, h('details', {}, h('summary', {}, `Version ${v.version}`),
          h('pre', { class: 'code' }, JSON.stringify(v.document, null, 2)))))))
        : h('p', { class: 'muted' }, 'No version published yet.')));
}

function draftStatus(d) {
  if (d.published_version !== null) return `Published as version ${d.published_version} on ${dateTime(d.published_at_ms)}.`;
  return `Revision ${d.revision}, last saved ${dateTime(d.updated_at_ms)} by user ${d.updated_by}.`;
}
