// The live seat map of a show: the markup is templates/bookings/seat_map.html and _seat_grid.html.
//
// What it does:
// - keeps the selection within data-max-seats and #selection-summary current ("2 seats: A1, A2 · $30.00", in
//   the grid's data-currency);
// - explains the no-single-empty-seat rule early (the server is the one that enforces it);
// - follows the show's WebSocket and applies pushed seat changes, re-reading the grid (data-map-url) after a
//   reconnect or when the server's version is ahead of the grid's, since pushes are at most once;
// - the grid is one Tab stop (roving tabindex: one seat has tabindex=0, the others -1) and the arrow keys, Home
//   and End move between seats by grid position (Space chooses: seats are checkboxes);
// - on a phone: the hall fits the width at first (the overview), the zoom buttons and two fingers zoom it;
//   the seats the session holds are scrolled into view;
// - asks for the wheelchair-space confirmation (#accessible-confirmation) while such a seat is chosen (the
//   server refuses a hold without it).
//
// Nothing is exported and nothing is put on window. Every listener is delegated to the form, so replacing
// the .seat-grid element after a resync needs no re-binding. Its sentences come from i18n.js (the page's language).

import { gettext, interpolate, listOf, money, ngettext, pgettext } from './i18n.js';

const STATUSES = ['available', 'held', 'booked', 'yours'];
const PUSHABLE = new Set(['available', 'held', 'booked']); // what the live channel may say about a seat
// How a seat's status is read out (the machine words above stay in data-status).
const SPOKEN_STATUS = {
  available: () => pgettext('seat status', 'available'),
  held: () => pgettext('seat status', 'held'),
  booked: () => pgettext('seat status', 'booked'),
  yours: () => pgettext('seat status', 'held by you'),
};
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 5000;
const RESYNC_RETRIES = 3;

const form = document.getElementById('seat-map-form');
if (form) {
  setUp(form);
}

