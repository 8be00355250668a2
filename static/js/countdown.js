// The hold's countdown on the checkout page (templates/bookings/hold.html).
//
// <time id="hold-countdown" data-seconds-left="297" …>4:57</time>: the server wrote the seconds left when it
// rendered the page. We count down from there with performance.now(), a monotonic clock, so the display
// agrees with the server whatever the phone's wall clock says (or if it is changed meanwhile).
// At zero: "Time's up", #pay-button disabled, #hold-expired-notice shown, and 2 s later a reload, after
// which the server shows the expired hold.
//
// Also brings in the pay form's one-submit guard (pay_form.js), so the page can load just this script.

import './pay_form.js';
import { gettext } from './i18n.js';

const RELOAD_AFTER_MS = 2000;
const WARN_AT_SECONDS = 60;
// A hold that the server still renders with no time left (its expiry not processed yet) must not make the
// page reload forever: a few reloads per page, counted in sessionStorage.
const MAX_RELOADS = 3;

const clock = document.getElementById('hold-countdown');
const secondsLeft = clock ? Number.parseFloat(clock.dataset.secondsLeft) : Number.NaN;

if (clock && Number.isFinite(secondsLeft)) {
  start(clock, secondsLeft);
}

function start(clock, secondsLeft) {
  const deadline = performance.now() + Math.max(0, secondsLeft) * 1000;
  let timer = 0;
  let warned = secondsLeft <= WARN_AT_SECONDS; // no "1 minute left" when the page opens with less than that

  // Updating the clock every second is not announced (that would drown a screen reader); a separate polite
  // region says "1 minute left" once.
  const announcer = document.createElement('span');
  announcer.className = 'visually-hidden';
  announcer.setAttribute('aria-live', 'polite');
  clock.after(announcer);

  function tick() {
    const remainingMs = deadline - performance.now();
    if (remainingMs <= 0) {
      expire();
      return;
    }
    // Round up: "0:01" shows until the last second has fully gone, and the first frame shows what the server said.
    const seconds = Math.ceil(remainingMs / 1000);
    const text = format(seconds);
    if (clock.textContent !== text) clock.textContent = text;
    clock.classList.toggle('countdown--urgent', seconds <= WARN_AT_SECONDS);
    if (!warned && seconds <= WARN_AT_SECONDS) {
      warned = true;
      announcer.textContent = gettext('One minute left to pay before your seats are released.');
    }
    // Wake just after the next whole second; timers drift and are throttled in background tabs, which is
    // harmless since each tick reads the clock again.
    timer = setTimeout(tick, (remainingMs % 1000) + 20);
  }

  function expire() {
    clearTimeout(timer);
    clock.textContent = gettext("Time's up");
    clock.classList.remove('countdown--urgent');
    clock.classList.add('countdown--expired');

    const button = document.getElementById('pay-button');
    if (button) button.disabled = true;

    const notice = document.getElementById('hold-expired-notice');
    if (notice) notice.hidden = false;
    const noticeSpeaks = notice && (notice.getAttribute('role') === 'alert' || notice.hasAttribute('aria-live'));
    if (!noticeSpeaks) announcer.textContent = gettext("Time's up. Your seats are no longer held.");

    if (mayReload()) setTimeout(() => location.reload(), RELOAD_AFTER_MS);
  }

  // Back from the back/forward cache the hold may have been paid, cancelled or expired meanwhile: ask again.
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) location.reload();
  });

  tick();
}

function format(totalSeconds) {
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = String(totalSeconds % 60).padStart(2, '0');
  return hours ? `${hours}:${String(minutes).padStart(2, '0')}:${seconds}` : `${minutes}:${seconds}`;
}

function mayReload() {
  const key = `hold-countdown-reloads:${location.pathname}`;
  try {
    const count = Number(sessionStorage.getItem(key)) || 0;
    if (count >= MAX_RELOADS) return false;
    sessionStorage.setItem(key, String(count + 1));
  } catch {
    // Storage refused (private mode, quota): reload anyway, the server's page is the truth.
  }
  return true;
}
