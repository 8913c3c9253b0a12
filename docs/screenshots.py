"""Drive a running Fitboard in headless Chromium and save the README screenshots.

    make run            # in one terminal; note the admin password it prints
    .venv/bin/python docs/screenshots.py http://127.0.0.1:8000 PASSWORD

Uses Debian's Chromium (/usr/bin/chromium); no browser is downloaded.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def main(base: str, password: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
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
                               timeout=120_000)
        drawn_while_running = page.evaluate("window.fitboardRun")
        page.screenshot(path=OUT / "live-run.png")
        page.wait_for_function("window.fitboardRun.status === 'succeeded'", timeout=300_000)
        page.screenshot(path=OUT / "finished-run.png", full_page=True)
        with page.expect_download() as download:
            page.click("#download-best")
        saved = OUT / "downloaded.zip"
        download.value.save_as(saved)
        page.goto(f"{base}/")
        time.sleep(0.5)
        page.screenshot(path=OUT / "run-list.png")
        browser.close()
    print(f"while running: {drawn_while_running}; checkpoint {saved.stat().st_size} bytes")
    saved.unlink()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
