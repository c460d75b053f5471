"""The app as a person uses it: headless Chromium uploads, trains, watches the curve, asks a question.

Every wait is a wait for a state of the page (a text, a value, a box), never a fixed pause, with
timeouts sized for a busy 2-core machine: a handler may queue behind a preview or a training step.
Screenshots of each step land in test-artifacts/ (look at them after a layout change).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from app_server import app_url  # noqa: F401  (fixture)
from conftest import ROOT, SAMPLE_CSV

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "test-artifacts"
TRAINING_TIMEOUT_MS = 180_000
STEP_TIMEOUT_MS = 60_000  # one click's answer: the first preview imports transformers, and the machine is shared
DESKTOP = {"width": 1400, "height": 1000}
PHONE = {"width": 390, "height": 844}  # an iPhone 12-14's CSS viewport
TABS = ("1 · Data", "2 · Checks", "3 · Train", "4 · Generate", "5 · Hub", "Runs")
MESSAGE_KEPT_S = 15  # a toast is gone by then (Gradio's last ~9 s); the message line must still be there

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")
    # expect() has its own timeout (5 s by default), apart from the page's: a busy server needs more
    sync_api.expect.set_options(timeout=STEP_TIMEOUT_MS)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, url: str, viewport: dict = DESKTOP):
    """A fresh page on the app, once its opening preview of the sample is on screen."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport=viewport)
    page.set_default_timeout(STEP_TIMEOUT_MS)
    page.goto(url)
    expect(page.locator("#preview-table")).to_contain_text("What is gpt2tune?", timeout=2 * STEP_TIMEOUT_MS)
    return page


@pytest.fixture(scope="module")
def page(browser, app_url):
    page = open_page(browser, app_url)
    yield page
    page.close()


def shoot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_tab(page, name: str) -> None:
    """Click a tab; on a narrow screen Gradio moves the tabs that do not fit into a "More tabs" menu."""
    from playwright.sync_api import expect

    # .first: while Gradio redraws the tab bar, a tab's button can briefly be there twice
    tab, more = page.get_by_role("tab", name=name).first, page.get_by_role("button", name="More tabs")
    expect(tab.or_(more).first).to_be_visible()  # the tabs are drawn (a reloaded page takes a moment)
    if tab.is_visible():
        tab.click()
    else:
        more.click()
        page.locator(".overflow-dropdown button", has_text=name).click()
    expect(tab).to_have_attribute("aria-selected", "true")


def fill_number(page, label: str, value) -> None:
    fill_kept(page.get_by_label(label, exact=True), str(value))


def fill_kept(box, value: str) -> None:
    """Type `value` into `box` so that it stays. A box in an accordion just opened can be drawn again as
    it settles, back to its default (the text typed before is gone, and an Enter then sends the
    default): typed again until it keeps the value."""
    from playwright.sync_api import expect

    for _ in range(5):
        box.fill(value)
        box.press("Tab")  # Gradio takes the value when the box loses focus
        try:
            expect(box).to_have_value(value, timeout=5_000)
            return
        except AssertionError:
            continue
    expect(box).to_have_value(value)


def upload(page, path: Path) -> None:
    from playwright.sync_api import expect

    page.locator("#data-file").get_by_role("button", name="Clear").click()
    expect(page.locator("#data-file input[type=file]")).to_be_attached()
    page.locator("#data-file input[type=file]").set_input_files(str(path))


