// The public survey page: "is it still solved?", answered without an
// account. The token comes from the link's fragment (`/survey#<token>`,
// never sent to the server with the page) or its path (`/survey/<token>`);
// it goes to the API in request bodies only.

const token = decodeURIComponent(location.hash.slice(1) || location.pathname.split('/')[2] || '');
const status = document.getElementById('status');
const form = document.getElementById('answer');
const error = document.getElementById('error');

async function post(path, body) {
  const response = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, data };
}

/** A problem+json answer in the customer's words. */
function problemText(reply) {
  if (reply.status === 404) return 'This survey link is not known. Please check that the whole link was copied.';
  if (reply.data && reply.data.type === '/problems/survey-used') return 'This survey has already been answered. Thank you!';
  if (reply.status === 410) return 'This survey link has expired. If the problem is back, please contact us again.';
  if (reply.data && Array.isArray(reply.data.errors) && reply.data.errors.length) {
    return reply.data.errors.map((e) => e.message).join('; ');
  }
  return (reply.data && reply.data.detail) || 'Something went wrong. Please try again later.';
}

async function start() {
  if (!token) {
    status.textContent = 'This survey link is not complete. Please open the whole link you received.';
    return;
  }
  const reply = await post('/api/surveys/view', { token });
  if (!reply.ok) {
    status.textContent = problemText(reply);
    return;
  }
  const resolved = new Date(reply.data.resolved_at_ms).toLocaleDateString();
  status.textContent = '';
  document.getElementById('about').textContent =
    `On ${resolved} we resolved your request about “${reply.data.category}”. Please tell us whether it stayed solved.`;
  form.hidden = false;
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const data = new FormData(form);
  const satisfaction = data.get('satisfaction');
  const reply = await post('/api/surveys/answer', {
    token,
    still_solved: data.get('still_solved') === 'yes',
    satisfaction: satisfaction ? Number(satisfaction) : null,
    comment: String(data.get('comment') || ''),
  });
  if (!reply.ok) {
    if (reply.status === 422) {
      error.textContent = problemText(reply);
      error.hidden = false;
      return;
    }
    form.hidden = true;
    status.textContent = problemText(reply);
    return;
  }
  form.hidden = true;
  status.textContent = reply.data.reopened
    ? 'Thank you. We are sorry it is not solved: we have reopened your request and will contact you.'
    : 'Thank you for letting us know!';
});

start().catch(() => { status.textContent = 'Something went wrong. Please try again later.'; });
