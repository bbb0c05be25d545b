// The console's entry point: log in, then the page for the user's role
// (agents: the desk; supervisors: the board; admins: the board and the
// admin pages), with the live channel's state always in the header.

import { api, login, logout, session } from './api.js';
import { ADMIN_PAGES, startAdmin } from './admin.js';
import { startBoard } from './board.js';
import { startDesk } from './desk.js';
import { Live } from './live.js';
import { field, h, mount, problemText } from './ui.js';

const view = document.getElementById('view');
let live = null;

function pagesFor(role) {
  if (role === 'agent') return [['desk', 'Desk']];
  if (role === 'supervisor') return [['board', 'Board']];
  if (role === 'admin') return [['board', 'Board'], ...ADMIN_PAGES.map(([p, label]) => [`admin/${p}`, label])];
  return [];
}

function showLogin(message) {
  if (live) live.stop();
  live = null;
  document.getElementById('nav').replaceChildren();
  document.getElementById('who').textContent = '';
  document.getElementById('logout').hidden = true;
  const username = h('input', { name: 'username', autocomplete: 'username', required: true, maxlength: 64 });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const error = h('p', { class: 'error', role: 'alert', id: 'login-error' }, message || '');
  const form = h('form', { class: 'login panel stack', 'aria-labelledby': 'login-title', onsubmit: async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    try {
      const user = await login(username.value.trim(), password.value);
      password.value = '';
      start(user);
    } catch (e) {
      error.textContent = e.status === 401 ? 'Wrong username or password.' : problemText(e);
    }
  } },
  h('h1', { id: 'login-title' }, 'Log in'),
  field('Username', username), field('Password', password), error,
  h('button', { type: 'submit', class: 'primary' }, 'Log in'));
  mount(view, form);
  username.focus();
}

function start(user) {
  const pages = pagesFor(user.role);
  if (pages.length === 0) {
    showLogin(`The ${user.role} role has no console pages.`);
    return;
  }
  document.getElementById('who').textContent = `${user.display_name} (${user.role})`;
  const out = document.getElementById('logout');
  out.hidden = false;
  out.onclick = async () => {
    live.stop();
    await logout();
    sessionStorage.clear();
    location.hash = '';
    showLogin();
  };
  live = new Live();
  live.on('session_ended', () => showLogin('Your session ended. Log in again.'));
  const route = () => {
    const wanted = location.hash.replace(/^#\/?/, '');
    const page = pages.find(([p]) => p === wanted)?.[0] || pages[0][0];
    mount(document.getElementById('nav'), pages.map(([p, label]) =>
      h('a', { href: `#/${p}`, 'aria-current': p === page ? 'page' : null }, label)));
    live.newScope();
    live.on('session_ended', () => showLogin('Your session ended. Log in again.'));
    view.replaceChildren();
    if (page === 'desk') startDesk(view, live, user);
    else if (page === 'board') startBoard(view, live);
    else startAdmin(view, page.slice('admin/'.length));
  };
  window.onhashchange = route;
  route();
  live.start();
}

const existing = session();
if (existing) {
  // Check the stored session is still good (and refresh it if it expired).
  api('GET', '/api/me').then(start, () => showLogin());
} else {
  showLogin();
}
