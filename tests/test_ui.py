"""The page at /ui, in a real browser: Debian's chromium, headless, driven by Selenium, against
pfd-host serving the component. A generated recording of a known condition is uploaded through
the page's file input, and the test reads what a person would see: the diagnosis text, the
bars, the timeline and the envelope spectrum's marks — each checked against the API's own
answer for the same file — the API's error messages beside the field they name, and the
browser's network log (nothing may leave the page's origin).

Screenshots of each state go to ``$PFD_TEST_OUTPUT/ui`` (default ``build/test-output/ui``).
Without chromium and chromedriver the browser tests are skipped, unless
``PFD_REQUIRE_BROWSER=1`` (CI), where that is a failure."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import generator
from conftest import ROOT, shared_server
from generator import wav_bytes

OUT = Path(os.environ.get("PFD_TEST_OUTPUT", ROOT / "build" / "test-output")) / "ui"
SEED = 20261203  # never used for training, validation, held-out or calibration
RPM, BEARING = 1770.0, "6205"
BPFO_6205 = 3.5848  # CWRU's published order (crates/pfd-signal/src/bearings.rs)


# ------------------------------------------------------------------------------------------
# served by every host (no browser needed)
# ------------------------------------------------------------------------------------------
def test_the_page_is_served_by_every_host(http):
    status, headers, html = http.request("GET", "/ui")
    assert status == 200
    headers = {k.lower(): v for k, v in headers.items()}
    assert headers["content-type"].startswith("text/html")
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
    for linked, kind in (("/ui/app.js", "text/javascript"), ("/ui/app.css", "text/css")):
        assert linked.encode() in html
        status, headers, _ = http.request("GET", linked)
        assert status == 200 and headers["content-type"].startswith(kind), (linked, headers)
    assert http.json("GET", "/")[1]["ui"] == "/ui"
    status, table = http.json("GET", "/bearings")
    assert status == 200 and BEARING in [b["name"] for b in table["bearings"]]


# ------------------------------------------------------------------------------------------
# the browser
# ------------------------------------------------------------------------------------------
def browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    if os.environ.get("PFD_REQUIRE_BROWSER") == "1":
        pytest.fail("PFD_REQUIRE_BROWSER=1 but chromium/chromedriver are missing (scripts/bootstrap.sh installs them)")
    pytest.skip("no chromium/chromedriver (apt install chromium chromium-driver)")


@pytest.fixture(scope="module")
def browser():
    chromium, driver_path = browser_paths()
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1100,2200", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-default-apps"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    OUT.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def nn():
    """The wasi-nn build under pfd-host (the suite's shared server)."""
    return shared_server("wasi-nn")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Recordings as a technician's analyser would save them."""
    d = tmp_path_factory.mktemp("recordings")
    rng = np.random.default_rng([SEED, 1])
    wear = generator.generate(6, rng, 10 * 48_000, 48_000, shaft_hz=RPM / 60, defect=("bpfo", BPFO_6205))
    noise = np.random.default_rng([SEED, 2]).normal(0, 1, 5 * 20_480)
    paths = {
        "wear": d / "pump-3-drive-end.wav",
        "noise": d / "loose-cable.wav",
        "not-wav": d / "broken.wav",
        "npy": d / "logger.npy",
    }
    paths["wear"].write_bytes(wav_bytes(wear, 48_000))
    paths["noise"].write_bytes(wav_bytes(noise, 20_480))
    paths["not-wav"].write_bytes(b"this is a text file, not RIFF audio\n" * 10)
    np.save(paths["npy"], generator.generate(0, rng, 6 * 20_480, 20_480).astype("<f4"))
    return paths


def wait(driver, condition, timeout=60):
    """Waits for `condition`; on a timeout, fails with what the page shows (status line and
    every field's error), which says why far better than a bare TimeoutException."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        return WebDriverWait(driver, timeout).until(lambda d: condition(d))
    except TimeoutException:
        shown = driver.execute_script(
            "return [document.getElementById('status').textContent,"
            " ...[...document.querySelectorAll('.field-error')].filter(e => e.textContent).map(e => e.id + ': ' + e.textContent)]")
        pytest.fail(f"the page did not get there in {timeout} s; it shows: {shown}")


def by_id(driver, name):
    return driver.find_element("id", name)


def open_page(driver, base: str):
    driver.get(base + "/ui")
    # The bearing table arrives from /bearings after load.
    wait(driver, lambda d: len(d.find_elements("css selector", "#bearing option")) > 1)


def upload(driver, path: Path, rpm: float | None = None, bearing: str | None = None):
    from selenium.webdriver.support.ui import Select
    by_id(driver, "file").send_keys(str(path))
    rpm_field = by_id(driver, "rpm")
    rpm_field.clear()
    if rpm is not None:
        rpm_field.send_keys(str(rpm))
    Select(by_id(driver, "bearing")).select_by_value(bearing or "")
    by_id(driver, "submit").click()


def shot(driver, name: str):
    driver.save_screenshot(str(OUT / f"{name}.png"))


def api_diagnosis(http, path: Path, query: str):
    return http.json("POST", f"/diagnose?{query}", headers={"Content-Type": "audio/wav"}, raw=path.read_bytes())


def test_a_recording_is_diagnosed_and_drawn(browser, nn, files):
    open_page(browser, nn.http.base)
    # The model list comes from POST /v2/repository/index.
    wait(browser, lambda d: len(d.find_elements("css selector", "#model option")) >= 3)
    models = [o.get_attribute("value") for o in browser.find_elements("css selector", "#model option")]
    assert {"bearing-lstm", "bearing-lstm-int8"} <= set(models), models
    # Every control has a label (screen readers, keyboard users).
    unlabelled = browser.execute_script(
        "return [...document.querySelectorAll('input,select')].filter(e => !e.labels.length).map(e => e.id)")
    assert unlabelled == []

    upload(browser, files["wear"], RPM, BEARING)
    wait(browser, lambda d: d.find_elements("id", "diagnosis") and by_id(d, "diagnosis").text)
    status, api = api_diagnosis(nn.http, files["wear"], f"rpm={RPM}&bearing={BEARING}&spectrum_max_hz=1")
    assert status == 200, api
    assert api["diagnosis"]["class_name"] == generator.CLASS_NAMES[6]
    assert by_id(browser, "diagnosis").text == api["diagnosis"]["class_name"]
    verdict = by_id(browser, "verdict").text
    assert f"{100 * api['diagnosis']['confidence']:.1f} %" in verdict
    assert f"of {len(api['windows'])} windows agree" in verdict
    assert "Within the calibrated conditions" in by_id(browser, "unknown").text

    # Bar chart: one bar per class, the diagnosed one marked, widths in probability order.
    bars = browser.find_elements("css selector", "#probabilities rect.bar")
    assert len(bars) == generator.NUM_CLASSES
    chosen = browser.find_elements("css selector", "#probabilities rect.bar.chosen")
    assert [b.get_attribute("data-class") for b in chosen] == [api["diagnosis"]["class_name"]]
    shown = {b.get_attribute("data-class"): float(b.get_attribute("data-probability")) for b in bars}
    assert shown == pytest.approx(api["diagnosis"]["probabilities"], abs=1e-6)

    # Timeline: one bar per window, in the window's class.
    windows = browser.find_elements("css selector", "#timeline rect.window")
    assert [int(w.get_attribute("data-class")) for w in windows] == [w["class"] for w in api["windows"]]

    # Envelope spectrum: the BPFO mark at its frequency on the drawn axis, and present.
    spectrum = by_id(browser, "spectrum")
    assert spectrum.find_elements("css selector", "path.trace")
    x0, x1, max_hz = (float(spectrum.get_attribute(a)) for a in ("data-x0", "data-x1", "data-max-hz"))
    expected = next(l for l in api["evidence"]["bearing"]["lines"] if l["name"] == "BPFO")
    assert expected["present"], expected
    assert expected["expected_hz"] == pytest.approx(BPFO_6205 * RPM / 60, rel=1e-4)
    mark = spectrum.find_element("css selector", 'g.marker[data-line="BPFO"]')
    assert "present" in mark.get_attribute("class")
    assert float(mark.get_attribute("data-hz")) == pytest.approx(expected["expected_hz"], rel=1e-9)
    line_x = float(mark.find_element("css selector", "line").get_attribute("x1"))
    assert line_x == pytest.approx(x0 + (x1 - x0) * expected["expected_hz"] / max_hz, abs=0.01)
    labels = {m.get_attribute("data-line") for m in spectrum.find_elements("css selector", "g.marker")}
    assert {"1x", "2x", "FTF", "BPFO", "BPFI", "BSF"} <= labels, labels
    assert "BPFO" in by_id(browser, "lines").text
    shot(browser, "diagnosis")


def test_an_unknown_condition_is_shown_with_its_reasons(browser, nn, files):
    open_page(browser, nn.http.base)
    upload(browser, files["noise"])
    wait(browser, lambda d: "flagged" in by_id(d, "unknown").get_attribute("class"))
    status, api = api_diagnosis(nn.http, files["noise"], "")
    assert api["unknown"]["flag"]
    text = by_id(browser, "unknown").text
    assert "Unknown condition" in text
    for reason in api["unknown"]["reasons"]:
        assert reason in text
    # Without the shaft speed there is nothing to mark, and the caption says how to get marks.
    assert not browser.find_elements("css selector", "#spectrum g.marker")
    assert "Give the shaft speed" in by_id(browser, "spectrum-caption").text
    shot(browser, "unknown")


def test_api_errors_appear_beside_the_field_they_name(browser, nn, files):
    open_page(browser, nn.http.base)
    upload(browser, files["not-wav"])
    wait(browser, lambda d: by_id(d, "file-error").text)
    status, api = nn.http.json("POST", "/diagnose?spectrum_max_hz=500", headers={"Content-Type": "audio/wav"},
                               raw=files["not-wav"].read_bytes())
    assert status in (415, 422), api
    assert by_id(browser, "file-error").text == api["error"]
    assert by_id(browser, "file").get_attribute("aria-invalid") == "true"
    shot(browser, "error")
    # A NumPy recording carries no rate: the message lands at the sample-rate field.
    open_page(browser, nn.http.base)
    upload(browser, files["npy"])
    wait(browser, lambda d: by_id(d, "sample_rate-error").text)
    status, api = nn.http.json("POST", "/diagnose", headers={"Content-Type": "application/x-npy"},
                               raw=files["npy"].read_bytes())
    assert status == 422 and by_id(browser, "sample_rate-error").text == api["error"]
    assert by_id(browser, "file-error").text == ""
    # With the rate given, the same file is diagnosed.
    by_id(browser, "sample_rate").send_keys("20480")
    by_id(browser, "submit").click()
    wait(browser, lambda d: by_id(d, "sample_rate-error").text == "" and d.find_elements("id", "diagnosis"))


def test_a_dropped_file_is_diagnosed(browser, nn, files):
    """Drag and drop: a `drop` event carrying the recording (as a browser builds one from a file
    dragged out of a file manager) onto the drop zone."""
    import base64
    open_page(browser, nn.http.base)
    browser.execute_script(
        """const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
           const dt = new DataTransfer();
           dt.items.add(new File([bytes], arguments[1], { type: "audio/wav" }));
           document.getElementById("drop").dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));""",
        base64.b64encode(files["noise"].read_bytes()).decode(), files["noise"].name)
    assert files["noise"].name in by_id(browser, "status").text
    by_id(browser, "submit").click()
    wait(browser, lambda d: d.find_elements("id", "diagnosis") and by_id(d, "diagnosis").text)
    assert "flagged" in by_id(browser, "unknown").get_attribute("class")


def test_the_form_is_usable_from_the_keyboard(browser, nn, files):
    """Tab walks the controls in reading order, and Enter in a field submits the form."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    open_page(browser, nn.http.base)
    browser.execute_script("document.activeElement.blur(); window.focus();")
    order = []
    # Key presses to the page (an element's send_keys on a file input would be a file path).
    for _ in range(12):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        order.append(browser.switch_to.active_element.get_attribute("id"))
        if order[-1] == "submit":
            break
    assert order == ["file", "sample_rate", "dtype", "column", "channel", "rpm", "bearing", "model", "key", "submit"], order
    by_id(browser, "file").send_keys(str(files["wear"]))
    by_id(browser, "rpm").send_keys(str(RPM) + Keys.ENTER)
    wait(browser, lambda d: d.find_elements("id", "diagnosis") and by_id(d, "diagnosis").text)
    assert by_id(browser, "diagnosis").text == generator.CLASS_NAMES[6]


