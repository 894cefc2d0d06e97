"""What every browser test does on the Airflow UI: open a page, sign in."""

from __future__ import annotations


def visit(page, url: str) -> None:
    """Open a page of the UI (a single-page app: its own requests follow, the test waits for what it needs)."""
    page.goto(url, wait_until="domcontentloaded", timeout=60_000)


def sign_in(page, ui) -> None:
    visit(page, f"{ui.url}/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ui.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{ui.url}/")
