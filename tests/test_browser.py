"""The built documentation site as a user sees it, in headless Chromium.

The site (the session fixture ``built_site``) is served by a plain static server
(``http.server`` in a thread, on a free port) and also opened from the file system. On the
home page, an API page, the LSTM's page and a tutorial page the test checks that the equations
rendered (every maths element was typeset, none shows MathJax's error, no raw ``\\(``, ``\\[``,
``$$`` or ``$...$`` is left in the visible text, and the LSTM's page and the tutorial hold
equations), that the images loaded, that nothing came from another host (the site works
offline) and that the browser logged no error; it types ``SimpleRNN`` into the search box and
expects a result linking to the API page. From the file system the same pages pass the same
checks, every link of the home page opens a file, and the search finds ``SimpleRNN`` too. Full-page screenshots go to
``build/screenshots/``.

The browser is Debian's ``chromium`` with its ``chromium-driver`` (the same build, so the
driver always matches), driven by Selenium through that driver: nothing is downloaded from a
browser vendor. When they are missing the ``chromium`` fixture installs them with apt-get,
which needs root and Debian's package servers; where it cannot, the tests are skipped with the
reason, or fail when ``NUMPY_RNN_REQUIRE_BROWSER=1``.
"""
from __future__ import annotations

import base64
import functools
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
APT_PACKAGES = ("chromium", "chromium-driver")
APT_TIMEOUT_S = 300
#: the pages opened, by the name their screenshot takes
PAGES = {"home": "index.html", "api_layers": "api/layers.html", "layer_lstm": "layers/lstm.html",
         "tutorial": "tutorials/01_course_rnn.html"}
#: pages that must hold typeset equations (a layer page's equations sit next to their derivatives)
MATHS_PAGES = ("layer_lstm", "tutorial")
WAIT_S = 30
#: headless, as root, and quiet on a machine without a network: no sync, updates or QUIC probes
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
                  "--window-size=1280,900")
#: typeset maths, as MathJax 2 (SVG or CommonHTML output) or MathJax 3 leaves it
RENDERED_MATHS = ".MathJax_SVG, .MathJax_SVG_Display, .MathJax_CHTML, .MathJax, mjx-container"
#: what MathJax shows in place of maths it could not typeset (a missing part of MathJax, bad TeX)
MATHS_ERRORS = ".MathJax_Error, merror, mjx-merror, [data-mjx-error]"
#: maths written for the browser to typeset: arithmatex's elements (pages and docstrings)
MATHS_SOURCE = ".arithmatex"
#: TeX a reader should never see: \( \) \[ \] $$ and $...$ around something that is not a space
RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\$[^\s$][^$\n]{0,200}\$|\\begin\{")
#: console errors that are no fault of the site: MathJax 2's HTML-CSS output declares a font at about:blank
#: (@font-face MathJax_Blank, its measuring font), which Chromium reports as a blocked load
HARMLESS_CONSOLE_ERRORS = re.compile(r"^about:blank - |Access to font at 'about:blank'")
#: the page's state, read in the browser (the prose is the text outside code, scripts and typeset maths)
PAGE_STATE = f"""
const prose = document.body.cloneNode(true);
prose.querySelectorAll('pre, code, script, style, textarea, svg, {RENDERED_MATHS}').forEach(e => e.remove());
const mathjax = window.MathJax;
return {{
  // MathJax 2 loading or typesetting (its configuration object is there before MathJax.js)
  typesetting: !!mathjax && (!mathjax.isReady || !!(mathjax.Hub && (mathjax.Hub.queue.pending || mathjax.Hub.queue.running))),
  title: document.title,
  prose: prose.textContent,
  rendered: document.querySelectorAll('{RENDERED_MATHS}').length,
  maths_errors: [...document.querySelectorAll('{MATHS_ERRORS}')].map(e => e.textContent.slice(0, 80))
      .concat(document.body.innerText.includes('Math Processing Error') ? ['[Math Processing Error]'] : []),
  untypeset: [...document.querySelectorAll('{MATHS_SOURCE}')]
      .filter(e => !e.querySelector('{RENDERED_MATHS}')).map(e => e.textContent.slice(0, 80)),
  broken_images: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src),
  resources: performance.getEntriesByType('resource').map(e => e.name),
  outputs: document.querySelectorAll('.jp-OutputArea-output').length,
}};
"""


@dataclass(frozen=True)
class Chromium:
    browser: Path
    driver: Path


def _unavailable(reason: str):
    """Skip with ``reason``, or fail where the browser test is required (NUMPY_RNN_REQUIRE_BROWSER=1)."""
    if os.environ.get("NUMPY_RNN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"the browser test is required (NUMPY_RNN_REQUIRE_BROWSER=1), but {reason}", pytrace=False)
    pytest.skip(reason)


def install_chromium() -> str | None:
    """Install Debian's chromium and chromium-driver with apt-get; None when done, else why not."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available to install them"
    if os.geteuid() != 0:
        return "installing them needs root (as root: apt-get install chromium chromium-driver)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES]):
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            return f"{' '.join(command)} took more than {APT_TIMEOUT_S} s"
        if done.returncode != 0:
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            return f"{' '.join(command)} failed with status {done.returncode}: {tail}"
    return None


@pytest.fixture(scope="session")
def chromium() -> Chromium:
    """Debian's Chromium and its driver, installed with apt-get when missing."""
    found = Chromium(CHROMIUM, CHROMEDRIVER)
    if not (found.browser.exists() and found.driver.exists()):
        why_not = install_chromium()
        if why_not is not None:
            _unavailable(f"headless Chromium ({found.browser}, {found.driver}) is not installed and {why_not}")
        if not (found.browser.exists() and found.driver.exists()):
            _unavailable(f"apt-get installed {' '.join(APT_PACKAGES)} but {found.browser} or {found.driver} is missing")
    return found


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    """A headless Chromium session (Selenium through Debian's chromedriver), 1280 x 900 pixels."""
    try:
        from selenium import webdriver
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[test]')")
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium.browser)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(chromium.driver)))
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def site_url(built_site):
    """The site served by ``http.server`` from a thread, on a free port of 127.0.0.1."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(built_site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


def screenshot(driver, name: str) -> Path:
    """A full-page PNG of what the browser shows, in ``build/screenshots/NAME.png``."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": metrics["width"], "height": min(metrics["height"], 16_000), "scale": 1}
    data = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    path.write_bytes(base64.b64decode(data["data"]))
    return path


