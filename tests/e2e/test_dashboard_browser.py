"""The dashboard in a real Chromium against the Procfile's processes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from core import jobs
from core.credits import grant
from core.database import Database
from core.jobs import JobRequest
from core.migrate import PROJECT_ROOT
from core.settings import Settings
from core.users import NewUser, create_user
from core.vocabulary import LABELS, WaitingReason
from harness.stack import Stack

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Locator, Page, Response, ViewportSize

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = PROJECT_ROOT / ".artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CREDITS = 500
COUNT = 240
LONG = 20_000  # runs for a minute at this stack's pace: time enough to cancel it
TOO_MANY = 90_000  # more than the credits: a 402, whose numbers print like the cards'
TIMEOUT_MS = 60_000
REFRESH_MS = 15_000  # how often the dashboard reads the cards again (app.js)

DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONES: dict[str, ViewportSize] = {
    "phone-390": {"width": 390, "height": 844},
    "phone-360": {"width": 360, "height": 740},
}
MIN_TAP_PX = 44  # the smallest target a finger should have to hit on a phone

BAD = re.compile(r"\bbad\b")  # the class that shows a figure as a problem

# The error answers the test provokes on purpose: a bad token, a count of 0, too few credits.
PROVOKED = [(401, "GET", "/api/stats"), (400, "POST", "/api/jobs"), (402, "POST", "/api/jobs")]
PROVOKED_CONSOLE = re.compile(
    r"^Failed to load resource: the server responded with a status of (400|401|402)\b"
)

# What must be shown whole and inside the viewport's width at every size.
SIGN_IN_PARTS = [".topbar", ".brand", ".topnav a", "#sign-in", "#token", "#sign-in-form button"]
DASHBOARD_PARTS = [
    ".topbar",
    ".brand",
    ".topnav a",
    "#whoami",
    "#sign-out",
    ".card",
    "#count",
    "#submit-button",
    "#dashboard .panel",
    ".table-scroll",
    "[data-pager] button",
    ".page-info",
    ".secret",  # the revealed one, with its buttons: usable without scrolling the table
    "[data-action=copy]",
    "[data-action=hide]",
]
# A job's and an account's figures and actions, each inside the width on a phone.
ROW_CARD_PARTS = [
    "#jobs-table tbody td.num",
    "#jobs-table .badge",
    "#jobs-table td.actions",
    "#vault-table [data-action=delete]",
]
DOCS_PARTS = [".topbar", ".brand", ".topnav a", "#intro", "#operations .op", "#schemas .schema"]

# For each selector: how many of its elements are shown, and which of them stick out sideways.
PLACEMENT = """(selectors) => selectors.map((selector) => {
  const shown = [...document.querySelectorAll(selector)].filter((n) => n.getClientRects().length);
  const outside = shown
    .map((n) => n.getBoundingClientRect())
    .filter((box) => box.left < 0 || box.right > window.innerWidth + 0.5)
    .map((box) => `${Math.round(box.left)}..${Math.round(box.right)}`);
  return { selector, shown: shown.length, outside };
})"""

# The header's pieces (logo, name, tagline, links, buttons) as boxes, to find overlaps.
HEADER_BOXES = """() => [...document.querySelectorAll('.brand > *, .topnav > *')]
  .filter((n) => n.getClientRects().length)
  .map((n) => {
    const box = n.getBoundingClientRect();
    return [n.id || n.className || n.tagName, box.left, box.top, box.right, box.bottom];
  })"""

# Buttons and header links a finger cannot reliably hit.
SMALL_TARGETS = """(min) => [...document.querySelectorAll('button, .topnav a')]
  .filter((n) => n.getClientRects().length)
  .map((n) => [n.textContent.trim(), n.getBoundingClientRect()])
  .filter(([, box]) => box.width < min || box.height < min)
  .map(([text, box]) => `${text}: ${Math.round(box.width)}x${Math.round(box.height)}`)"""

# The tables' scrolling containers: whether each scrolls sideways and whether it has to.
TABLE_SCROLLERS = """() => [...document.querySelectorAll('.table-scroll')]
  .filter((n) => n.getClientRects().length)
  .map((n) => ({
    id: n.querySelector('table').id,
    overflow: getComputedStyle(n).overflowX,
    wider: n.scrollWidth > n.clientWidth,
  }))"""

# The icon the page declares: the start of its address and its decoded width.
ICON = """async () => {
  const link = document.querySelector('link[rel="icon"]');
  if (!link) return null;
  const image = new Image();
  image.src = link.href;
  await image.decode();
  return [link.href.slice(0, link.href.indexOf(',') + 1), image.naturalWidth];
}"""

# Whether a value sits anywhere in the page's session or local storage.
IN_STORAGE = """(value) => [sessionStorage, localStorage].some(
  (store) => Object.keys(store).some((key) => store.getItem(key).includes(value))
)"""

# True once no card is fading its change highlight.
CARDS_STILL = "() => [...document.querySelectorAll('.card')].every((n) => !n.getAnimations()[0])"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=(
            "needs Debian's chromium at /usr/bin/chromium (apt-get install chromium); "
            ".ci/run installs it"
        ),
    ),
]


@pytest.fixture
def web_url(
    process_env: dict[str, str], db: Database, redis_client: object, tmp_path: Path
) -> Iterator[str]:
    env = {
        **process_env,
        "TALLY_SANDBOX_FAILURE_RATE": "0.1",
        "TALLY_SANDBOX_LATENCY_MS": "30",
        "TALLY_PROVIDER_CONCURRENCY": "8",
        "TALLY_APPLY_INTERVAL": "0.2",
        "PYTHONUNBUFFERED": "1",
    }
    with Stack(env, tmp_path / "logs") as stack:
        url = stack.web()
        stack.worker(threads=2)
        stack.reconcile()
        yield url


@pytest.fixture
def user(db: Database) -> NewUser:
    return create_user(db.sessions, "browser", credits=CREDITS, is_admin=True)


@pytest.fixture
def member(db: Database) -> NewUser:
    """A user who is not an admin."""
    return create_user(db.sessions, "member", credits=7)


def check_layout(
    page: Page, viewport: ViewportSize, parts: list[str], picture: str | None = None
) -> set[str]:
    """At this size: no sideways scroll, every part shown inside the width, a clean header.

    Returns the ids of the tables wider than their panel (scrolling inside it).
    """
    page.set_viewport_size(viewport)
    if picture:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / picture
        page.screenshot(path=str(path), full_page=True)
        print(f"\nscreenshot: {path}")
    where = f"at {viewport['width']}x{viewport['height']}"

    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page scrolls sideways {where}: {widths}"

    for placed in page.evaluate(PLACEMENT, parts):
        assert placed["shown"], f"{placed['selector']} is not shown {where}"
        assert not placed["outside"], f"{placed['selector']} leaves the viewport {where}: {placed}"

    boxes = page.evaluate(HEADER_BOXES)
    for i, (a, *box_a) in enumerate(boxes):
        for b, *box_b in boxes[i + 1 :]:
            assert not overlap(box_a, box_b), f"header: {a} runs into {b} {where}"

    scrollers = page.evaluate(TABLE_SCROLLERS)
    for scroller in scrollers:
        assert scroller["overflow"] == "auto", f"{scroller} does not scroll in its card {where}"

    if viewport["width"] < DESKTOP["width"]:
        small = page.evaluate(SMALL_TARGETS, MIN_TAP_PX)
        assert not small, f"targets under {MIN_TAP_PX}px {where}: {small}"
    return {scroller["id"] for scroller in scrollers if scroller["wider"]}


def check_icon(page: Page) -> None:
    """The page declares its own icon, so the browser never asks for /favicon.ico (a 404).

    Chromium fetches icons outside the page's network events: no response listener would see
    that 404, so the test checks what prevents it, an icon that is declared and decodes.
    """
    assert page.evaluate(ICON) == ["data:image/svg+xml,", 32], page.url


def color(locator: Locator) -> str:
    """The text colour the element is drawn in."""
    return str(locator.evaluate("(node) => getComputedStyle(node).color"))


def overlap(a: list[float], b: list[float]) -> bool:
    """Whether two (left, top, right, bottom) boxes share any area."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_dashboard_signs_in_follows_a_job_reveals_and_deletes_in_the_vault(
    web_url: str, db: Database, user: NewUser, member: NewUser
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(
            viewport=PHONES["phone-360"], permissions=["clipboard-read", "clipboard-write"]
        )
        page.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=TIMEOUT_MS)

        errors: list[tuple[int, str, str]] = []  # every answer of 400 or more
        console: list[str] = []  # console errors and uncaught exceptions

        def on_response(response: Response) -> None:
            if response.status >= 400:
                errors.append(
                    (response.status, response.request.method, urlsplit(response.url).path)
                )

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                console.append(message.text)

        page.on("response", on_response)
        page.on("console", on_console)
        page.on("pageerror", lambda error: console.append(f"uncaught: {error}"))

        page.goto(web_url)
        expect(page.locator("#sign-in")).to_be_visible()
        check_icon(page)
        check_layout(page, PHONES["phone-360"], SIGN_IN_PARTS)
        page.set_viewport_size(DESKTOP)

        page.fill("#token", "tly_not-a-token")
        page.click("#sign-in-form button[type=submit]")
        expect(page.locator("#sign-in-error")).to_contain_text("not valid")
        page.fill("#token", user.token)
        page.click("#sign-in-form button[type=submit]")
        expect(page.locator("#card-credits")).to_have_text(str(CREDITS))
        expect(page.locator("#card-requested")).to_have_text("0")
        expect(page.locator("#jobs-empty")).to_be_visible()
        expect(page.locator("#vault-empty")).to_be_visible()
        for pager in ("jobs", "vault"):  # nothing to page through: no pager
            expect(page.locator(f'[data-pager="{pager}"]')).to_be_hidden()
        failures_card = page.locator("#card-failures")
        expect(failures_card).to_have_text("0")
        expect(failures_card).not_to_have_class(BAD)
        assert color(failures_card) == color(page.locator("#card-requested"))

        page.fill("#count", "0")
        page.click("#submit-button")
        expect(page.locator("#submit-error")).to_have_text(  # the maximum, as in 100,000
            re.compile(r"^Count must be between 1 and \d{1,3}(,\d{3})+\.$")
        )
        page.fill("#count", str(TOO_MANY))
        page.click("#submit-button")
        expect(page.locator("#submit-error")).to_have_text(
            f"Not enough credits: this job needs {TOO_MANY:,} credits; the balance is {CREDITS}."
        )

        page.fill("#count", str(COUNT))
        page.click("#submit-button")
        expect(page.locator("#submit-error")).to_be_hidden()
        row = page.locator("#jobs-table tbody tr").first
        expect(row.locator(".badge")).to_have_text(re.compile("queued|running"))
        expect(row).to_have_attribute("data-status", "completed")
        expect(row.locator(".pct")).to_have_text("100%")
        successful = int(row.locator("td.num").nth(1).inner_text().replace(",", ""))
        failures = int(row.locator("td.num").nth(2).inner_text().replace(",", ""))
        assert successful + failures == COUNT and failures > 0
        expect(row.locator("td.num").nth(2)).to_have_class(BAD)
        expect(row.locator("td.num").nth(1)).not_to_have_class(BAD)

        expect(page.locator("#card-requested")).to_have_text(str(COUNT))
        expect(page.locator("#card-successful")).to_have_text(str(successful))
        expect(failures_card).to_have_text(str(failures))
        expect(failures_card).to_have_class(BAD)
        assert color(failures_card) != color(page.locator("#card-requested"))
        expect(page.locator("#card-business_centers")).to_have_text(str(successful))
        expect(page.locator("#card-credits")).to_have_text(f"{CREDITS - successful:,}")
        expect(page.locator("#jobs-page")).to_have_text("1\N{EN DASH}1 of 1")
        expect(page.locator("#vault-page")).to_have_text(f"1\N{EN DASH}10 of {successful}")

        first_account = page.locator("#vault-table tbody tr").first
        account_id = first_account.get_attribute("data-account")
        delete = first_account.locator('[data-action="delete"]')
        delete.click()
        expect(delete).to_have_text("Confirm")
        delete.click()
        expect(page.locator(f'tr[data-account="{account_id}"]')).to_have_count(0)
        expect(page.locator("#vault-page")).to_have_text(f"1\N{EN DASH}10 of {successful - 1}")
        expect(page.locator("#card-business_centers")).to_have_text(str(successful - 1))

        # Reveal a secret: a click, a confirming click, the secret in the row, copied.
        account_id = page.locator("#vault-table tbody tr").first.get_attribute("data-account")
        account = page.locator(f'tr[data-account="{account_id}"]')
        reveal = account.locator('[data-action="reveal"]')
        reveal.click()
        expect(reveal).to_have_text("Confirm")
        expect(account.locator(".secret")).to_have_count(0)  # nothing before the confirmation
        reveal.click()
        expect(account.locator(".secret")).to_be_visible()
        shown = account.locator(".secret").inner_text()
        answer = page.request.post(
            f"{web_url}/api/accounts/{account_id}/reveal",
            headers={"Authorization": f"Bearer {user.token}"},
        )
        assert answer.ok and shown and answer.json() == {"id": account_id, "secret": shown}
        assert not page.evaluate(IN_STORAGE, shown), "the secret was put in web storage"
        account.locator('[data-action="copy"]').click()
        expect(account.locator('[data-action="copy"]')).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == shown

        # Let the cards' change highlight go, and its fade end, before the pictures.
        expect(page.locator(".card.changed")).to_have_count(0)
        page.wait_for_function(CARDS_STILL)
        assert not check_layout(page, DESKTOP, DASHBOARD_PARTS, "dashboard-desktop.png")
        for name, viewport in PHONES.items():
            # On a phone each row is a card: figures and actions shown, nothing scrolls sideways.
            wider = check_layout(
                page, viewport, DASHBOARD_PARTS + ROW_CARD_PARTS, f"dashboard-{name}.png"
            )
            assert wider == set(), f"{name}: {wider}"

        account.locator('[data-action="hide"]').click()
        expect(account.locator(".secret")).to_have_count(0)
        expect(reveal).to_have_text("Reveal")

        # Cancel a running job: a click, a confirming click, then it ends cancelled.
        grant(db.sessions, user.user_id, LONG)
        page.fill("#count", str(LONG))
        page.click("#submit-button")
        expect(page.locator("#jobs-page")).to_have_text("1\N{EN DASH}2 of 2")
        running = page.locator("#jobs-table tbody tr").first
        expect(running).to_have_attribute("data-status", "running")
        cancel = running.locator('[data-action="cancel"]')
        cancel.click()
        expect(cancel).to_have_text("Confirm")
        cancel.click()
        expect(running).to_have_attribute("data-status", "cancelled")
        expect(running.locator(".badge")).to_have_text("cancelled")
        expect(running.locator("td.actions")).to_contain_text("never attempted")
        job_id = running.get_attribute("data-job")
        ended = page.request.get(
            f"{web_url}/api/job/{job_id}", headers={"Authorization": f"Bearer {user.token}"}
        ).json()
        assert ended["cancelled"] > 0
        assert ended["successful"] + ended["failures"] + ended["cancelled"] == LONG
        expect(page.locator("#card-requested")).to_have_text(f"{COUNT + LONG:,}")

        page.click(".topnav a[href='/docs']")
        expect(page.locator("#schemas .schema").first).to_be_visible()
        check_icon(page)
        check_layout(page, PHONES["phone-360"], DOCS_PARTS, "docs-phone-360.png")

        assert errors == PROVOKED, f"unexpected error answers: {errors}"
        unexpected = [text for text in console if not PROVOKED_CONSOLE.match(text)]
        assert not unexpected, f"console errors: {unexpected}"

        # Someone who is not an admin: the page asks who they are, never for a report.
        tab = browser.new_page(viewport=DESKTOP)
        tab.on("response", on_response)
        tab.on("console", on_console)
        tab.goto(web_url)
        tab.fill("#token", member.token)
        with tab.expect_response(lambda answer: answer.url.endswith("/api/me")):
            tab.click("#sign-in-form button[type=submit]")
        expect(tab.locator("#card-credits")).to_have_text("7")
        expect(tab.locator("#report-panel")).to_be_hidden()
        assert errors == PROVOKED, f"a member's sign-in answered errors: {errors}"
        assert not [text for text in console if not PROVOKED_CONSOLE.match(text)]

        # The link `tally dev` prints: signed in from the fragment, which then leaves the URL.
        linked = browser.new_page(viewport=DESKTOP)
        linked.on("response", on_response)
        linked.goto(f"{web_url}/#token={user.token}")
        expect(linked.locator("#jobs-page")).to_have_text("1\N{EN DASH}2 of 2")
        expect(linked.locator(f'tr[data-job="{job_id}"]')).to_have_attribute(
            "data-status", "cancelled"
        )
        assert linked.url == f"{web_url}/", linked.url
        assert linked.evaluate(IN_STORAGE, user.token)  # kept as a pasted token is
        linked.reload()  # the token is no longer in the address, the tab stays signed in
        expect(linked.locator("#card-credits")).to_be_visible()
        assert errors == PROVOKED, f"the link's sign-in answered errors: {errors}"
        browser.close()


