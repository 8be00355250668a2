// Following a body that changes on the server, live: the waiting line's page (waiting.js) and the waiting room's
// page (room.js).
//
// followLive({ wsPath, pollUrl, version, onBody, onGone }) listens on the WebSocket at wsPath first (each message
// is a body); when the socket cannot open or closes, it long-polls instead: GET pollUrl?version=<v>&wait=30, again
// and again. A body is handed to onBody only when its version is newer than the last one (so a socket's message
// and a poll's answer never go backwards). onGone() is called when the poll says the thing followed is not this
// browser's (403, 404, 410): nothing will change any more. Returns { stop }.

const POLL_WAIT_SECONDS = 30;
const POLL_TIMEOUT_MS = (POLL_WAIT_SECONDS + 15) * 1000; // the server's wait plus room for a slow network
const QUICK_ANSWER_MS = 1000;

export function followLive({ wsPath, pollUrl, version: initialVersion, onBody, onGone }) {
  let version = Number.isFinite(initialVersion) ? initialVersion : null;
  let stopped = false;
  let socket = null;
  let wake = null; // ends the long poll's current pause early (back online)
  let polling = false;

  function stop() {
    stopped = true;
    socket?.close(1000);
    socket = null;
    wake?.();
  }

  // Hand on a body when it is news.
  function receive(body) {
    if (stopped || !body || typeof body !== 'object') return false;
    const bodyVersion = Number(body.version);
    if (!Number.isFinite(bodyVersion) || (version !== null && bodyVersion <= version)) return false;
    version = bodyVersion;
    onBody(body);
    return true;
  }

  // ---- WebSocket first ----

  function openSocket() {
    if (!wsPath || typeof WebSocket !== 'function') return false;
    const url = new URL(wsPath, location.href); // keeps the ?session_id= query
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    url.host = location.host;
    let current;
    try {
      current = new WebSocket(url.href);
    } catch (error) {
      console.warn('No WebSocket', error);
      return false;
    }
    socket = current;
    current.addEventListener('message', (event) => {
      try {
        receive(JSON.parse(event.data));
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

  async function poll() {
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
          // Not (or no longer) this browser's: nothing will ever change here.
          stop();
          onGone?.();
          break;
        }
        if (!response.ok) throw new Error(`poll: HTTP ${response.status}`);
        const news = receive(await response.json());
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
  // Back from the back/forward cache: things have moved on meanwhile; read the page afresh.
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) location.reload();
  });

  if (!openSocket()) poll();
  return { stop };
}
