// The waiting page: a place in the line for a full show (templates/waiting/waiting.html).
//
// <section id="waiting" data-version data-status data-ws-path data-poll-url data-served-url>
// Live through the waiter's WebSocket, or its long poll without one (live_follow.js); each body is the waiter's.
// "Seats Available" sends the user to data-served-url (the seat map with the seats held for them); "Show Full",
// "Expired" and "Cancelled" are shown and end it all.

import { gettext, pgettext } from './i18n.js';
import { followLive } from './live_follow.js';

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
  let status = section.dataset.status || 'Waiting';
  let live = null;

  function show(newStatus, message) {
    status = newStatus;
    section.dataset.status = newStatus;
    if (statusEl) statusEl.textContent = message ?? MESSAGES[newStatus] ?? newStatus;
  }

  function apply(body) {
    section.dataset.version = String(body.version);
    if (positionEl) {
      // null once out of the line (served, expired…): nothing to count any more
      positionEl.textContent = body.position == null ? '–' : String(body.position);
    }
    if (typeof body.status === 'string' && body.status !== status) show(body.status);
    settle();
  }

  // Act on a status that ends the wait.
  function settle() {
    if (status === SERVED) {
      live?.stop();
      show(SERVED);
      goToSeats();
    } else if (FINAL.has(status)) {
      live?.stop();
    }
  }

  function goToSeats() {
    const target = section.dataset.servedUrl ? new URL(section.dataset.servedUrl, location.href) : null;
    // Only ever within the site; without a usable address the page itself knows where to go after a reload.
    if (target && target.origin === location.origin) location.assign(target.href);
    else location.reload();
  }

  // A page that already shows the end (or the seats) acts on it without listening.
  if (status === SERVED || FINAL.has(status)) {
    settle();
    return;
  }
  live = followLive({
    wsPath: section.dataset.wsPath,
    pollUrl: section.dataset.pollUrl,
    version: Number.parseInt(section.dataset.version, 10),
    onBody: apply,
    onGone: () =>
      show(status, gettext('This place in line is no longer available. Reload the page to see where things stand.')),
  });
}
