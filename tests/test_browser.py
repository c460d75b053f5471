"""The app as a person uses it: headless Chromium uploads, trains, watches the curve, asks a question.

Screenshots of each step land in test-artifacts/ (look at them after a layout change).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from app_server import app_url  # noqa: F401  (fixture)
from conftest import ROOT, SAMPLE_CSV

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "test-artifacts"
TRAINING_TIMEOUT_MS = 150_000
STEP_TIMEOUT_MS = 60_000  # generous: the first preview imports transformers, and CI machines are busy

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def page(app_url):
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")
    sync_playwright = sync_api.sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(STEP_TIMEOUT_MS)
        page.goto(app_url)
        yield page
        browser.close()


def shoot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def fill_number(page, label: str, value) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")  # Gradio takes the value when the box loses focus


@pytest.mark.slow
def test_upload_preview_train_and_generate(page):
    from playwright.sync_api import expect

    # --- Data: replace the preloaded sample by an upload of the same file
    table = page.locator("#preview-table")
    expect(table).to_contain_text("What is gpt2tune?", timeout=2 * STEP_TIMEOUT_MS)  # the page-load preview
    page.locator("#data-file").get_by_role("button", name="Clear").click()
    expect(table).not_to_contain_text("What is gpt2tune?")
    page.locator("#data-file input[type=file]").set_input_files(str(SAMPLE_CSV))
    expect(table).to_contain_text("What is gpt2tune?")
    expect(page.locator(".stat-grid")).to_contain_text("Rows kept")
    shoot(page, "1-data")

    # --- Train: a short run; the curve must get points while it runs
    page.get_by_role("tab", name="3 · Train").click()
    page.get_by_label("Run name").fill("browser-run")
    fill_number(page, "Max steps (0 = use epochs)", 8)
    fill_number(page, "Learning rate", 0.002)
    fill_number(page, "Batch size", 4)
    fill_number(page, "Eval every N steps", 4)
    fill_number(page, "Log every N steps", 1)
    page.get_by_label("Probe questions (one per line)").fill("What is gpt2tune?")
    page.get_by_text("Checkpoints and evaluation").click()
    fill_number(page, "Eval answer samples", 0)
    page.locator("#start-button").click()
    status = page.locator("#train-status")
    expect(status).to_contain_text("browser-run")
    expect(status).to_contain_text(re.compile(r"step \d+ / 8"), timeout=TRAINING_TIMEOUT_MS)  # first loss logged

    # --- the run belongs to the server: a reloaded page picks it up and follows it to the end
    page.reload()
    page.get_by_role("tab", name="3 · Train").click()
    expect(status).to_contain_text("browser-run")
    expect(status).to_contain_text("Finished", timeout=TRAINING_TIMEOUT_MS)
    # the curve is drawn: a line mark whose path visits several points
    line = page.locator("#loss-plot g.mark-line path").first
    expect(line).to_be_visible()
    assert line.get_attribute("d").count("L") >= 3
    expect(page.locator("#loss-plot")).to_contain_text("eval")  # the eval curve has its legend entry
    expect(page.locator(".stat-grid").filter(has_text="Train loss")).to_be_visible()
    expect(page.locator("#probe-timeline")).to_contain_text("What is gpt2tune?")
    shoot(page, "2-train")

    # --- Generate: the answer streams into the box
    page.get_by_role("tab", name="4 · Generate").click()
    page.locator("#question textarea").fill("What is gpt2tune?")
    page.locator("#generate-button").click()
    answer = page.locator("#answer textarea")
    expect(answer).not_to_have_value("")
    shoot(page, "3-generate")


@pytest.mark.slow
def test_a_reloaded_page_shows_the_runs_own_settings(page, tmp_path):
    """Upload a file with other column names, train with non-default settings, reload mid-run: the
    page shows that run with its settings (not the form's defaults), and Stop still reaches it."""
    from playwright.sync_api import expect

    data = tmp_path / "faq.csv"
    lines = SAMPLE_CSV.read_text(encoding="utf-8").splitlines()
    data.write_text("\n".join(["prompt,response", *lines[1:]]) + "\n", encoding="utf-8")
    page.reload()
    expect(page.locator("#preview-table")).to_contain_text("What is gpt2tune?", timeout=2 * STEP_TIMEOUT_MS)
    page.locator("#data-file").get_by_role("button", name="Clear").click()
    page.locator("#data-file input[type=file]").set_input_files(str(data))
    expect(page.locator("#preview-table")).to_contain_text("What is gpt2tune?")
    expect(page.get_by_label("Question column")).to_have_value("prompt")

    page.get_by_role("tab", name="3 · Train").click()
    page.get_by_label("Run name").fill("browser-faq")
    fill_number(page, "Max steps (0 = use epochs)", 400)
    fill_number(page, "Learning rate", 0.003)
    fill_number(page, "Batch size", 2)
    fill_number(page, "Log every N steps", 1)
    page.locator("#start-button").click()
    status = page.locator("#train-status")
    expect(status).to_contain_text(re.compile(r"step \d+ / 400"), timeout=TRAINING_TIMEOUT_MS)

    page.reload()
    page.get_by_role("tab", name="3 · Train").click()
    expect(status).to_contain_text("browser-faq")
    expect(page.get_by_label("Run name")).to_have_value("browser-faq")
    expect(page.get_by_label("Max steps (0 = use epochs)")).to_have_value("400")
    expect(page.get_by_label("Learning rate")).to_have_value("0.003")
    expect(page.get_by_label("Batch size")).to_have_value("2")
    expect(page.locator("#run-summary")).to_contain_text("faq.csv")
    expect(page.locator("#run-summary")).to_contain_text("question ← prompt")
    shoot(page, "4-reloaded-run")
    page.locator("#stop-button").click()
    expect(status).to_contain_text("Stopped", timeout=TRAINING_TIMEOUT_MS)
    expect(status).to_contain_text("Resume continues from step")
