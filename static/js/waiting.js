// The waiting page: a place in the line for a full show (templates/waiting/waiting.html).
//
// <section id="waiting" data-version data-status data-ws-path data-poll-url data-served-url>
// Live through the waiter's WebSocket first (each message is the waiter's body); when the socket cannot open
// or closes, a long poll instead: GET data-poll-url?version=<v>&wait=30, again and again. A body is applied
// only when its version is newer than the page's. "Seats Available" sends the user to data-served-url (the
// seat map with the seats held for them); "Show Full", "Expired" and "Cancelled" are shown and end it all.

import { gettext, pgettext } from './i18n.js';

const POLL_WAIT_SECONDS = 30;
const POLL_TIMEOUT_MS = (POLL_WAIT_SECONDS + 15) * 1000; // the server's wait plus room for a slow network
const QUICK_ANSWER_MS = 1000;
const FINAL = new Set(['Show Full', 'Expired', 'Cancelled']);
const SERVED = 'Seats Available';

// What the page says for each status word (the words themselves, the API's, stay in data-status), in the page's
// language; templates/waiting/waiting.html says the same.
const MESSAGES = {
  Waiting: pgettext('waiting line', 'Waiting'),
  [SERVED]: gettext('Seats Available: taking you to your seats…'),
  'Show Full': gettext('Show Full: no seats came free for this show.'),
  Expired: gettext('Expired: your wait ran out before seats came free.'),
  Cancelled: gettext('Cancelled: you have left the line.'),
};

const section = document.getElementById('waiting');
if (section) {
  follow(section);
}

function follow(section) {
  const positionEl = document.getElementById('waiting-position');
  const statusEl = document.getElementById('waiting-status');
  const initialVersion = Number.parseInt(section.dataset.version, 10);
  let version = Number.isFinite(initialVersion) ? initialVersion : null;
  let status = section.dataset.status || 'Waiting';
  let stopped = false;
  let socket = null;
  let wake = null; // ends the long poll's current pause early (back online)

  function stop() {
    stopped = true;
    socket?.close(1000);
    socket = null;
    wake?.();
  }

  function show(newStatus, message) {
    status = newStatus;
    section.dataset.status = newStatus;
    if (statusEl) statusEl.textContent = message ?? MESSAGES[newStatus] ?? newStatus;
  }

  // Apply a waiter body; returns whether it was news.
  function apply(body) {
    if (stopped || !body || typeof body !== 'object') return false;
    const bodyVersion = Number(body.version);
    if (!Number.isFinite(bodyVersion) || (version !== null && bodyVersion <= version)) return false;
    version = bodyVersion;
    section.dataset.version = String(bodyVersion);
    if (positionEl) {
      // null once out of the line (served, expired…): nothing to count any more
      positionEl.textContent = body.position == null ? '–' : String(body.position);
    }
    if (typeof body.status === 'string' && body.status !== status) show(body.status);
    settle();
    return true;
  }

  // Act on a status that ends the wait.
  function settle() {
    if (status === SERVED) {
      stop();
      show(SERVED);
      goToSeats();
    } else if (FINAL.has(status)) {
      stop();
    }
  }

  function goToSeats() {
    const target = section.dataset.servedUrl ? new URL(section.dataset.servedUrl, location.href) : null;
    // Only ever within the site; without a usable address the page itself knows where to go after a reload.
    if (target && target.origin === location.origin) location.assign(target.href);
    else location.reload();
  }

  // ---- WebSocket first ----

  function openSocket() {
    const path = section.dataset.wsPath;
    if (!path || typeof WebSocket !== 'function') return false;
    const url = new URL(path, location.href); // keeps the ?session_id= query
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    url.host = location.host;
    let current;
    try {
      current = new WebSocket(url.href);
    } catch (error) {
      console.warn('Waiting line: no WebSocket', error);
      return false;
    }
    socket = current;
    current.addEventListener('message', (event) => {
      try {
        apply(JSON.parse(event.data));
      } catch {
        // not a body we understand: ignore it
      }
    });
    // Failing to open and closing later both end in "close" (after "error" when it failed).
    current.addEventListener('close', () => {
      if (socket === current) socket = null;
      if (!stopped) poll();
    });
    return true;
  }

  // ---- Long poll fallback ----

  let polling = false;

  async function poll() {
    const pollUrl = section.dataset.pollUrl;
    if (polling || !pollUrl) return;
    polling = true;
    let failures = 0;
    while (!stopped) {
      const url = new URL(pollUrl, location.href);
      if (url.origin !== location.origin) break;
      if (version !== null) url.searchParams.set('version', String(version));
      url.searchParams.set('wait', String(POLL_WAIT_SECONDS));

      const controller = new AbortController();
      const timeout = setTimeout(() => controller.abort(), POLL_TIMEOUT_MS);
      const started = performance.now();
      try {
        const response = await fetch(url, {
          credentials: 'same-origin',
          cache: 'no-store',
          headers: { Accept: 'application/json' },
          signal: controller.signal,
        });
        if (response.status === 403 || response.status === 404 || response.status === 410) {
          // Not (or no longer) a place in line of this browser: nothing will ever change here.
          show(status, gettext('This place in line is no longer available. Reload the page to see where things stand.'));
          stop();
          break;
        }
        if (!response.ok) throw new Error(`poll: HTTP ${response.status}`);
        const news = apply(await response.json());
        failures = 0;
        // A server that cannot hold answers replies at once; don't turn that into a busy loop.
        if (!news && performance.now() - started < QUICK_ANSWER_MS) await pause(2000 + Math.random() * 2000);
      } catch (error) {
        if (stopped) break;
        failures += 1;
        // Network trouble or a restarting server: back off (1 s up to 15 s, jittered) and try again.
        const ceiling = Math.min(15000, 1000 * 2 ** failures);
        await pause(ceiling / 2 + (Math.random() * ceiling) / 2);
      } finally {
        clearTimeout(timeout);
      }
    }
    polling = false;
  }

  function pause(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        if (wake === done) wake = null;
        resolve();
      }
      wake = done;
    });
  }

  window.addEventListener('online', () => wake?.());
  // Leaving the page (for the seat map, say): a clean close, and no fallback poll started by it.
  window.addEventListener('pagehide', () => {
    if (socket) {
      const current = socket;
      socket = null;
      stopped = true;
      current.close(1000);
    }
  });
  // Back from the back/forward cache: the line has moved on meanwhile; read the page afresh.
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) location.reload();
  });

  // A page that already shows the end (or the seats) acts on it without listening.
  if (status === SERVED || FINAL.has(status)) {
    settle();
    return;
  }
  if (!openSocket()) poll();
}
