"""Fixtures for end-to-end tests in a real browser: Debian's Chromium, driven by Playwright, through a real uvicorn.

Registered as a plugin by tests/conftest.py, so a test just asks for the fixtures:

    @pytest.mark.django_db(transaction=True)
    def test_a_moviegoer_sees_the_cities(site, new_page):
        make_cinema(city=make_city(name="Springfield"))
        page = new_page(base_url=site)
        page.goto("/")
        expect(page.get_by_role("link", name="Springfield")).to_be_visible()

- `site` is the URL of the site served by a real uvicorn (one worker) on the test database; `site_with(**environment)`
  starts one with environment overrides and returns its URL, e.g. a hold clock of seconds:
  `site_with(TICKETING_HOLD_SECONDS=3, TICKETING_HOLD_GRACE_SECONDS=0, TICKETING_IN_PROCESS_CLOCKS=1)`.
- `new_page(viewport=..., **context_options)` opens a page in a browser context of its own: each one is a separate
  moviegoer with its own cookies (session, holds). Contexts close after the test. When the test fails, every page
  still open is saved as a PNG in the test's tmp_path and listed in the report, with the page's JavaScript errors.
- Every browser test fails if a page of it reports a Content-Security-Policy violation (something the site's
  policy blocked: an inline script or style, a load from elsewhere), even when everything the test checks went
  well: the browser's `securitypolicyviolation` events and its "Refused to ..." console messages are recorded for
  each context (`csp_violations(page)`, a list a test that provokes one on purpose may read and clear).

Browser tests are transactional: the server is another process and sees only committed rows. They cannot use
async_to_sync (see _Chromium).

Chromium is launched once per session (with the first test that needs it): Playwright's browsers cannot be downloaded
here, so it runs /usr/bin/chromium from the `chromium` Debian package (the Makefile's DEBIAN_PACKAGES), or
$CHROMIUM_PATH. Never `playwright install`.
"""

import asyncio
import contextlib
import os

import pytest
from django.db import connections
from playwright.sync_api import sync_playwright

from tests.conftest import serving

CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",  # the tests run as root, and Chromium's sandbox refuses root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Chromium's own calls home (updates, sync, field trials): this machine's closed network refuses them, slowly.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEFAULT_VIEWPORT = {"width": 1280, "height": 800}
# Actions and navigations give up after this (Playwright's default is 30 s); expect() keeps its own 5 s.
TIMEOUT_MS = 10_000

_pages_of_test = pytest.StashKey[list]()
_screenshot_dir = pytest.StashKey[object]()
_csp_violations_of_context = {}  # browser context -> what it reported, for the test's duration

# In every page and frame, before any of the page's own scripts: hand each violation the page reports to Python
# (a binding survives navigations, which a list kept in the page would not).
_CSP_RECORDER = """
addEventListener('securitypolicyviolation', (event) => {
  const where = `${event.sourceFile || document.URL}:${event.lineNumber}`;
  const sample = event.sample ? ` "${event.sample}"` : '';
  window.__recordCspViolation(
    `${event.effectiveDirective} blocked ${event.blockedURI || '(inline)'} at ${where}${sample} (${event.disposition})`
  );
}, true);
"""


def _is_csp_message(message):
    text = message.text
    return message.type in ("error", "warning") and (
        text.startswith("Refused to") or "Content Security Policy" in text or "Content-Security-Policy" in text
    )


def csp_violations(page):
    """The Content-Security-Policy violations reported so far in `page`'s browser context (a live list)."""
    return _csp_violations_of_context[page.context]


def _settle_and_collect_csp_violations(pages):
    """Every violation the test's contexts reported, once reports still on their way have arrived.

    The page fires the event in a task of its own after the violation, and the binding's call reaches Python while
    Playwright runs: a short wait in each open page lets both through.
    """
    contexts = {page.context for page, _ in pages}
    for context in contexts:
        with contextlib.suppress(Exception):  # a context or page that closed or crashed meanwhile
            for page in context.pages:
                page.evaluate("() => new Promise((done) => setTimeout(done, 100))")
    return {context: list(_csp_violations_of_context.get(context, [])) for context in contexts}


class _Chromium:
    """Playwright and the browser it launched, kept for the whole session.

    Playwright's sync API runs its asyncio loop in a greenlet of the test's own thread, and from its start until its
    stop that loop is this thread's running loop (asyncio keeps one per thread; Playwright sets it again after each
    call). While it shows, Django refuses ORM calls from the thread (SynchronousOnlyOperation), asgiref's
    async_to_sync refuses to run at all, and Django's connections move to per-context storage. Left showing by a
    session-long browser, it broke every later test of the session, browser or not; so it shows only during browser
    tests (show_loop/hide_loop, asyncio's own hook that Playwright uses too). Playwright must not be called while it
    is hidden: its tasks look the loop up.
    """

    def __init__(self):
        self.playwright = sync_playwright().start()
        try:
            self.browser = self.playwright.chromium.launch(
                executable_path=CHROMIUM_PATH, headless=True, args=CHROMIUM_FLAGS
            )
        except BaseException:
            self.playwright.stop()
            raise
        self.loop = asyncio.get_running_loop()  # Playwright's
        self.hide_loop()

    def show_loop(self):
        asyncio._set_running_loop(self.loop)

    def hide_loop(self):
        asyncio._set_running_loop(None)

    def close(self):
        self.show_loop()
        try:
            self.browser.close()
        finally:
            self.playwright.stop()  # its loop stops and stops showing


