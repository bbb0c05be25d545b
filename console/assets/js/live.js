// The live channel (protocol: proto/src/ws.rs, schema at /api/ws-schema.json).
//
// Hello with the access token and the last stream number processed; the
// server answers with the missed events or a snapshot that replaces the
// page's state. Every command carries a request id and gets one reply; a
// command still unanswered when the socket drops is sent again with the same
// id after the reconnect (the server answers a repeated id with the first
// reply and does not act twice). The socket reconnects with backoff and its
// state is always shown in the header.

import { refresh, session } from './api.js';
import { uuid } from './ui.js';

const PROTOCOL = '1.0';
const STREAM_EVENTS = new Set([
  'offer', 'offer_rescinded', 'agent_state_changed', 'ticket_updated',
  'compensation_pending', 'compensation_decided', 'escalation_changed',
]);
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];

export class Live extends EventTarget {
  constructor() {
    super();
    this.socket = null;
    this.lastSeq = null;
    this.attempt = 0;
    this.pending = new Map(); // request id → {frame, resolve, reject}
    this.stopped = false;
    this.timer = null;
    this.state = 'idle';
    this.scope = new AbortController();
  }

  /** Listen until the page that listens is left (see `newScope`). */
  on(type, listener) {
    this.addEventListener(type, listener, { signal: this.scope.signal });
  }

  /** Drop the listeners of the page being left. */
  newScope() {
    this.scope.abort();
    this.scope = new AbortController();
    return this.scope.signal;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, 'logged out');
    this.socket = null;
    this.setState('idle', 'Not connected');
  }

  setState(state, text) {
    this.state = state;
    const el = document.getElementById('connection');
    if (el) {
      el.dataset.state = state;
      el.textContent = text;
    }
    this.dispatchEvent(new CustomEvent('connection', { detail: { state, text } }));
  }

  open() {
    if (this.stopped) return;
    const s = session();
    if (!s) return;
    this.setState('connecting', this.attempt ? 'Reconnecting…' : 'Connecting…');
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
    const socket = new WebSocket(url);
    this.socket = socket;
    this.welcomed = false;
    socket.addEventListener('open', () => {
      const hello = { type: 'hello', protocol: PROTOCOL, token: s.access_token };
      if (this.lastSeq !== null) hello.resume_from = this.lastSeq;
      socket.send(JSON.stringify(hello));
    });
    socket.addEventListener('message', (m) => this.receive(m.data));
    socket.addEventListener('close', (e) => this.closed(socket, e));
  }

  async closed(socket, e) {
    if (socket !== this.socket || this.stopped) return;
    this.socket = null;
    if (e.code === 4400) {
      this.setState('failed', 'Console out of date: reload the page');
      return;
    }
    // A refused token (1008 before the welcome): refresh it, then retry.
    if (e.code === 1008 && !this.welcomed) {
      try {
        await refresh();
      } catch {
        this.setState('failed', 'Session ended: log in again');
        this.dispatchEvent(new CustomEvent('session_ended'));
        return;
      }
    }
    const wait = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    const jittered = Math.round(wait * (0.75 + Math.random() * 0.5));
    this.attempt += 1;
    this.setState('offline', `Disconnected: retrying in ${Math.ceil(jittered / 1000)} s`);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), jittered);
  }

  receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    const { type } = frame;
    if (type === 'welcome') {
      this.welcomed = true;
      this.attempt = 0;
      this.lastSeq = frame.seq;
      this.setState('online', 'Connected');
      this.dispatchEvent(new CustomEvent('welcome', { detail: frame }));
      // Commands the old socket never answered: same ids, answered once.
      for (const p of this.pending.values()) this.socket.send(JSON.stringify(p.frame));
      return;
    }
    if (type === 'snapshot') {
      this.lastSeq = frame.seq;
    } else if (STREAM_EVENTS.has(type)) {
      if (this.lastSeq !== null && frame.seq <= this.lastSeq) return; // seen already
      this.lastSeq = frame.seq;
    } else if (type === 'reply') {
      const p = this.pending.get(frame.request_id);
      if (p) {
        this.pending.delete(frame.request_id);
        if (frame.status === 'ok') p.resolve(frame);
        else p.reject(frame);
      }
      return;
    }
    this.dispatchEvent(new CustomEvent(type, { detail: frame }));
  }

  /** Send a command; resolves with the ok reply, rejects with {code, detail}. */
  command(command, fields = {}) {
    const frame = { type: 'command', request_id: uuid(), command, ...fields };
    return new Promise((resolve, reject) => {
      this.pending.set(frame.request_id, { frame, resolve, reject });
      if (this.socket && this.welcomed && this.socket.readyState === WebSocket.OPEN) {
        this.socket.send(JSON.stringify(frame));
      }
    });
  }
}
