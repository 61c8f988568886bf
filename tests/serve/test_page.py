"""The scoring page in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium):
token once, a pasted response and an uploaded file scored with the API's answers, responses to review marked,
clear messages."""

import os
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import requests

from raykd.cli import main
from raykd.serve.config import ServeConfig
from raykd.serve.launch import build_app

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
TOKEN = "page-test-token-0123456789"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        msg = "Debian's chromium and chromium-driver are not installed (scripts/install_system_tools.sh)"
        if os.environ.get("RAYKD_REQUIRE_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # No network beyond 127.0.0.1 here: background fetches would only fail (and slow start-up).
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.downloads = downloads
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(ray_session, asap1_student, endpoint):
    """The student behind a token, at /page of the test endpoint."""
    from ray import serve

    os.environ["RAYKD_SERVE_TOKEN"] = TOKEN  # build_app reads the token's digest from the environment
    try:
        serve.run(build_app(ServeConfig(model=str(asap1_student[0]), poll_interval_s=0)), name="page",
                  route_prefix="/page")
    finally:
        del os.environ["RAYKD_SERVE_TOKEN"]
    yield f"{endpoint}/page"
    serve.delete("page")


def wait_for(driver, condition, timeout: float = 20):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def message(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "message").text


def test_page_scores_a_pasted_response_like_the_api(browser, page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(f"{page}/")
    wait_for(browser, lambda d: "access token" in message(d))  # no token yet: told plainly what to do
    browser.find_element(By.ID, "token").send_keys("not-the-token")
    browser.find_element(By.ID, "save-token").click()
    wait_for(browser, lambda d: "Wrong or missing access token" in message(d))
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "save-token").click()
    wait_for(browser, lambda d: len(Select(d.find_element(By.ID, "task")).options) == 1)
    assert "Ready" in message(browser)

    text = "You need to know how much vinegar was used and the size of the containers."
    browser.find_element(By.ID, "text").send_keys(text)
    browser.find_element(By.ID, "score").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "result").is_displayed())
    shown = {row.get_attribute("data-label"): float(row.find_elements(By.TAG_NAME, "td")[1].text)
             for row in browser.find_elements(By.CSS_SELECTOR, "#probs tbody tr")}
    api = requests.post(f"{page}/v1/score", json={"task": "asap_1", "text": text},
                        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).json()["results"][0]
    assert browser.find_element(By.ID, "prediction").text == api["prediction"]
    assert shown.keys() == api["probabilities"].keys()
    assert all(abs(shown[k] - api["probabilities"][k]) < 6e-5 for k in shown)  # the page shows 4 decimals


def test_page_marks_a_low_confidence_response_for_review(browser, page, asap1_student):
    from selenium.webdriver.common.by import By

    texts = asap1_student[1].frame.query("split == 'test'")["text"].head(40).tolist()
    api = requests.post(f"{page}/v1/score", json={"responses": [{"task": "asap_1", "text": t} for t in texts]},
                        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).json()["results"]
    unsure = next(t for t, r in zip(texts, api, strict=True) if r["needs_review"])
    sure = next(t for t, r in zip(texts, api, strict=True) if not r["needs_review"])
    browser.get(f"{page}/")
    wait_for(browser, lambda d: d.find_element(By.ID, "model").text != "")
    for text, marked in ((unsure, True), (sure, False)):
        browser.find_element(By.ID, "text").clear()
        browser.find_element(By.ID, "text").send_keys(text)
        browser.find_element(By.ID, "score").click()
        wait_for(browser, lambda d: d.find_element(By.ID, "result").is_displayed())
        assert browser.find_element(By.ID, "review").is_displayed() is marked
        assert browser.find_element(By.ID, "confidence").text.endswith("%")
        assert browser.find_element(By.ID, "score-set").text  # the student is calibrated: it has score sets


def test_page_scores_an_uploaded_file_like_predict_and_explains_a_bad_one(browser, page, asap1_student, tmp_path):
    from selenium.webdriver.common.by import By

    model_dir, ds = asap1_student
    test = ds.frame[ds.frame["split"] == "test"].head(20)
    upload = tmp_path / "class.tsv"
    pd.DataFrame({"Id": test["id"], "EssaySet": 1, "EssayText": test["text"]}).to_csv(upload, sep="\t", index=False)
    assert main(["predict", "--model", str(model_dir), "--input", str(upload), "--output",
                 str(tmp_path / "offline.csv")]) == 0
    browser.get(f"{page}/")  # the token was entered once in this tab's session
    wait_for(browser, lambda d: d.find_element(By.ID, "model").text != "")
    for old in browser.downloads.glob("*"):
        old.unlink()
    browser.find_element(By.ID, "file").send_keys(str(upload))
    browser.find_element(By.ID, "score-file").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "file-result").is_displayed())
    want = pd.read_csv(tmp_path / "offline.csv", dtype={"id": str, "prediction": str})
    assert browser.find_element(By.ID, "file-result").text.startswith(
        f"20 response(s) scored, {int(want['needs_review'].sum())} marked for review")
    downloaded = browser.downloads / "class.scored.csv"
    deadline = time.time() + 20
    while not downloaded.exists() and time.time() < deadline:
        time.sleep(0.1)
    got = pd.read_csv(downloaded, dtype={"id": str, "prediction": str})
    pd.testing.assert_frame_equal(got, want, check_exact=False, atol=1e-6)
    assert {"confidence", "score_set", "needs_review"} <= set(got.columns)

    bad = tmp_path / "notes.csv"
    shutil.copy(upload, bad)
    bad.write_text("answer\nthe vinegar\n")
    browser.find_element(By.ID, "file").clear()
    browser.find_element(By.ID, "file").send_keys(str(bad))
    browser.find_element(By.ID, "score-file").click()
    wait_for(browser, lambda d: "notes.csv" in message(d))
    assert "Error 422" in message(browser) and "expected columns" in message(browser)
