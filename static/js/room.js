// The on-sale's waiting room page (templates/waiting/room.html).
//
// <section id="room" data-version data-status data-ws-path data-poll-url>: a place in the room, live through the
// visitor's WebSocket, or its long poll without one (live_follow.js); each body is the visitor's standing
// (waiting.serializers.standing_body). While Waiting, the place, the people ahead and the estimated wait follow
// it (before the draw: "places are drawn at the opening"). Any other status (Admitted, Pass Expired, Left)
// reloads the page, which the server draws for it: the way in, or the offer to join again.
//
// Once admitted, #room-pass-left[data-seconds-left] counts the pass's minutes down (a monotonic clock from the
// server's figure); when it runs out, the page reloads and says so.

import { gettext, interpolate, ngettext } from './i18n.js';
import { followLive } from './live_follow.js';

const section = document.getElementById('room');
if (section?.dataset.status === 'Waiting') {
  follow(section);
}
const passLeft = document.getElementById('room-pass-left');
if (passLeft) {
  countDown(passLeft, Number.parseFloat(passLeft.dataset.secondsLeft));
}

function minutesWord(minutes) {
  return interpolate(ngettext('about %(minutes)s minute', 'about %(minutes)s minutes', minutes), { minutes });
}

function follow(section) {
  const drawing = document.getElementById('room-drawing');
  const placed = document.getElementById('room-placed');
  const place = document.getElementById('room-place');
  const ahead = document.getElementById('room-ahead');
  const wait = document.getElementById('room-wait');
  let live = null;

  function apply(body) {
    section.dataset.version = String(body.version);
    if (body.status !== 'Waiting') {
      live?.stop();
      location.reload();
      return;
    }
    const hasPlace = body.place != null;
    if (drawing) drawing.hidden = hasPlace;
    if (placed) placed.hidden = !hasPlace;
    if (!hasPlace) return;
    if (place) place.textContent = String(body.place);
    if (ahead) ahead.textContent = String(Math.max(0, (body.position ?? 1) - 1));
    if (wait) {
      const seconds = Number(body.estimated_wait_seconds);
      wait.textContent = Number.isFinite(seconds) && seconds > 0 ? minutesWord(Math.ceil(seconds / 60)) : '–';
    }
  }

  live = followLive({
    wsPath: section.dataset.wsPath,
    pollUrl: section.dataset.pollUrl,
    version: Number.parseInt(section.dataset.version, 10),
    onBody: apply,
    // Not (or no longer) this browser's place: say so, and leave the reload to the visitor (a reload loop helps nobody).
    onGone: () => {
      const status = document.getElementById('room-status');
      if (status) status.textContent = gettext('This place is no longer yours. Refresh the page to see where things stand.');
    },
  });
}

function countDown(element, secondsLeft) {
  if (!Number.isFinite(secondsLeft)) return;
  // A second past the server's figure (whole seconds, rounded down): the reload then finds the pass ended.
  const deadline = performance.now() + (secondsLeft + 1) * 1000;
  function tick() {
    const left = Math.max(0, (deadline - performance.now()) / 1000);
    if (left <= 0) {
      location.reload(); // the server says the pass ran out
      return;
    }
    const minutes = Math.ceil(left / 60);
    element.textContent = interpolate(
      ngettext(
        'Your pass is valid for %(minutes)s more minute.',
        'Your pass is valid for %(minutes)s more minutes.',
        minutes,
      ),
      { minutes },
    );
    setTimeout(tick, Math.min(1000, left * 1000 + 50));
  }
  tick();
}
