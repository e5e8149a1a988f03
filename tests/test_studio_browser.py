"""`dub studio` in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven with
selenium opens the page, loads the sample, edits a prompt, re-renders, and saves a screenshot.

Where no browser is installed the test skips with the reason, except on CI, which installs one
(.ci/run) and so must never skip it. DUB_STUDIO_SCREENSHOT=PATH also saves the screenshot there.
"""
from __future__ import annotations

import os
import shutil
import time

import pytest

from studio_harness import SAMPLE, start_studio

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[ml,test]')")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run")
WAIT_S = 60.0
NEW_CAPTION = "The cat sneaks past the sleeping dog"
NEW_PROMPT = "A cat slips on a banana peel and lands in a tower of pots."


def _browser_paths() -> tuple[str, str]:
    browser = next((p for n in ("chromium", "chromium-browser") if (p := shutil.which(n))), None)
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    reason = ("no headless browser here: install Debian's chromium and chromium-driver "
              "(apt-get install chromium chromium-driver)")
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser test, but {reason}")
    pytest.skip(reason)


@pytest.fixture()
def page(tmp_path):
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = _browser_paths()
    server = start_studio(tmp_path / "studio")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_argument("--window-size=1400,2400")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver, server
    finally:
        driver.quit()
        server.stop()


def _wait(what: str, condition, timeout_s: float = WAIT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"the page never showed {what} within {timeout_s:.0f} s")


def _status(driver) -> str:
    return driver.find_element(By.ID, "status").text


def _dub_source(driver) -> str | None:
    players = driver.find_elements(By.CSS_SELECTOR, "#dub video")
    try:
        return players[0].get_attribute("src") if players else None
    except StaleElementReferenceException:   # the player was being replaced: asked again
        return None


