"""The dashboard in a real Chromium against the Procfile's processes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.database import Database
from core.migrate import PROJECT_ROOT
from core.users import NewUser, create_user
from tests.support.stack import Stack

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = PROJECT_ROOT / ".artifacts" / "dashboard.png"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CREDITS = 500
COUNT = 240
TIMEOUT_MS = 60_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
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
    stack = Stack(env, tmp_path / "logs")
    try:
        url = stack.web()
        stack.worker(threads=2)
        stack.reconcile()
        yield url
    except BaseException:
        print(stack.report())
        raise
    finally:
        stack.stop_all()


@pytest.fixture
def user(db: Database) -> NewUser:
    return create_user(db.sessions, "browser", credits=CREDITS, is_admin=True)


def test_dashboard_signs_in_follows_a_job_and_deletes_from_the_vault(
    web_url: str, user: NewUser
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=TIMEOUT_MS)
        page.goto(web_url)

        page.fill("#token", "tly_not-a-token")
        page.click("#sign-in-form button[type=submit]")
        expect(page.locator("#sign-in-error")).to_contain_text("not valid")
        page.fill("#token", user.token)
        page.click("#sign-in-form button[type=submit]")
        expect(page.locator("#card-credits")).to_have_text(str(CREDITS))
        expect(page.locator("#card-requested")).to_have_text("0")
        expect(page.locator("#jobs-empty")).to_be_visible()

        page.fill("#count", "0")
        page.click("#submit-button")
        expect(page.locator("#submit-error")).to_contain_text(
            re.compile("count must be between", re.I)
        )
        page.fill("#count", str(CREDITS + 1))
        page.click("#submit-button")
        expect(page.locator("#submit-error")).to_contain_text("Not enough credits")

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

        expect(page.locator("#card-requested")).to_have_text(str(COUNT))
        expect(page.locator("#card-successful")).to_have_text(str(successful))
        expect(page.locator("#card-failures")).to_have_text(str(failures))
        expect(page.locator("#card-business_centers")).to_have_text(str(successful))
        expect(page.locator("#card-credits")).to_have_text(f"{CREDITS - successful:,}")
        expect(page.locator("#vault-page")).to_have_text(f"1\N{EN DASH}10 of {successful}")

        first_account = page.locator("#vault-table tbody tr").first
        account_id = first_account.get_attribute("data-account")
        first_account.locator("button").click()
        expect(first_account.locator("button")).to_have_text("Confirm")
        first_account.locator("button").click()
        expect(page.locator(f'tr[data-account="{account_id}"]')).to_have_count(0)
        expect(page.locator("#vault-page")).to_have_text(f"1\N{EN DASH}10 of {successful - 1}")
        expect(page.locator("#card-business_centers")).to_have_text(str(successful - 1))

        page.wait_for_timeout(1500)  # let the cards' change highlight fade before the picture
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        print(f"\nscreenshot: {SCREENSHOT}")
        browser.close()