@pytest.fixture
def web_alone(process_env: dict[str, str], db: Database, tmp_path: Path) -> Iterator[str]:
    """The web process with no worker or daemon: a queued job stays as the test leaves it."""
    with Stack(process_env, tmp_path / "logs") as stack:
        yield stack.web()


def test_the_dashboard_says_why_a_job_waits_in_the_servers_words(
    web_alone: str, db: Database, settings: Settings, user: NewUser
) -> None:
    from playwright.sync_api import expect, sync_playwright

    request = JobRequest(user_id=user.user_id, count=5, provider="sandbox")
    job_id = jobs.submit(db.sessions, settings, request).job.id
    with db.engine.begin() as connection:  # as the worker records a provider's pushback
        connection.execute(
            text(
                "UPDATE jobs SET waiting = :w, retry_at = now() + interval '1 hour' WHERE id = :j"
            ),
            {"w": WaitingReason.RATE_LIMITED, "j": job_id},
        )
    words = LABELS[WaitingReason][WaitingReason.RATE_LIMITED]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport=DESKTOP)
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(web_alone)
        page.fill("#token", user.token)
        page.click("#sign-in-form button[type=submit]")
        note = page.locator(f'[data-job="{job_id}"] [data-waiting]')
        expect(note).to_have_text(re.compile(f"^waiting: {words} until "), timeout=TIMEOUT_MS)
        browser.close()