def open_page(driver, url: str) -> dict:
    """Open ``url``, wait until MathJax has done (or WAIT_S passes), and return the page's state."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # forget the previous page's messages
    driver.get(url)
    try:
        WebDriverWait(driver, WAIT_S).until(lambda d: _settled(d.execute_script(PAGE_STATE)))
    except TimeoutException:
        pass  # the checks below say what is left
    errors = [entry["message"] for entry in driver.get_log("browser")
              if entry["level"] == "SEVERE" and not HARMLESS_CONSOLE_ERRORS.search(entry["message"])]
    return {**driver.execute_script(PAGE_STATE), "errors": errors}


def _settled(state: dict) -> bool:
    return not state["typesetting"] and not state["untypeset"]


def problems(state: dict, origin: str) -> list[str]:
    """What a user would see wrong on a page: untypeset maths, raw TeX, broken images, anything
    loaded from another origin, errors in the browser's console."""
    raw = [match.group(0) for match in RAW_TEX.finditer(state["prose"])][:5]
    foreign = [url for url in state["resources"] if not url.startswith((origin, "data:", "blob:"))]
    return ([f"MathJax still loading or typesetting after {WAIT_S} s"] * state["typesetting"]
            + [f"maths left untypeset: {state['untypeset'][:3]}"] * bool(state["untypeset"])
            + [f"maths MathJax could not typeset ({len(state['maths_errors'])}): {state['maths_errors'][:3]}"]
            * bool(state["maths_errors"])
            + [f"raw TeX in the visible text: {raw}"] * bool(raw)
            + [f"images that did not load: {state['broken_images']}"] * bool(state["broken_images"])
            + [f"loaded from another origin: {foreign}"] * bool(foreign)
            + [f"console errors: {state['errors']}"] * bool(state["errors"]))


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_over_http(browser, site_url, name):
    state = open_page(browser, site_url + PAGES[name])
    screenshot(browser, name)
    issues = problems(state, site_url)
    assert not issues, "\n".join(issues)
    assert "numpy-rnn" in state["title"] and "404" not in state["title"]
    if name in MATHS_PAGES:
        assert state["rendered"] > 0, f"{PAGES[name]} holds no typeset equation"


def test_api_page_documents_simple_rnn_with_its_signature(browser, site_url):
    from selenium.webdriver.common.by import By

    open_page(browser, site_url + PAGES["api_layers"])
    heading = browser.find_element(By.ID, "numpy_rnn.layers.SimpleRNN")
    assert "SimpleRNN" in heading.text and heading.is_displayed()


def test_tutorial_page_shows_the_executed_outputs(browser, site_url):
    state = open_page(browser, site_url + PAGES["tutorial"])
    assert state["outputs"] > 0, "the tutorial page shows no cell output: was it built from an executed notebook?"


def search(driver, query: str) -> list[str]:
    """Type ``query`` into Material's search box and return the result links' addresses."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    box = driver.find_element(By.CSS_SELECTOR, "input.md-search__input")
    box.click()
    box.send_keys(query)
    links = "li.md-search-result__item a.md-search-result__link"
    WebDriverWait(driver, WAIT_S).until(lambda d: d.find_elements(By.CSS_SELECTOR, links))
    return [link.get_attribute("href") for link in driver.find_elements(By.CSS_SELECTOR, links)]


def test_search_finds_simple_rnn_on_the_api_page(browser, site_url):
    open_page(browser, site_url + PAGES["home"])
    found = search(browser, "SimpleRNN")
    screenshot(browser, "search_SimpleRNN")
    assert any(href.startswith(site_url + PAGES["api_layers"]) for href in found), found


def test_the_site_works_from_the_file_system(browser, built_site):
    site = Path(built_site).resolve()
    origin = site.as_uri() + "/"
    for page in PAGES.values():
        issues = problems(open_page(browser, origin + page), origin)
        assert not issues, f"{page}: " + "\n".join(issues)
    open_page(browser, origin + PAGES["home"])
    links = {href.split("#")[0] for href in browser.execute_script("return [...document.links].map(a => a.href)")
             if href.startswith(origin)}
    assert origin + PAGES["api_layers"] in links
    assert not [link for link in links if not (site / link.removeprefix(origin)).is_file()], "links to no file"
    found = search(browser, "SimpleRNN")
    assert any(href.startswith(origin + PAGES["api_layers"]) for href in found), found