def test_upload_preview_train_and_generate(page):
    from playwright.sync_api import expect

    # --- Data: replace the preloaded sample by an upload of the same file
    table = page.locator("#preview-table")
    page.locator("#data-file").get_by_role("button", name="Clear").click()
    expect(table).not_to_contain_text("What is gpt2tune?")
    page.locator("#data-file input[type=file]").set_input_files(str(SAMPLE_CSV))
    expect(table).to_contain_text("What is gpt2tune?")
    expect(page.locator(".stat-grid")).to_contain_text("Rows kept")
    shoot(page, "1-data")

    # --- Train: a short run; the curve must get points while it runs
    open_tab(page, "3 · Train")
    page.get_by_label("Run name").fill("browser-run")
    fill_number(page, "Max steps (0 = use epochs)", 8)
    fill_number(page, "Learning rate", 0.002)
    fill_number(page, "Batch size", 4)
    page.get_by_text("Watch it learn").click()
    fill_number(page, "Eval every N steps", 4)
    fill_number(page, "Log every N steps", 1)
    fill_kept(page.get_by_label("Probe questions (one per line)"), "What is gpt2tune?")  # in an accordion
    page.get_by_text("Checkpoints and evaluation").click()
    fill_number(page, "Eval answer samples", 0)
    page.locator("#start-button").click()
    status = page.locator("#train-status")
    expect(status).to_contain_text("browser-run")
    expect(status).to_contain_text(re.compile(r"step \d+ / 8"), timeout=TRAINING_TIMEOUT_MS)  # first loss logged

    # --- the run belongs to the server: a reloaded page picks it up and follows it to the end
    page.reload()
    open_tab(page, "3 · Train")
    expect(status).to_contain_text("browser-run")
    expect(status).to_contain_text("Finished", timeout=TRAINING_TIMEOUT_MS)
    # the curve is drawn: a line mark whose path visits several points
    line = page.locator("#loss-plot g.mark-line path").first
    expect(line).to_have_attribute("d", re.compile(r"(L[^L]*){3,}"))
    expect(page.locator("#loss-plot")).to_contain_text("eval")  # the eval curve has its legend entry
    expect(page.locator(".stat-grid").filter(has_text="Train loss")).to_be_visible()
    expect(page.locator("#probe-timeline")).to_contain_text("What is gpt2tune?")
    shoot(page, "2-train")

    # --- Generate: the answer streams into the box
    open_tab(page, "4 · Generate")
    page.locator("#question textarea").fill("What is gpt2tune?")
    page.locator("#generate-button").click()
    answer = page.locator("#answer textarea")
    expect(answer).not_to_have_value("")
    shoot(page, "3-generate")


def test_a_reloaded_page_shows_the_runs_own_settings(page, tmp_path):
    """Upload a file with other column names, train with non-default settings, reload mid-run: the
    page shows that run with its settings (not the form's defaults), an empty Run name for the next
    run, and Stop still reaches it; Resume with other max steps shows those in the form."""
    from playwright.sync_api import expect

    data = tmp_path / "faq.csv"
    lines = SAMPLE_CSV.read_text(encoding="utf-8").splitlines()
    data.write_text("\n".join(["prompt,response", *lines[1:]]) + "\n", encoding="utf-8")
    page.reload()
    expect(page.locator("#preview-table")).to_contain_text("What is gpt2tune?", timeout=2 * STEP_TIMEOUT_MS)
    upload(page, data)
    expect(page.get_by_label("Question column")).to_have_value("prompt")
    expect(page.locator("#mapping-note")).to_contain_text("question ← prompt")
    expect(page.locator("#preview-table")).to_contain_text("What is gpt2tune?")

    open_tab(page, "3 · Train")
    page.get_by_label("Run name").fill("browser-faq")
    fill_number(page, "Max steps (0 = use epochs)", 400)
    fill_number(page, "Learning rate", 0.003)
    fill_number(page, "Batch size", 2)
    page.get_by_text("Watch it learn").click()
    fill_number(page, "Log every N steps", 1)
    page.locator("#start-button").click()
    status = page.locator("#train-status")
    expect(status).to_contain_text(re.compile(r"step \d+ / 400"), timeout=TRAINING_TIMEOUT_MS)

    page.reload()
    open_tab(page, "3 · Train")
    expect(status).to_contain_text("browser-faq")
    expect(page.get_by_label("Max steps (0 = use epochs)")).to_have_value("400")
    expect(page.get_by_label("Learning rate")).to_have_value("0.003")
    expect(page.get_by_label("Batch size")).to_have_value("2")
    expect(page.get_by_label("Run name")).to_have_value("")  # Start makes a new run, named automatically
    expect(page.locator("#run-summary")).to_contain_text("faq.csv")
    expect(page.locator("#run-summary")).to_contain_text("question ← prompt")
    shoot(page, "4-reloaded-run")
    page.locator("#stop-button").click()
    expect(status).to_contain_text("Stopped", timeout=TRAINING_TIMEOUT_MS)
    expect(status).to_contain_text("Resume continues from step")

    # Resume with other max steps: the form keeps them (what the resume trains with)
    fill_number(page, "Max steps (0 = use epochs)", 130)
    page.locator("#resume-button").click()
    expect(status).to_contain_text(re.compile(r"/ 130"), timeout=TRAINING_TIMEOUT_MS)
    expect(page.get_by_label("Max steps (0 = use epochs)")).to_have_value("130")
    page.locator("#stop-button").click()
    expect(status).to_contain_text("Stopped", timeout=TRAINING_TIMEOUT_MS)
    expect(page.get_by_label("Max steps (0 = use epochs)")).to_have_value("130")
    expect(page.locator("#run-summary")).to_contain_text("Resumed")