def test_the_page_opens_edits_and_rerenders_the_sample(page, tmp_path):
    driver, server = page
    started = time.perf_counter()
    driver.get(server.url)
    upload = _wait("the upload field", lambda: driver.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))
    print(f"first page load: {time.perf_counter() - started:.2f} s until the page is usable")

    path_box = driver.find_element(By.CSS_SELECTOR, "#path textarea")
    path_box.send_keys(str(SAMPLE))   # outside --root
    driver.find_element(By.ID, "open-path").click()
    toast = _wait("the refusal", lambda: [t for t in driver.find_elements(By.CSS_SELECTOR, '[data-testid="toast-body"]')
                                         if "outside" in t.text])
    assert f"{SAMPLE} is outside the studio's folder {server.root}; choose a video inside it." in toast[0].text
    assert "No video open." in _status(driver)
    toast[0].find_element(By.CSS_SELECTOR, "button").click()   # dismiss it: it stays until closed
    path_box.send_keys(Keys.CONTROL, "a", Keys.DELETE)

    upload[0].send_keys(str(SAMPLE))
    _wait("the opened video", lambda: "Opened" in _status(driver))
    rows = driver.find_elements(By.CSS_SELECTOR, "#shots [role=row][data-index]")
    pictures = driver.find_elements(By.CSS_SELECTOR, "#shots [role=row][data-index] img")
    assert len(rows) == 5 and len(pictures) == 5                      # one row per shot, each with its picture
    assert all(driver.execute_script("return arguments[0].naturalWidth", p) > 0 for p in pictures)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#strip img")) == 5

    driver.find_element(By.ID, "render").click()
    first = _wait("the first take in the dub player", lambda: "Take 001" in _status(driver) and _dub_source(driver))

    def edit(cell_id: str, text: str) -> None:
        cell = driver.find_element(By.CSS_SELECTOR, f'#shots [data-testid="{cell_id}"]')
        ActionChains(driver).double_click(cell).perform()
        editor = _wait("the cell editor",
                       lambda: driver.find_elements(By.CSS_SELECTOR, "#shots textarea[aria-label='Edit cell']"))
        editor[0].send_keys(Keys.CONTROL, "a")
        editor[0].send_keys(text, Keys.ENTER)
        _wait("the edited cell", lambda: text in driver.find_element(
            By.CSS_SELECTOR, f'#shots [data-testid="{cell_id}"]').text)

    # The score engine, the backend here, reads no per-shot prompt: the page says so, and a
    # prompt edit alone renders nothing.
    assert "read by AudioStory only" in driver.find_element(By.ID, "edits-note").text
    edit("cell-2-5", NEW_PROMPT)
    driver.find_element(By.ID, "render").click()
    _wait("that nothing was rendered", lambda: "Nothing rendered" in _status(driver))
    assert _dub_source(driver) == first
    edit("cell-2-4", NEW_CAPTION)   # a caption is the take's subtitle: a change of the take
    driver.find_element(By.ID, "render").click()
    second = _wait("the second take in the dub player", lambda: "Take 002" in _status(driver) and _dub_source(driver))

    assert second != first and "take-002" in second
    assert "5 shots played again from the cached analysis" in _status(driver)
    assert "Not used in this take: shot 3's prompt." in _status(driver)
    _wait("the spectrogram", lambda: driver.find_elements(By.CSS_SELECTOR, "#spectrogram img"))
    # The downloads are a take's files: the list offers no button that removes one.
    assert len(driver.find_elements(By.CSS_SELECTOR, "#downloads tr.file")) > 1
    assert not [b for b in driver.find_elements(By.CSS_SELECTOR, '#downloads button[aria-label="Remove this file"]')
                if b.is_displayed()]

    driver.execute_script("window.scrollTo(0, 0)")
    shot = tmp_path / "studio.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("DUB_STUDIO_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["DUB_STUDIO_SCREENSHOT"])

    # A mistake is a notice: the table, the players, the spectrogram and the downloads stay usable.
    edit("cell-0-7", "abc")
    driver.find_element(By.ID, "render").click()
    _wait("the refusal of the seed", lambda: _toasts(driver, "is not a whole number"))
    time.sleep(1.0)   # time for any error panel to be drawn
    assert not _error_panels(driver)
    assert "Take 002" in _status(driver) and _dub_source(driver) == second
    assert len(driver.find_elements(By.CSS_SELECTOR, "#shots [role=row][data-index]")) == 5
    assert driver.find_elements(By.CSS_SELECTOR, "#spectrogram img") and _download_names(driver)

    # A reload alone shows the project the page had open: its edits and its takes.
    driver.refresh()
    _wait("the project after the reload", lambda: driver.find_elements(By.ID, "status")
          and "Reopened" in _status(driver) and _dub_source(driver))
    assert NEW_CAPTION in driver.find_element(By.CSS_SELECTOR, '#shots [data-testid="cell-2-4"]').text
    assert NEW_PROMPT in driver.find_element(By.CSS_SELECTOR, '#shots [data-testid="cell-2-5"]').text
    assert "take-002" in _dub_source(driver) and all(".take-002." in n for n in _download_names(driver))
    # An earlier take plays and downloads from the takes menu.
    driver.find_element(By.CSS_SELECTOR, "#takes input").click()
    option = _wait("the takes menu", lambda: [o for o in driver.find_elements(By.CSS_SELECTOR, "#takes li")
                                              if "Take 001" in o.text])
    option[0].click()
    _wait("take 001 in the player", lambda: "take-001" in (_dub_source(driver) or ""))
    _wait("take 001's downloads", lambda: _download_names(driver) and all(".take-001." in n
                                                                          for n in _download_names(driver)))
    assert not _error_panels(driver)


def _toasts(driver, text: str) -> list:
    return [t for t in driver.find_elements(By.CSS_SELECTOR, '[data-testid="toast-body"]') if text in t.text]


def _error_panels(driver) -> list:
    return [e.find_element(By.XPATH, "./ancestor::*[@id][1]").get_attribute("id")
            for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="status-tracker"] .error') if e.is_displayed()]


def _download_names(driver) -> list[str]:
    return [a.get_attribute("download") or a.text for a in driver.find_elements(By.CSS_SELECTOR, "#downloads a")]