def test_the_page_works_with_an_api_key_kept_in_the_tab_only(browser, secured, files):
    open_page(browser, secured.http.base)
    wait(browser, lambda d: "API key" in by_id(d, "model-error").text)
    upload(browser, files["wear"], RPM, BEARING)
    wait(browser, lambda d: by_id(d, "key-error").text)
    assert by_id(browser, "key-error").text == "Invalid or missing API key"
    by_id(browser, "key").send_keys("test-key-123")
    by_id(browser, "submit").click()
    wait(browser, lambda d: d.find_elements("id", "diagnosis") and by_id(d, "diagnosis").text, timeout=120)
    assert by_id(browser, "diagnosis").text == generator.CLASS_NAMES[6]
    assert by_id(browser, "key-error").text == ""
    stored = browser.execute_script("return [localStorage.length, sessionStorage.length, document.cookie]")
    assert stored == [0, 0, ""]


def test_a_phone_sized_screen_needs_no_sideways_scrolling(browser, nn, files):
    # A phone's viewport (390 CSS px, as an iPhone 12–15): headless windows cannot be narrower
    # than 500 px, so the viewport is emulated.
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 390, "height": 1800, "deviceScaleFactor": 1, "mobile": True})
    try:
        open_page(browser, nn.http.base)
        upload(browser, files["wear"], RPM, BEARING)
        wait(browser, lambda d: d.find_elements("id", "diagnosis") and by_id(d, "diagnosis").text)
        width, viewport = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert viewport == 390 and width <= viewport, (width, viewport)
        shot(browser, "phone")
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_no_request_left_the_pages_origin(browser, nn, secured):
    """Runs last in this module: the performance log holds every request of the tests above."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    origins = (nn.http.base + "/", secured.http.base + "/")
    foreign = [u for u in urls if not u.startswith(origins) and not u.startswith(("data:", "blob:", "about:"))]
    assert not foreign, foreign
    for path in ("/ui", "/ui/app.js", "/ui/app.css", "/bearings", "/v2/repository/index", "/diagnose"):
        assert any(u.split("?")[0].endswith(path) for u in urls), (path, urls)