def test_a_failure_stays_under_its_control_and_the_preview_stays(page, tmp_path):
    """A bad Hub dataset id: the line under the file box says what is wrong long after a toast would
    have gone, the preview of the last good file stays, and the next good file clears the line."""
    from playwright.sync_api import expect

    open_tab(page, "1 · Data")
    table, message = page.locator("#preview-table"), page.locator("#data-message")
    expect(table).to_contain_text("What is gpt2tune?")
    page.get_by_text("…or a dataset from the Hugging Face Hub").click()
    dataset = page.locator("#hub-dataset").locator("input, textarea")
    fill_kept(dataset, "nobody/no-such-dataset")  # the accordion has just opened
    dataset.press("Enter")
    expect(message).to_contain_text("could not load dataset 'nobody/no-such-dataset'")
    shown = time.monotonic()
    # still there 15 s later (polled: the line must not go away in between either)
    while time.monotonic() - shown < MESSAGE_KEPT_S:
        expect(message).to_contain_text("could not load dataset", timeout=1_000)
        page.wait_for_timeout(1_000)
    expect(table).to_contain_text("What is gpt2tune?")  # the last good preview, no "Error" badge over it
    expect(page.locator("#preview-table .error")).to_have_count(0)
    shoot(page, "5-data-message")

    empty = tmp_path / "empty.csv"
    empty.write_text("question,answer\n", encoding="utf-8")
    dataset.fill("")
    upload(page, empty)
    expect(message).to_contain_text("header row but no data rows")
    upload(page, SAMPLE_CSV)
    expect(table).to_contain_text("What is gpt2tune?")
    expect(message).to_have_text("")  # cleared by the next success


def test_columns_with_other_names_are_guessed_explained_and_previewed(page, tmp_path):
    """`Frage`/`Antwort`: both columns chosen at once (nothing named like a question), why, and a preview."""
    from playwright.sync_api import expect

    data = tmp_path / "fragen.csv"
    data.write_text("Frage,Antwort\nWas ist das?,Ein Test.\nWie geht es?,Gut.\n", encoding="utf-8")
    open_tab(page, "1 · Data")
    upload(page, data)
    expect(page.get_by_label("Question column")).to_have_value("Frage")
    expect(page.get_by_label("Answer column")).to_have_value("Antwort")
    expect(page.locator("#mapping-note")).to_contain_text("the first column")
    expect(page.locator("#preview-table")).to_contain_text("Was ist das?")
    expect(page.locator("#data-message")).to_have_text("")


def test_the_preview_follows_the_base_model_named_on_the_checks_tab(page, tmp_path):
    """A model with a 128-token context named on the Checks tab: the Data tab measures against it."""
    from playwright.sync_api import expect
    from transformers import GPT2Config, GPT2LMHeadModel

    from gpt2tune.model import load_tokenizer
    from gpt2tune.paths import TOKENIZER_DIR, work_dir

    tokenizer = load_tokenizer(str(TOKENIZER_DIR))
    short = work_dir() / "models" / "short-context-browser"  # the app loads folders inside its working folder
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=1,
                               n_head=2)).save_pretrained(short)
    tokenizer.save_pretrained(short)
    data = tmp_path / "long.csv"
    data.write_text("question,answer\n" + "".join(f"Question {i}?,{' '.join(['word'] * 150)} {i}\n"
                                                    for i in range(20)), encoding="utf-8")
    open_tab(page, "1 · Data")
    upload(page, data)
    expect(page.locator("#preview-table")).to_contain_text("Question 0?")
    expect(page.locator("#data-summary")).not_to_contain_text("max_length 128")
    open_tab(page, "2 · Checks")
    box = page.locator("#base-model").get_by_role("textbox")
    default = box.input_value()
    try:
        box.fill(str(short))
        box.press("Enter")
        open_tab(page, "1 · Data")
        expect(page.locator("#data-summary")).to_contain_text("max_length 128")
        shoot(page, "7-preview-short-context")
    finally:
        open_tab(page, "2 · Checks")
        box.fill(default)
        box.press("Enter")
    open_tab(page, "1 · Data")
    expect(page.locator("#data-summary")).not_to_contain_text("max_length 128")