def test_the_vault_shows_stored_accounts_before_the_stats_have_counted_them(
    web_alone: str, db: Database, user: NewUser
) -> None:
    """A job's accounts are stored when it ends and counted in business_centers a moment
    later, by the daemon: the vault must show them in between, and its total once counted."""
    from playwright.sync_api import expect, sync_playwright

    stored = 3
    with db.engine.begin() as connection:  # as the worker leaves a finished job, not applied
        connection.execute(
            text(
                "WITH j AS (INSERT INTO jobs (user_id, status, provider, requested, successful, "
                "price, slices_total, slices_done) VALUES (:u, 'completed', 'sandbox', :n, :n, "
                "1, 1, 1) RETURNING id) "
                "INSERT INTO user_accounts (user_id, job_id, item_index, provider, external_id, "
                "username, secret_encrypted) "
                "SELECT :u, j.id, i, 'sandbox', 'x' || i, 'u' || i, '\\x00' "
                "FROM j, generate_series(0, :n - 1) i"
            ),
            {"u": user.user_id, "n": stored},
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport=DESKTOP)
        page.set_default_timeout(TIMEOUT_MS)
        page.clock.install()  # the cards' refresh is brought forward, not waited for
        page.goto(web_alone)
        page.fill("#token", user.token)
        page.click("#sign-in-form button[type=submit]")
        expect(page.locator("#card-business_centers")).to_have_text("0")
        expect(page.locator("#vault-table tbody tr")).to_have_count(stored)
        expect(page.locator("#vault-table")).to_be_visible()
        expect(page.locator("#vault-empty")).to_be_hidden()
        with db.engine.begin() as connection:  # as the daemon's apply counts them
            connection.execute(
                text(
                    "INSERT INTO user_stats (user_id, business_centers) VALUES (:u, :n) "
                    "ON CONFLICT (user_id) DO UPDATE SET business_centers = :n"
                ),
                {"u": user.user_id, "n": stored},
            )
        page.clock.fast_forward(REFRESH_MS)  # the cards' next refresh
        expect(page.locator("#vault-page")).to_have_text(f"1\N{EN DASH}{stored} of {stored}")
        expect(page.locator('[data-pager="vault"]')).to_be_visible()
        first = page.locator("#vault-table tbody tr").first.locator('[data-action="delete"]')
        expect(first).to_be_visible()
        browser.close()
