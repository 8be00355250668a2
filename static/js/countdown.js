// The hold's countdown on the checkout page (templates/bookings/hold.html) and the seat map's hold banner.
//
// <time id="hold-countdown" data-seconds-left="297" …>4:57</time>: the server wrote the seconds left when it
// rendered the page. We count down from there with performance.now(), a monotonic clock, so the display
// agrees with the server whatever the phone's wall clock says (or if it is changed meanwhile).
// At zero: "Time's up", #pay-button disabled, #hold-expired-notice shown, and 2 s later a reload, after
// which the server shows the expired hold.
//
// More time (WCAG 2.2.1, Timing Adjustable), on checkout: #hold-extend holds the Extend form (a plain POST,
// which works without this script) and an empty role="alert" paragraph, #hold-warning. Under WARN_AT_SECONDS
// before the end (at once, if the page opens later than that) the block turns into a warning and the alert says
// how little time is left and which button gives more, or that the hold can't be extended again. The
// form is sent with fetch, so a card half typed stays; the checkout page the server answers with gives the
// new time left, from which the countdown starts again, and the block as it is now (no button, "can't be
// extended again"). A hold that ended meanwhile is shown as the server shows it now.
//
// Also brings in the pay form's one-submit guard (pay_form.js), so the page can load just this script.

import './pay_form.js';
import { gettext, interpolate } from './i18n.js';

const RELOAD_AFTER_MS = 2000;
// The warning comes once fewer seconds than this are left: at least 20 (WCAG 2.2.1 gives the buyer 20 s to ask
// for more time); a minute, to read it and press.
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
  const extendBlock = document.getElementById('hold-extend');
  let deadline = 0;
  let timer = 0;
  let warned = false;

  // Updating the clock every second is not announced (that would drown a screen reader); a separate polite
  // region says "1 minute left" once where there is no warning of its own (the seat map's banner).
  const announcer = document.createElement('span');
  announcer.className = 'visually-hidden';
  announcer.setAttribute('aria-live', 'polite');
  clock.after(announcer);

  function restart(seconds) {
    clearTimeout(timer);
    deadline = performance.now() + Math.max(0, seconds) * 1000;
    // No "1 minute left" when the seat map opens with less than that; checkout warns at once instead.
    warned = !extendBlock && seconds < WARN_AT_SECONDS;
    extendBlock?.classList.remove('hold-extend--warning');
    tick();
  }

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
    clock.classList.toggle('countdown--urgent', seconds < WARN_AT_SECONDS);
    if (!warned && seconds < WARN_AT_SECONDS) {
      warned = true;
      if (extendBlock) warn();
      else announcer.textContent = gettext('One minute left to pay before your seats are released.');
    }
    // Wake just after the next whole second; timers drift and are throttled in background tabs, which is
    // harmless since each tick reads the clock again.
    timer = setTimeout(tick, (remainingMs % 1000) + 20);
  }

  function warn() {
    extendBlock.classList.add('hold-extend--warning');
    const button = document.getElementById('extend-button');
    say(
      `${gettext('Less than a minute left to pay before your seats are released.')} ${
        button
          ? interpolate(gettext('Press “%(button)s” for more time.'), { button: button.textContent.trim() })
          : gettext("This hold can't be extended again.")
      }`,
    );
  }

  function say(text) {
    const alert = document.getElementById('hold-warning');
    if (alert) alert.textContent = text;
  }

  function expire() {
    clearTimeout(timer);
    clock.textContent = gettext("Time's up");
    clock.classList.remove('countdown--urgent');
    clock.classList.add('countdown--expired');

    const button = document.getElementById('pay-button');
    if (button) button.disabled = true;
    const extendButton = document.getElementById('extend-button');
    if (extendButton) extendButton.disabled = true;
    if (extendBlock) extendBlock.hidden = true;

    const notice = document.getElementById('hold-expired-notice');
    if (notice) notice.hidden = false;
    const noticeSpeaks = notice && (notice.getAttribute('role') === 'alert' || notice.hasAttribute('aria-live'));
    if (!noticeSpeaks) announcer.textContent = gettext("Time's up. Your seats are no longer held.");

    if (mayReload()) setTimeout(() => location.reload(), RELOAD_AFTER_MS);
  }

  // The Extend form, sent without leaving the page.
  extendBlock?.addEventListener('submit', async (event) => {
    const form = event.target;
    if (form.id !== 'extend-form') return;
    event.preventDefault();
    const button = document.getElementById('extend-button');
    if (button?.disabled) return; // asked already
    if (button) button.disabled = true;
    let answer;
    try {
      answer = await fetch(form.action, { method: 'POST', body: new FormData(form), credentials: 'same-origin' });
    } catch {
      form.submit(); // no answer: the form as it works without this script
      return;
    }
    const page = new DOMParser().parseFromString(await answer.text(), 'text/html');
    const newClock = page.getElementById('hold-countdown');
    const newBlock = page.getElementById('hold-extend');
    if (!newClock || !newBlock) {
      // The hold ended meanwhile (or the answer is no checkout page): show what the server says now.
      if (answer.redirected) location.assign(answer.url);
      else location.reload();
      return;
    }
    // All but the alert, which stays the same element: a live region is heard when its words change.
    const alert = document.getElementById('hold-warning');
    for (const node of [...extendBlock.childNodes]) if (node !== alert) node.remove();
    for (const node of [...newBlock.childNodes]) if (node.id !== 'hold-warning') extendBlock.append(node);
    // The time left as the server says it now: extended, or (refused: another tab extended it first) as it is.
    restart(Number.parseFloat(newClock.dataset.secondsLeft));
    if (answer.ok) say(gettext('Your hold is extended: the time left starts again.'));
    else say(page.getElementById('refusal')?.textContent.trim() ?? '');
    // The button is gone: keep the keyboard's place on what replaced it.
    const used = document.getElementById('extend-used');
    if (used) {
      used.tabIndex = -1;
      used.focus();
    }
  });

  // Back from the back/forward cache the hold may have been paid, cancelled or expired meanwhile: ask again.
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) location.reload();
  });

  restart(secondsLeft);
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
