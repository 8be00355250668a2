// One submit only for the checkout's card form (#pay-form, templates/bookings/hold.html).
//
// After the first submit, #pay-button is disabled and says "Paying…"; any further submit (a double click,
// Enter pressed again) is dropped. The server dedupes too, by a one-time token in the form.
//
// The card number and the security code never outlive the page: they are emptied as the page is left (after
// the browser has built the submitted form data), so neither the back/forward cache nor the browser's form
// restoration can show them again. The server never renders them back either (bookings.views.CardForm).
//
// countdown.js imports this module, so the hold page needs only one of the two scripts; loading both is
// harmless (the form is marked once guarded, and a module runs once per URL anyway).

import { gettext } from './i18n.js';

const form = document.getElementById('pay-form');

if (form && form.dataset.submitGuard !== 'on') {
  form.dataset.submitGuard = 'on';
  const button = document.getElementById('pay-button');
  const originalText = button?.textContent ?? '';
  let submitted = false;

  form.addEventListener('submit', (event) => {
    if (submitted) {
      event.preventDefault();
      return;
    }
    if (event.defaultPrevented) return; // someone else stopped this submit: it does not count
    submitted = true;
    form.setAttribute('aria-busy', 'true');
    if (!button) return;
    // Disable on the next task, not now: the browser builds the form data right after this event, and a
    // disabled submit button would leave its own name=value out of it.
    setTimeout(() => {
      button.disabled = true;
      button.dataset.paying = 'on';
      button.textContent = gettext('Paying…');
    }, 0);
  });

  window.addEventListener('pagehide', () => {
    for (const input of form.querySelectorAll('input[autocomplete="cc-number"], input[autocomplete="cc-csc"]')) {
      input.value = '';
    }
  });

  // Back to this page through the back/forward cache (the payment request was left or failed): allow a new
  // try, unless something else (the countdown at zero) disabled the button.
  window.addEventListener('pageshow', (event) => {
    if (!event.persisted || !submitted) return;
    submitted = false;
    form.removeAttribute('aria-busy');
    if (button?.dataset.paying === 'on') {
      delete button.dataset.paying;
      button.disabled = false;
      button.textContent = originalText;
    }
  });
}