def test_every_tab_opens_once_and_the_runs_plot_draws_the_runs_chosen(page):
    """Opening each tab leaves the tab bar as it was (no tab drawn twice, none hidden by another), and
    the Runs tab's plot draws every chosen run in a colour of its own, its legend naming exactly them,
    as runs are taken out of the selection and put back."""
    from playwright.sync_api import expect

    for name in TABS:
        open_tab(page, name)
        expect(page.get_by_role("tab")).to_have_text(list(TABS))
    page.get_by_label("train", exact=True).check()  # both runs of this module have train losses
    runs = page.get_by_label("Runs to plot")
    expect(runs).to_be_visible()
    drawn = "browser-faq", "browser-run"
    wait_for_runs_drawn(page, drawn)
    page.locator(".token", has_text="browser-run").locator(".token-remove").click()
    wait_for_runs_drawn(page, ["browser-faq"])
    runs.click()
    page.get_by_role("option", name="browser-run").click()
    wait_for_runs_drawn(page, drawn)
    shoot(page, "8-runs")


def wait_for_runs_drawn(page, names) -> None:
    """Until the Runs plot's legend names exactly `names` and as many lines have a colour of their own."""
    expect_state(page, """(names) => {
        const plot = document.querySelector('#runs-curves');
        const legend = [...plot.querySelectorAll('.role-legend-label text')].map(t => t.textContent).sort();
        const colours = new Set([...plot.querySelectorAll('g.mark-line path')]
            .map(path => getComputedStyle(path).stroke).filter(colour => colour && colour !== 'none'));
        return {ok: JSON.stringify(legend) === JSON.stringify([...names].sort()) && colours.size === names.length,
                legend, colours: [...colours]};
    }""", list(names))


def test_a_run_shown_after_one_without_evaluations_draws_its_eval_curve(page, tiny_model_dir):
    """The Train tab's plot keeps the curves of its first drawing: after a run that never evaluated,
    a run with eval losses still gets its eval curve drawn in its colour."""
    from conftest import tiny_config

    from gpt2tune.runs.store import run_dir
    from gpt2tune.training.train import train

    train(tiny_config(tiny_model_dir, run_dir("browser-no-eval"), max_steps=4, eval_fraction=0.0,
                      eval_answer_samples=0))
    open_tab(page, "3 · Train")
    page.get_by_role("button", name="↻").click()  # the run list, with the run just trained
    for run, lines in (("browser-no-eval", 1), ("browser-run", 2)):
        page.locator("#run-picker input").click()
        page.get_by_role("option", name=run).click()
        expect_state(page, """([run, lines]) => {
            const status = document.querySelector('#train-status').textContent;
            const plot = document.querySelector('#loss-plot');
            const legend = [...plot.querySelectorAll('.role-legend-label text')].map(t => t.textContent);
            const drawn = [...plot.querySelectorAll('g.mark-line path')].filter(path =>
                getComputedStyle(path).stroke !== 'none' && (path.getAttribute('d') || '').includes('L'));
            return {ok: status.includes(run) && legend.join() === 'train,eval' && drawn.length === lines,
                    status: status.slice(0, 120), legend, drawn: drawn.length};
        }""", [run, lines])


def expect_state(page, check: str, arg) -> None:
    """Wait until the page's `check(arg)` returns {ok: true, ...}; else fail showing what it returned last."""
    try:
        page.wait_for_function(f"(arg) => ({check})(arg).ok", arg=arg)
    except Exception as timeout:  # noqa: BLE001  (Playwright's TimeoutError)
        raise AssertionError(f"the page never reached the state: {page.evaluate(check, arg)}") from timeout


def test_a_phone_shows_start_and_the_status_in_the_first_screen(browser, app_url):
    from playwright.sync_api import expect

    phone = open_page(browser, app_url, PHONE)
    try:
        open_tab(phone, "3 · Train")
        for control in ("#start-button", "#resume-button", "#train-status"):
            box = phone.locator(control)
            expect(box).to_be_visible()
            assert box.bounding_box()["y"] + box.bounding_box()["height"] <= PHONE["height"], control
        settings = phone.locator("#train-settings").bounding_box()
        assert settings["y"] > phone.locator("#train-status").bounding_box()["y"]  # the settings come after
        shoot(phone, "6-phone-train")
    finally:
        phone.close()
