"""Drive a running Fitboard in headless Chromium and save the README screenshots.

    make run            # in one terminal; note the admin password it prints
    .venv/bin/python docs/screenshots.py http://127.0.0.1:8000 PASSWORD

Uses Debian's Chromium (/usr/bin/chromium); no browser is downloaded.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

OUT = Path(__file__).resolve().parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def main(base: str, password: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        # Playwright's wait_for_function compiles its predicate in the page, which the site's
        # Content-Security-Policy (no eval) forbids: this tool's page lifts it.
        page = browser.new_page(viewport={"width": 1280, "height": 860}, bypass_csp=True)
        page.goto(f"{base}/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", password)
        page.click("button[type=submit]")
        page.goto(f"{base}/experiments/new/")
        page.fill("#id_lr", "-1")
        page.click("text=Start training")
        page.screenshot(path=OUT / "form-errors.png", full_page=True)
        page.fill("#id_lr", "0.001")
        page.fill("#id_name", "digits CNN, 30 epochs")
        page.fill("#id_epochs", "30")
        page.click("text=Start training")
        page.wait_for_function("window.fitboardRun && window.fitboardRun.points > 150",
                               timeout=600_000)
        drawn_while_running = page.evaluate("window.fitboardRun")
        page.screenshot(path=OUT / "live-run.png")
        page.wait_for_function("window.fitboardRun.status === 'succeeded'", timeout=900_000)
        page.screenshot(path=OUT / "finished-run.png", full_page=True)
        with page.expect_download() as download:
            page.click("#download-best")
        saved = OUT / "downloaded.zip"
        download.value.save_as(saved)
        diagnose_and_remedy(page, base)
        page.goto(f"{base}/")
        time.sleep(0.5)
        page.screenshot(path=OUT / "run-list.png")
        browser.close()
    print(f"while running: {drawn_while_running}; checkpoint {saved.stat().st_size} bytes")
    saved.unlink()


def diagnose_and_remedy(page: Page, base: str) -> None:
    """A wide MLP on a fifth of digits overfits: its live badge, its diagnostics page, the
    first remedy's diff, and the remedied run's gap."""
    page.goto(f"{base}/experiments/new/")
    page.fill("#id_name", "wide MLP on 20% of digits")
    page.select_option("#id_arch", "mlp")
    page.fill("#id_hidden_sizes", "512, 512")
    page.fill("#id_val_fraction", "0.8")
    page.fill("#id_epochs", "40")
    page.click("text=Start training")
    page.wait_for_function("window.fitboardRun && window.fitboardRun.verdict === 'overfitting'",
                           timeout=600_000)
    page.screenshot(path=OUT / "live-verdict.png")
    page.wait_for_function("window.fitboardRun.status === 'succeeded'", timeout=900_000)
    page.click("text=Diagnostics")
    page.wait_for_selector("#diag-loss .main-svg")
    page.screenshot(path=OUT / "diagnostics.png", full_page=True)
    page.locator("text=Apply remedy").first.click()
    page.screenshot(path=OUT / "remedy.png")
    page.click("text=Queue the new run")
    page.wait_for_function("window.fitboardRun && window.fitboardRun.status === 'succeeded'",
                           timeout=900_000)
    page.click("text=Diagnostics")
    page.wait_for_selector("#diag-loss .main-svg")
    page.screenshot(path=OUT / "remedy-result.png", full_page=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
