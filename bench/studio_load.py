"""Benchmark of `dub studio`: how long until it answers, and how long the first page load takes.

    python bench/studio_load.py              # 5 starts, each with a fresh server and a fresh browser profile

Each round starts the real server (`python -m dubber.cli studio`) on a free port with an empty work
folder, then measures:
  start:  from launching the process to the first HTTP 200 on /
  page:   from asking headless Chromium for the page to the app being usable (its upload field drawn)
  edit:   the sample opened, one prompt edited and re-rendered through the page (the cache makes the
          other shots free), from the Render click to the new take in the dub player
Target: first page load under 3 s. Needs Debian's chromium and chromium-driver. Not a test.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

PAGE_TARGET_S = 3.0


def _driver(profile: Path):
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,2400"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=options)


def _until(condition, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.02)
    raise TimeoutError("the page did not get there in time")


def one_round(base: Path) -> dict[str, float]:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from studio_harness import SAMPLE, start_studio

    t0 = time.perf_counter()
    server = start_studio(base)
    start_s = time.perf_counter() - t0
    driver = _driver(base / "profile")
    try:
        t0 = time.perf_counter()
        driver.get(server.url)
        upload = _until(lambda: driver.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))
        page_s = time.perf_counter() - t0
        upload[0].send_keys(str(SAMPLE))
        status = lambda: driver.find_element(By.ID, "status").text  # noqa: E731
        _until(lambda: "Opened" in status())
        driver.find_element(By.ID, "render").click()
        _until(lambda: "Take 001" in status())
        cell = driver.find_element(By.CSS_SELECTOR, '#shots [data-testid="cell-2-5"]')
        ActionChains(driver).double_click(cell).perform()
        editor = _until(lambda: driver.find_elements(By.CSS_SELECTOR, "#shots textarea[aria-label='Edit cell']"))
        editor[0].send_keys(Keys.CONTROL, "a")
        editor[0].send_keys("A door slams and a cat yowls.", Keys.ENTER)
        t0 = time.perf_counter()
        driver.find_element(By.ID, "render").click()
        _until(lambda: "Take 002" in status())
        edit_s = time.perf_counter() - t0
    finally:
        driver.quit()
        server.stop()
    return {"start": start_s, "page": page_s, "edit": edit_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rounds = []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="dub-studio-bench-") as tmp:
            rounds.append(one_round(Path(tmp)))
        print(f"round {i + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in rounds[-1].items()), flush=True)
    for key in ("start", "page", "edit"):
        values = [r[key] for r in rounds]
        print(f"{key:<6} median {statistics.median(values):.2f} s, worst {max(values):.2f} s")
    worst_page = max(r["page"] for r in rounds)
    print(f"first page load target {PAGE_TARGET_S:.0f} s: {'met' if worst_page < PAGE_TARGET_S else 'MISSED'} "
          f"(worst {worst_page:.2f} s = {worst_page / PAGE_TARGET_S:.2f} x target)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