function setUp(form) {
  const summary = document.getElementById('selection-summary');
  const live = document.getElementById('seat-map-live');
  const maxSeats = positiveInt(form.dataset.maxSeats) ?? Infinity;

  let note = ''; // a one-off note under the summary (already announced in #seat-map-live), cleared on the next change
  let submitting = false;

  // ---- The grid and its seats -------------------------------------------------------------------------

  const grid = () => form.querySelector('.seat-grid');
  const seats = () => Array.from(grid()?.querySelectorAll('.seat[data-seat-id]') ?? []);
  const inputOf = (seat) => seat.querySelector('input[type="checkbox"]');
  const labelOf = (seat) => seat.dataset.label || interpolate(gettext('seat %(id)s'), { id: seat.dataset.seatId });
  const seatById = (id) => grid()?.querySelector(`.seat[data-seat-id="${CSS.escape(String(id))}"]`) ?? null;

  // What is submitted as the user's choice: checked, enabled boxes of available seats (and of the session's
  // own held seats, which the server renders checked).
  const isChosen = (seat) => {
    const input = inputOf(seat);
    return Boolean(input && input.checked && !input.disabled && (seat.dataset.status === 'available' || seat.dataset.status === 'yours'));
  };

  // Free in the sense of the single-seat rule: nobody has it and the user has not chosen it. An unchecked
  // "yours" seat counts as free: the user is giving it back.
  const isFree = (seat) => {
    if (!seat) return false;
    const input = inputOf(seat);
    return (seat.dataset.status === 'available' || seat.dataset.status === 'yours') && !(input && input.checked);
  };

  // Grid positions come from the inline style the server writes (grid-column / grid-row, 1-based).
  const positionCache = new WeakMap();
  function position(seat) {
    let pos = positionCache.get(seat);
    if (pos === undefined) {
      const col = Number.parseInt(seat.style.gridColumnStart, 10);
      const row = Number.parseInt(seat.style.gridRowStart, 10);
      pos = Number.isFinite(col) && Number.isFinite(row) ? { col, row } : null;
      positionCache.set(seat, pos);
    }
    return pos;
  }

  // Seats by "row:col", rebuilt only when the grid element is replaced (positions never change in place).
  let indexFor = null;
  let index = new Map();
  function seatAt(row, col) {
    const current = grid();
    if (current !== indexFor) {
      index = new Map();
      for (const seat of seats()) {
        const pos = position(seat);
        if (pos) index.set(`${pos.row}:${pos.col}`, seat);
      }
      indexFor = current;
    }
    return index.get(`${row}:${col}`) ?? null;
  }

  function byPosition(a, b) {
    const pa = position(a);
    const pb = position(b);
    if (!pa || !pb) return 0; // keep document order when positions are unknown (sort is stable)
    return pa.row - pb.row || pa.col - pb.col;
  }

  // ---- Summary, hints and announcements ---------------------------------------------------------------

  let pendingAnnouncements = [];
  let announceTimer = 0;
  // Clearing the region first and filling it a moment later makes screen readers speak a message that
  // happens to repeat the previous one; messages raised in the same moment are spoken together.
  function announce(message) {
    if (!live || !message) return;
    pendingAnnouncements.push(message);
    clearTimeout(announceTimer);
    live.textContent = '';
    announceTimer = setTimeout(() => {
      live.textContent = pendingAnnouncements.join(' ');
      pendingAnnouncements = [];
    }, 100);
  }

  const cents = (price) => {
    const value = Number.parseFloat(price);
    return Number.isFinite(value) ? Math.round(value * 100) : 0;
  };

  // The free seats the chosen ones would leave alone: next to a chosen seat, with no free seat on their other
  // side (a taken seat, the row's end or an aisle gap, i.e. no seat at that grid position). Mirrors
  // bookings.seat_picking.single_gaps_left.
  function strandedSeats(chosen) {
    const stranded = new Set();
    for (const seat of chosen) {
      const pos = position(seat);
      if (!pos) continue;
      for (const col of [pos.col - 1, pos.col + 1]) {
        const neighbour = seatAt(pos.row, col);
        if (isFree(neighbour) && !isFree(seatAt(pos.row, col - 1)) && !isFree(seatAt(pos.row, col + 1))) {
          stranded.add(neighbour);
        }
      }
    }
    return Array.from(stranded).sort(byPosition);
  }

  // Wheelchair spaces and companion seats can be chosen by anyone (the server doesn't ask who sits there), so
  // the page says whom they are kept for as soon as one is chosen.
  function reservedNote(chosen) {
    const ofKind = (kind) =>
      chosen.filter((seat) => seat.dataset.status === 'available' && seat.classList.contains(`seat--${kind}`));
    const wheelchair = ofKind('wheelchair').map(labelOf);
    const companion = ofKind('companion').map(labelOf);
    const notes = [];
    if (wheelchair.length) {
      const sentence = ngettext(
        '%(seats)s is a wheelchair space, kept for wheelchair users.',
        '%(seats)s are wheelchair spaces, kept for wheelchair users.',
        wheelchair.length,
      );
      notes.push(interpolate(sentence, { seats: listOf(wheelchair) }));
    }
    if (companion.length) {
      const sentence = ngettext(
        '%(seats)s is a companion seat, kept for the person with a wheelchair user.',
        '%(seats)s are companion seats, kept for the person with a wheelchair user.',
        companion.length,
      );
      notes.push(interpolate(sentence, { seats: listOf(companion) }));
    }
    if (!notes.length) return '';
    const please = ngettext(
      'Please choose it only if you need it.',
      'Please choose them only if you need them.',
      wheelchair.length + companion.length,
    );
    return `${notes.join(' ')} ${please}`;
  }

  // The buyer's word that they need a wheelchair space or companion seat: asked while one is chosen.
  const confirmation = document.getElementById('accessible-confirmation');
  const confirmationBox = confirmation?.querySelector('input[type="checkbox"]') ?? null;
  // Companion seats still free shortly before the show are anyone's (data-companions-open, from the server).
  const companionsOpen = form.dataset.companionsOpen === '1';
  const isReserved = (seat) =>
    seat.classList.contains('seat--wheelchair') || (!companionsOpen && seat.classList.contains('seat--companion'));
  function askConfirmation(chosen) {
    if (!confirmation) return;
    confirmation.hidden = !chosen.some(isReserved);
  }

  let lastSummaryKey = null;
  function updateSummary() {
    const chosen = seats().filter(isChosen).sort(byPosition);
    for (const seat of seats()) {
      // A class as well as :has(input:checked) in the CSS, for browsers without :has().
      seat.classList.toggle('seat--selected', seat.dataset.status === 'available' && isChosen(seat));
    }
    askConfirmation(chosen);
    rove();
    if (!summary) return;

    let text = gettext('No seats chosen.');
    if (chosen.length) {
      const total = chosen.reduce((sum, seat) => sum + cents(seat.dataset.price), 0);
      const sentence = ngettext('%(count)s seat: %(seats)s · %(total)s', '%(count)s seats: %(seats)s · %(total)s', chosen.length);
      text = interpolate(sentence, { count: chosen.length, seats: chosen.map(labelOf).join(', '), total: money(total, grid()?.dataset.currency) });
    }
    const stranded = strandedSeats(chosen).map(labelOf);
    const hint = stranded.length
      ? interpolate(
          gettext('Choosing seats that leave one empty seat alone is not allowed: pick %(seats)s too, or move over.'),
          { seats: listOf(stranded) },
        )
      : '';
    const reserved = reservedNote(chosen);

    // Only touch the live region when something really changed, so pushes about other seats stay silent.
    const key = JSON.stringify([text, hint, reserved, note]);
    if (key === lastSummaryKey) return;
    lastSummaryKey = key;
    // What the server rendered may already say it ("No seats chosen."): rewriting it could be read out again.
    if (!hint && !reserved && !note && summary.childElementCount === 0 && summary.textContent.trim() === text) return;

    const parts = [document.createTextNode(text)];
    if (hint) {
      const span = document.createElement('span');
      span.className = 'selection-summary__hint';
      span.textContent = hint;
      parts.push(' ', span);
    }
    if (reserved) {
      const span = document.createElement('span');
      span.className = 'selection-summary__reserved';
      span.textContent = reserved;
      parts.push(' ', span);
    }
    if (note) {
      // Said already (assertively) in #seat-map-live; shown here for sighted users without being read twice.
      const span = document.createElement('span');
      span.className = 'selection-summary__note';
      span.setAttribute('aria-hidden', 'true');
      span.textContent = note;
      parts.push(' ', span);
    }
    summary.replaceChildren(...parts);
    summary.classList.toggle('selection-summary--hint', Boolean(hint));
  }

  function tellTaken(labels) {
    if (!labels.length) return;
    const message = interpolate(
      ngettext('Seat %(seats)s was just taken.', 'Seats %(seats)s were just taken.', labels.length),
      { seats: listOf(labels) },
    );
    note = message;
    announce(message);
  }

  // ---- Choosing seats ---------------------------------------------------------------------------------

  form.addEventListener('change', (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || input.type !== 'checkbox') return;
    const seat = input.closest('.seat');
    if (!seat || !grid()?.contains(seat)) return;
    note = '';
    if (input.checked && seats().filter(isChosen).length > maxSeats) {
      input.checked = false;
      note = interpolate(ngettext('You can choose at most %(count)s seat.', 'You can choose at most %(count)s seats.', maxSeats), {
        count: maxSeats,
      });
      announce(`${note} ${interpolate(gettext('%(seat)s was not added.'), { seat: labelOf(seat) })}`);
    }
    updateSummary();
  });

  form.addEventListener('submit', (event) => {
    if (submitting) {
      event.preventDefault(); // a second click while the first request is on its way
      return;
    }
    // Only "Hold these seats" needs a choice ("Best available" picks for the user); when the browser does not
    // say which button was used, let the server answer.
    const choosing = event.submitter?.value === 'choose';
    if (choosing && grid() && !seats().some(isChosen)) {
      event.preventDefault();
      note = gettext('Choose at least one seat first, or use Best available.');
      announce(note);
      updateSummary();
      return;
    }
    if (choosing && confirmationBox && !confirmationBox.checked && seats().filter(isChosen).some(isReserved)) {
      event.preventDefault();
      note = gettext('Wheelchair spaces and companion seats are kept for those who need them: tick the box to confirm you do, or choose other seats.');
      announce(note);
      updateSummary();
      confirmationBox.focus();
      return;
    }
    submitting = true;
  });
  // Coming back through the back/forward cache: the page is live again. With a live channel, reopening it
  // re-reads the grid (see connectLive); without one, read it here.
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) {
      submitting = false;
      if (!form.dataset.wsPath || typeof WebSocket !== 'function') resync();
    }
  });

  // ---- Keyboard: arrow keys move between seats by grid position ----------------------------------------

  const focusable = (seat) => {
    const input = seat && inputOf(seat);
    return input && !input.disabled ? input : null;
  };

  function seatsInRow(row) {
    return seats()
      .filter((seat) => position(seat)?.row === row && focusable(seat))
      .sort(byPosition);
  }

  function nearestInRow(row, col) {
    let best = null;
    let bestDistance = Infinity;
    for (const seat of seatsInRow(row)) {
      const distance = Math.abs(position(seat).col - col);
      if (distance < bestDistance) [best, bestDistance] = [seat, distance];
    }
    return best;
  }

  function target(seat, key) {
    const pos = position(seat);
    if (!pos) return null;
    const row = seatsInRow(pos.row);
    switch (key) {
      case 'ArrowLeft':
        return row.filter((s) => position(s).col < pos.col).pop() ?? null;
      case 'ArrowRight':
        return row.find((s) => position(s).col > pos.col) ?? null;
      case 'Home':
        return row[0] ?? null;
      case 'End':
        return row[row.length - 1] ?? null;
      case 'ArrowUp':
      case 'ArrowDown': {
        // The nearest seat by column in the next row that has any seat one can focus.
        const step = key === 'ArrowUp' ? -1 : 1;
        const rows = Array.from(new Set(seats().map((s) => position(s)?.row).filter(Number.isFinite)));
        rows.sort((a, b) => (a - b) * step);
        for (const r of rows) {
          if ((r - pos.row) * step <= 0) continue;
          const found = nearestInRow(r, pos.col);
          if (found) return found;
        }
        return null;
      }
      default:
        return null;
    }
  }

  form.addEventListener('keydown', (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    if (!['ArrowLeft', 'ArrowRight', 'ArrowUp', 'ArrowDown', 'Home', 'End'].includes(event.key)) return;
    const input = event.target;
    const seat = input instanceof HTMLInputElement ? input.closest('.seat') : null;
    if (!seat || !grid()?.contains(seat)) return;
    event.preventDefault(); // no page scrolling while moving around the map, even at its edge
    const next = focusable(target(seat, event.key));
    if (next) {
      next.focus();
      next.closest('.seat')?.scrollIntoView?.({ block: 'nearest', inline: 'nearest' });
    }
  });

  // ---- One Tab stop for the grid (roving tabindex) -----------------------------------------------------

  // The seat that Tab lands on: the one focused last, else the first chosen or held, else the first free one.
  let rovingId = null;
  function rove() {
    const all = seats();
    let current = rovingId !== null ? focusable(seatById(rovingId)) : null;
    if (!current) {
      const first = all.filter(isChosen).sort(byPosition)[0] ?? all.filter(focusable).sort(byPosition)[0];
      current = first ? focusable(first) : null;
    }
    for (const seat of all) {
      const input = inputOf(seat);
      if (input) input.tabIndex = input === current ? 0 : -1;
    }
  }
  form.addEventListener('focusin', (event) => {
    const input = event.target;
    const seat = input instanceof HTMLInputElement ? input.closest('.seat') : null;
    if (!seat || !grid()?.contains(seat)) return;
    rovingId = seat.dataset.seatId;
    rove();
  });

  // ---- Zoom: the whole hall fits the width first; buttons and two fingers zoom --------------------------

  const mapBox = form.querySelector('.seat-map');
  const zoomBar = form.querySelector('.seat-map-zoom');
  const MAX_ZOOM = 1.5;
  const ZOOM_STEP = 1.5;
  let zoom = 1;
  let fitZoom = 1;

  // The zoom at which the grid's columns fill the box's width (never above 1: seats keep their full size).
  function measureFit() {
    const current = grid();
    if (!mapBox || !current) return 1;
    const style = getComputedStyle(mapBox);
    const room = mapBox.clientWidth - Number.parseFloat(style.paddingLeft) - Number.parseFloat(style.paddingRight);
    const natural = current.scrollWidth / zoom;
    return natural > 0 ? Math.min(1, room / natural) : 1;
  }

  function setZoom(value, { keepCentre = true } = {}) {
    if (!mapBox) return;
    const next = Math.min(MAX_ZOOM, Math.max(fitZoom, value));
    const centre = mapBox.scrollWidth > 0 ? (mapBox.scrollLeft + mapBox.clientWidth / 2) / mapBox.scrollWidth : 0.5;
    const middle = mapBox.scrollHeight > 0 ? (mapBox.scrollTop + mapBox.clientHeight / 2) / mapBox.scrollHeight : 0.5;
    zoom = next;
    mapBox.style.setProperty('--zoom', String(next));
    mapBox.classList.toggle('seat-map--overview', next < 0.75);
    mapBox.dataset.zoom = next.toFixed(3);
    if (keepCentre) {
      mapBox.scrollLeft = centre * mapBox.scrollWidth - mapBox.clientWidth / 2;
      mapBox.scrollTop = middle * mapBox.scrollHeight - mapBox.clientHeight / 2;
    }
    if (zoomBar) {
      zoomBar.querySelector('[data-zoom="out"]').disabled = next <= fitZoom + 0.001;
      zoomBar.querySelector('[data-zoom="fit"]').disabled = next <= fitZoom + 0.001;
      zoomBar.querySelector('[data-zoom="in"]').disabled = next >= MAX_ZOOM - 0.001;
    }
  }

  function fitToWidth() {
    fitZoom = measureFit();
    if (zoomBar) zoomBar.hidden = fitZoom >= 1; // the whole hall fits at full size: nothing to zoom
    setZoom(fitZoom, { keepCentre: false });
  }

  zoomBar?.addEventListener('click', (event) => {
    const button = event.target instanceof Element ? event.target.closest('button[data-zoom]') : null;
    if (!button) return;
    const how = button.dataset.zoom;
    if (how === 'in') setZoom(zoom * ZOOM_STEP);
    else if (how === 'out') setZoom(zoom / ZOOM_STEP);
    else setZoom(fitZoom);
  });

  // Two fingers on the map: the zoom follows their distance (one finger still scrolls).
  let pinch = null;
  const distance = (touches) => Math.hypot(touches[0].clientX - touches[1].clientX, touches[0].clientY - touches[1].clientY);
  mapBox?.addEventListener(
    'touchstart',
    (event) => {
      if (event.touches.length === 2) pinch = { from: distance(event.touches), zoom };
    },
    { passive: true },
  );
  mapBox?.addEventListener(
    'touchmove',
    (event) => {
      if (!pinch || event.touches.length !== 2) return;
      event.preventDefault();
      const apart = distance(event.touches);
      if (pinch.from > 0) setZoom(pinch.zoom * (apart / pinch.from));
    },
    { passive: false },
  );
  mapBox?.addEventListener('touchend', (event) => {
    if (event.touches.length < 2) pinch = null;
  });

  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      const wasFit = zoom <= fitZoom + 0.001;
      fitZoom = measureFit();
      if (zoomBar) zoomBar.hidden = fitZoom >= 1;
      setZoom(wasFit ? fitZoom : zoom);
    }, 150);
  });

  // The seats this session holds, scrolled into view inside the map (the page itself stays where it is).
  function showOwnSeats() {
    const own = seats().filter((seat) => seat.dataset.status === 'yours').sort(byPosition);
    if (!mapBox || !own.length) return;
    const box = mapBox.getBoundingClientRect();
    const first = own[0].getBoundingClientRect();
    const last = own[own.length - 1].getBoundingClientRect();
    const middle = (first.left + last.right) / 2;
    mapBox.scrollLeft += middle - (box.left + box.width / 2);
  }

  // ---- Applying pushed changes ------------------------------------------------------------------------

  function setStatusText(seat, status) {
    const hidden = seat.querySelector('.visually-hidden');
    if (!hidden) return;
    // "Row A seat 1, Premium, $15.00, available": the status is the last comma-separated part, in the page's
    // language (bookings.seat_maps.seat_markup writes the same words).
    const spoken = SPOKEN_STATUS[status]?.() ?? status;
    const text = hidden.textContent.trim();
    const cut = text.lastIndexOf(',');
    hidden.textContent = cut >= 0 ? `${text.slice(0, cut)}, ${spoken}` : `${text}, ${spoken}`;
  }

  // Returns the seat's label when the change took a seat the user had chosen.
  function applyChange(change) {
    if (!change || !PUSHABLE.has(change.status)) return null;
    const seat = seatById(change.id);
    const version = Number(change.version);
    if (!seat || !Number.isFinite(version)) return null;
    if (seat.dataset.status === 'yours') return null; // this session's own hold: only the server page changes it
    const current = Number(seat.dataset.version);
    if (Number.isFinite(current) && version <= current) return null; // older news than what the seat shows

    seat.dataset.version = String(version);
    seat.dataset.status = change.status;
    seat.classList.remove(...STATUSES.map((s) => `seat--${s}`));
    seat.classList.add(`seat--${change.status}`);
    setStatusText(seat, change.status);

    const input = inputOf(seat);
    if (!input) return null;
    const wasChosen = input.checked;
    input.disabled = change.status !== 'available';
    if (change.status !== 'available' && wasChosen) {
      input.checked = false;
      return labelOf(seat);
    }
    return null;
  }

  function applyChanges(changes) {
    if (submitting || !Array.isArray(changes)) return;
    const taken = [];
    for (const change of changes) {
      const label = applyChange(change);
      if (label) taken.push(label);
    }
    keepFocusUsable();
    tellTaken(taken);
    updateSummary();
  }

  // A seat taken while it had keyboard focus becomes a disabled input, where focus would be stuck: move it to
  // the nearest seat still free in the same row (or any free seat).
  function keepFocusUsable() {
    const active = document.activeElement;
    if (!(active instanceof HTMLInputElement) || !active.disabled || !grid()?.contains(active)) return;
    const pos = position(active.closest('.seat'));
    const next = (pos && focusable(nearestInRow(pos.row, pos.col))) ?? focusable(seats().find(focusable));
    next?.focus({ preventScroll: true });
  }

  // ---- Re-reading the grid ----------------------------------------------------------------------------

  const gridVersion = () => {
    const value = Number(grid()?.dataset.version);
    return Number.isFinite(value) ? value : -Infinity;
  };

  let resyncing = false;
  let resyncAgain = false;
  let changesDuringResync = [];

  async function resync(attempt = 0) {
    const mapUrl = form.dataset.mapUrl;
    if (!mapUrl || !grid() || submitting) return;
    if (resyncing) {
      resyncAgain = true;
      return;
    }
    const url = new URL(mapUrl, location.href);
    if (url.origin !== location.origin) return; // the grid is only ever read from our own server

    resyncing = true;
    changesDuringResync = [];
    let failed = false;
    try {
      const response = await fetch(url, {
        credentials: 'same-origin',
        cache: 'no-store',
        headers: { Accept: 'text/html', 'X-Requested-With': 'XMLHttpRequest' },
      });
      if (!response.ok) throw new Error(`map: HTTP ${response.status}`);
      const html = await response.text();
      const fresh = new DOMParser().parseFromString(html, 'text/html').querySelector('.seat-grid');
      if (!fresh) throw new Error('map: no .seat-grid in the answer');
      replaceGrid(document.importNode(fresh, true));
    } catch (error) {
      failed = true;
      console.warn('Seat map: could not re-read the seats', error);
    } finally {
      resyncing = false;
    }
    if (resyncAgain) {
      resyncAgain = false;
      resync();
    } else if (failed && attempt < RESYNC_RETRIES) {
      setTimeout(() => resync(attempt + 1), jitteredDelay(attempt + 2));
    }
  }

  function replaceGrid(fresh) {
    const old = grid();
    if (!old || submitting) return;
    const freshVersion = Number(fresh.dataset.version);
    if (Number.isFinite(freshVersion) && freshVersion < gridVersion()) return; // an older picture than ours

    // What the user did on the old grid: their choices, the own seats they let go, where the focus was.
    const oldSeats = seats();
    const chosenIds = new Set(oldSeats.filter((s) => s.dataset.status === 'available' && isChosen(s)).map((s) => s.dataset.seatId));
    const releasedIds = new Set(
      oldSeats.filter((s) => s.dataset.status === 'yours' && !inputOf(s)?.checked).map((s) => s.dataset.seatId),
    );
    const focusedSeat = old.contains(document.activeElement) ? document.activeElement.closest('.seat') : null;
    const focusedId = focusedSeat?.dataset.seatId;
    const focusedPos = focusedSeat ? position(focusedSeat) : null;
    const box = old.parentElement;
    const scroll = box ? [box.scrollLeft, box.scrollTop] : null;

    old.replaceWith(fresh);

    const taken = [];
    for (const seat of seats()) {
      const input = inputOf(seat);
      if (!input) continue;
      const id = seat.dataset.seatId;
      if (seat.dataset.status === 'available') {
        input.checked = chosenIds.has(id);
      } else if (seat.dataset.status === 'yours') {
        if (releasedIds.has(id)) input.checked = false;
      } else if (chosenIds.has(id)) {
        taken.push(labelOf(seat));
      }
    }
    // The seats chosen must still fit the limit (they always should; a fresh page could differ).
    let over = seats().filter(isChosen).length - maxSeats;
    for (const seat of seats().reverse()) {
      if (over <= 0) break;
      if (seat.dataset.status === 'available' && isChosen(seat)) {
        inputOf(seat).checked = false;
        over -= 1;
      }
    }
    // Pushes that came while the fragment was on its way may be newer than it: apply them again.
    for (const change of changesDuringResync) {
      const label = applyChange(change);
      if (label) taken.push(label);
    }
    changesDuringResync = [];

    if (box && scroll) [box.scrollLeft, box.scrollTop] = scroll;
    if (focusedId !== undefined) {
      const again =
        focusable(seatById(focusedId)) ??
        (focusedPos && focusable(nearestInRow(focusedPos.row, focusedPos.col))) ??
        focusable(seats().find(focusable));
      again?.focus({ preventScroll: true });
    }
    tellTaken(taken);
    updateSummary();
  }

  // ---- The live channel -------------------------------------------------------------------------------

  function jitteredDelay(attempt) {
    // Exponential ceiling from 0.5 s up to 5 s, with the actual wait drawn at random below it ("full jitter",
    // floored at 0.5 s) so that a whole audience dropped by one server restart does not come back at once.
    const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** attempt);
    return RECONNECT_MIN_MS + Math.random() * (ceiling - RECONNECT_MIN_MS);
  }

  function connectLive() {
    const path = form.dataset.wsPath;
    if (!path || typeof WebSocket !== 'function') return;

    let socket = null;
    let attempts = 0;
    let everConnected = false;
    let reconnectTimer = 0;
    let stopped = false;

    const socketUrl = () => {
      const url = new URL(path, location.href);
      url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
      url.host = location.host; // the channel lives next to the page, whatever the path looks like
      return url.href;
    };

    function open() {
      clearTimeout(reconnectTimer);
      reconnectTimer = 0;
      if (stopped || (socket && socket.readyState <= WebSocket.OPEN)) return;
      let current;
      try {
        current = new WebSocket(socketUrl());
      } catch (error) {
        console.warn('Seat map: no live updates', error);
        return;
      }
      socket = current;
      let greeted = false;

      current.addEventListener('message', (event) => {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch {
          return; // not ours to understand
        }
        if (!message || typeof message !== 'object') return;
        if (message.type === 'version') {
          const reconnected = everConnected && !greeted;
          greeted = true;
          everConnected = true;
          attempts = 0; // the server has answered: the next drop starts the backoff afresh
          // Pushes are at most once: after a gap, or when the server is ahead of the grid, read it again.
          if (reconnected || Number(message.version) > gridVersion()) resync();
        } else if (message.type === 'seats') {
          if (resyncing) changesDuringResync.push(...(message.changes ?? []));
          applyChanges(message.changes);
        }
      });

      current.addEventListener('close', (event) => {
        if (socket === current) socket = null;
        if (stopped) return;
        if (event.code === 4404) {
          stopped = true; // the show is gone; retrying would not help
          return;
        }
        reconnectTimer = setTimeout(open, jitteredDelay(attempts));
        attempts += 1;
      });
      // An error is always followed by close, which does the retrying.
    }

    // Back online or back on the tab: try now rather than at the end of a long wait.
    const retryNow = () => {
      if (!socket && !stopped) {
        attempts = 0;
        open();
      }
    };
    window.addEventListener('online', retryNow);
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') retryNow();
    });
    // Leaving the page: close cleanly so the page can enter the back/forward cache; pageshow reopens.
    window.addEventListener('pagehide', () => {
      stopped = true;
      clearTimeout(reconnectTimer);
      socket?.close(1000);
      socket = null;
    });
    window.addEventListener('pageshow', (event) => {
      if (event.persisted) {
        stopped = false;
        attempts = 0;
        open();
      }
    });

    open();
  }

  updateSummary();
  fitToWidth();
  showOwnSeats();
  connectLive();
}

function positiveInt(value) {
  const n = Number.parseInt(value, 10);
  return Number.isFinite(n) && n > 0 ? n : null;
}