@pytest.fixture(scope="session")
def _chromium():
    if not os.path.exists(CHROMIUM_PATH):
        pytest.fail(f"no Chromium at {CHROMIUM_PATH}: `make debian-packages` installs it, or set CHROMIUM_PATH")
    chromium = _Chromium()
    try:
        yield chromium
    finally:
        chromium.close()


@contextlib.contextmanager
def _environment_variable(name, value):
    old = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@pytest.fixture
def browser(transactional_db, _chromium):
    """The session's Chromium, for one browser test (transactional: the server is another process).

    While the test runs, Playwright's loop shows as this thread's running loop (see _Chromium), so the test's own ORM
    calls (factories, assertions on rows) need DJANGO_ALLOW_ASYNC_UNSAFE: they really are synchronous code on a
    synchronous thread, nothing runs in that loop meanwhile. Set only for the test's duration; `site_with` keeps it
    out of the server's environment. async_to_sync cannot run in a browser test. Requesting transactional_db here
    puts this fixture's teardown before the database flush, which so runs with the loop hidden and the variable gone.
    """
    with _environment_variable("DJANGO_ALLOW_ASYNC_UNSAFE", "true"):
        _chromium.show_loop()
        try:
            yield _chromium.browser
        finally:
            # While a loop runs, Django keeps the thread's connections apart, per async context (asgiref's Local):
            # the test's ORM calls went through connections of their own. Hand them back to the pool, or one stays
            # checked out and holds the test database open (its DROP then waits 5 s and fails).
            connections.close_all()
            _chromium.hide_loop()


@pytest.fixture
def new_page(request, browser, tmp_path):
    """A factory: new_page(viewport=..., **context_options) opens a page in a fresh browser context.

    Each context is a separate moviegoer (its own cookies, storage and cache). context_options go to
    Browser.new_context, e.g. base_url=site (then page.goto("/")), locale="en-GB" or timezone_id="Europe/London".
    The page's context is page.context (cookies, a second tab). All contexts are closed after the test.
    """
    contexts = []
    pages = request.node.stash.setdefault(_pages_of_test, [])
    request.node.stash[_screenshot_dir] = tmp_path

    def open_page(*, viewport=DEFAULT_VIEWPORT, **context_options):
        context = browser.new_context(viewport=viewport, **context_options)
        contexts.append(context)
        context.set_default_timeout(TIMEOUT_MS)
        violations = _csp_violations_of_context[context] = []

        def csp_console_message(message):
            if _is_csp_message(message):
                violations.append(f"console: {message.text}")

        context.expose_binding("__recordCspViolation", lambda source, text: violations.append(text))
        context.add_init_script(_CSP_RECORDER)
        context.on("console", csp_console_message)
        page = context.new_page()
        errors = []

        def console_error(message):
            if message.type == "error":
                errors.append(message.text)

        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", console_error)
        pages.append((page, errors))
        return page

    yield open_page
    for context in contexts:
        with contextlib.suppress(Exception):  # a context the test closed, or a browser that crashed
            context.close()
        _csp_violations_of_context.pop(context, None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A browser test whose pages reported a Content-Security-Policy violation fails, whatever it asserted."""
    result = yield  # a test that failed already raises here, and keeps its own failure
    pages = item.stash.get(_pages_of_test, None)
    if pages:
        reported = [text for texts in _settle_and_collect_csp_violations(pages).values() for text in texts]
        if reported:
            pytest.fail(
                "the site's Content-Security-Policy was violated (see ticketing/settings.py, SECURE_CSP):\n  "
                + "\n  ".join(reported),
                pytrace=False,
            )
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """When a browser test fails, screenshot its open pages (before teardown closes them) into its tmp_path."""
    report = yield
    pages = item.stash.get(_pages_of_test, None)
    if report.when == "call" and report.failed and pages:
        lines = []
        for number, (page, errors) in enumerate(pages, start=1):
            if page.is_closed():
                continue
            path = item.stash[_screenshot_dir] / f"failure-page-{number}.png"
            try:
                page.screenshot(path=path, full_page=True)
                lines.append(f"page {number} at {page.url}: {path}")
            except Exception as error:  # the report must not fail on a dead page
                lines.append(f"page {number} at {page.url}: no screenshot ({error})")
            lines += [f"  JavaScript error: {text}" for text in errors]
        report.sections.append(("browser pages at failure", "\n".join(lines)))
    return report


@pytest.fixture
def site_with(transactional_db, settings):
    """A factory: site_with(**environment) starts the site on a real uvicorn (one worker) and returns its URL.

    environment overrides the server's environment (values become strings), e.g. the hold clock:
    TICKETING_HOLD_SECONDS (the hold the moviegoer is shown) and TICKETING_HOLD_GRACE_SECONDS (how much longer the
    seats stay held before the hold lapses); TICKETING_IN_PROCESS_CLOCKS=1 runs beat's schedule in the server process,
    so lapsed holds get marked Expired without a Celery worker (else see tests.conftest.celery_worker). These change
    the server only: code the test runs itself reads the test's `settings`. Servers stop after the test.
    """
    with contextlib.ExitStack() as servers:

        def start(**environment):
            environment = {name: str(value) for name, value in environment.items()}
            # Never hand the browser tests' DJANGO_ALLOW_ASYNC_UNSAFE (see `browser`) to the server.
            with _environment_variable("DJANGO_ALLOW_ASYNC_UNSAFE", None):
                url, _ = servers.enter_context(serving(settings, workers=1, environment=environment))
            return url

        yield start


@pytest.fixture
def site(site_with):
    """The URL of the site on a real uvicorn with the usual settings (see `site_with`)."""
    return site_with()
