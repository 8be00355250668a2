// The scripts' sentences in the page's language.
//
// base.html loads Django's JavaScriptCatalog (/jsi18n/, served by this site) before the modules; it defines
// gettext, ngettext, pgettext, interpolate and get_format for the language the page was rendered in
// (locale/<lang>/LC_MESSAGES/djangojs.po). Without it (a page that failed to load it) the English words stand.

const catalog = globalThis;

export const gettext = (text) => (typeof catalog.gettext === 'function' ? catalog.gettext(text) : text);

export const ngettext = (singular, plural, count) =>
  typeof catalog.ngettext === 'function' ? catalog.ngettext(singular, plural, count) : count === 1 ? singular : plural;

export const pgettext = (context, text) =>
  typeof catalog.pgettext === 'function' ? catalog.pgettext(context, text) : text;

// interpolate('%(name)s …', {name: …}): named placeholders, as in the Python side's sentences.
export const interpolate = (format, values) => format.replace(/%\((\w+)\)s/g, (whole, name) => String(values[name] ?? whole));

const decimalSeparator = () =>
  (typeof catalog.get_format === 'function' && catalog.get_format('DECIMAL_SEPARATOR')) || '.';

// A price in hundredths of `currency` (ISO 4217: the show's cinema's) as the page's language writes it, with the
// currency's symbol and decimals from the browser's CLDR data as the server's come from Babel's: "$30.00",
// "₹900.00", "30,00 US$" (ticketing/templatetags/site_format.py). Without a currency or Intl: dollars.
export const money = (cents, currency) => {
  if (currency && typeof Intl === 'object') {
    const language = document.documentElement.lang || 'en';
    return new Intl.NumberFormat(language, { style: 'currency', currency }).format(cents / 100);
  }
  return interpolate(gettext('$%(amount)s'), { amount: (cents / 100).toFixed(2).replace('.', decimalSeparator()) });
};

// "A1, A2 and A3" in the page's language.
export const listOf = (words) =>
  words.length <= 1
    ? words.join('')
    : interpolate(gettext('%(first)s and %(last)s'), {
        first: words.slice(0, -1).join(', '),
        last: words[words.length - 1],
      });
