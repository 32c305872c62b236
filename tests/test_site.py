"""The built site in a real browser: every page loads with its images, links and no errors.

Slow tier (``make test-slow``). Builds the site from the executed notebooks (full mode where
``make run`` made them, else the smoke outputs, which it makes if they are missing too) into a
temporary folder, or uses the one in ``$DNOLAB_SITE_DIR`` (e.g. ``build/site`` after
``make site``). Serves it on 127.0.0.1 and opens every page in Debian's headless Chromium
through selenium and Debian's chromedriver. Every host but 127.0.0.1 is unresolvable for the
browser, so a page that needs anything from the network (a CDN script, a web font, an image)
fails too. A page fails on an image that did not load, a link into the site whose page or
#anchor does not exist, or an error in the console (a JavaScript error, a failed request).
A full-page screenshot of each page goes to ``build/site_screenshots/``.

Needs ``chromium`` and ``chromedriver`` (``bash scripts/install_browser.sh``) and selenium;
skips with that reason when they are missing.
"""

from __future__ import annotations

import base64
import functools
import http.server
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow

SCREENSHOTS = ROOT / "build" / "site_screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
INSTALL_HINT = "run `bash scripts/install_browser.sh` (Debian's chromium and chromium-driver)"

_spec = importlib.util.spec_from_file_location("build_site", ROOT / "scripts" / "build_site.py")
build_site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_site)


# --- the browser and a local server ----------------------------------------------------------

@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip(f"chromium or chromedriver is not installed: {INSTALL_HINT}")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                    "(pip install selenium; see the site dependencies)")
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # selenium must never try to download a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                 "--window-size=1280,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
                 # nothing but the local server resolves: a page that needs the network fails
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no line per request on stderr
        pass


def serve(folder: Path):
    """A thread serving ``folder`` on 127.0.0.1 at a free port; returns (base URL, server)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/", server


# --- what a page must satisfy --------------------------------------------------------------

_IMAGES_JS = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
images.forEach(img => { img.loading = "eager"; });
Promise.all(images.map(img => img.decode().then(() => null, () => img.currentSrc || img.src)))
  .then(failed => done(failed.filter(src => src !== null)
    .concat(images.filter(img => img.complete && img.naturalWidth === 0)
                  .map(img => img.currentSrc || img.src))));
"""


def _fetch(url: str, cache: dict) -> tuple[int, str]:
    if url not in cache:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = response.read().decode("utf-8", "replace") if url.endswith(".html") else ""
                cache[url] = (response.status, body)
        except urllib.error.HTTPError as err:
            cache[url] = (err.code, "")
    return cache[url]


def check_page(driver, url: str, base: str, cache: dict) -> list[str]:
    """Open ``url``; return what is wrong with it (empty when nothing is)."""
    driver.get_log("browser")  # drop messages left from the previous page
    driver.get(url)
    problems = []
    for src in dict.fromkeys(driver.execute_async_script(_IMAGES_JS)):
        problems.append(f"broken image {src}")
    hrefs = driver.execute_script(
        "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href);")
    for href in dict.fromkeys(hrefs):
        if not href.startswith(base):
            continue  # external links are not followed (and never fetched by the page)
        target, _, fragment = href.partition("#")
        status, body = _fetch(target, cache)
        if status != 200:
            problems.append(f"broken link {href} (HTTP {status})")
        elif fragment and target.endswith(".html"):
            anchor = re.escape(urllib.parse.unquote(fragment))
            if not re.search(rf"""\b(id|name)=["']{anchor}["']""", body):
                problems.append(f"broken link {href} (no #{urllib.parse.unquote(fragment)} there)")
    for entry in driver.get_log("browser"):
        if entry["level"] == "SEVERE":
            problems.append(f"console error: {entry['message']}")
    return problems


def full_page_screenshot(driver, path: Path, scale: float = 0.6, max_height: int = 30000) -> None:
    """The whole page, not only the window, as a PNG (Chrome DevTools' captureScreenshot)."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height),
            "scale": scale}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot",
                                  {"format": "png", "captureBeyondViewport": True, "clip": clip})
    path.write_bytes(base64.b64decode(shot["data"]))


# --- the checks can fail -------------------------------------------------------------------

def test_the_page_check_catches_broken_images_links_anchors_and_errors(browser, tmp_path):
    """A hand-made broken page: each kind of fault is reported (the check is not blind)."""
    (tmp_path / "ok.html").write_text('<html><body><h2 id="here">ok</h2></body></html>')
    (tmp_path / "good.png").write_bytes(base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAfbLI3wAAAABJRU5ErkJggg=="))
    (tmp_path / "page.html").write_text(
        '<html><body><img src="good.png"><img src="missing.png">'
        '<a href="ok.html#here">fine</a><a href="ok.html#nowhere">bad anchor</a>'
        '<a href="gone.html">bad link</a><a href="https://example.org/">external</a>'
        '<img src="https://cdn.example.org/badge.svg">'
        "<script>undefinedFunction();</script></body></html>")
    base, server = serve(tmp_path)
    try:
        problems = check_page(browser, base + "page.html", base, {})
        clean = check_page(browser, base + "ok.html", base, {})
    finally:
        server.shutdown()
    text = "\n".join(problems)
    assert "broken image " + base + "missing.png" in text
    assert "broken image https://cdn.example.org/badge.svg" in text, "a network image must fail"
    assert "gone.html (HTTP 404)" in text and "no #nowhere there" in text
    assert "undefinedFunction" in text, "a JavaScript error must be reported"
    assert "good.png" not in text and "ok.html#here" not in text and "example.org/ " not in text
    assert clean == []


# --- the site --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    given = os.environ.get("DNOLAB_SITE_DIR")
    if given:
        folder = Path(given).resolve()
        assert (folder / "index.html").exists(), f"DNOLAB_SITE_DIR={given} holds no built site"
        return folder
    sources = build_site.find_sources(ROOT)
    executed, smoke = ROOT / "build" / "notebooks", ROOT / "build" / "smoke" / "notebooks"
    missing = [p.name[:2] for p in sources
               if not (executed / p.name).exists() and not (smoke / p.name).exists()]
    if missing:  # neither `make run` nor `make smoke` ran them here: run them in smoke mode
        subprocess.run([sys.executable, "-m", "dnolab.notebooks", "--smoke", "--only", *missing],
                       cwd=ROOT, check=True)
    out = tmp_path_factory.mktemp("site") / "site"
    build_site.build(out, executed, smoke, allow_smoke=True)
    return out


def test_every_page_loads_with_its_images_links_and_no_console_error(browser, site):
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html")
                   if "_static" not in p.parts and "_sources" not in p.parts)
    notebooks = [p for p in pages if p.startswith("notebooks/")]
    expected = [f"notebooks/{p.stem}.html" for p in build_site.find_sources(ROOT)]
    assert notebooks == expected, "every notebook has a page"
    for page in ("README.html", "index.html", "docs/glossary.html", "docs/dno_in_dpo_terms.html"):
        assert page in pages
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    SCREENSHOTS.mkdir(parents=True)
    base, server = serve(site)
    failures, cache = {}, {}
    try:
        for page in pages:
            problems = check_page(browser, base + page, base, cache)
            if page.startswith("notebooks/"):
                figures = browser.execute_script(
                    "return document.querySelectorAll('div.cell_output img').length;")
                if figures == 0:
                    problems.append("a notebook page without a single figure")
            full_page_screenshot(browser, SCREENSHOTS / (page.replace("/", "__")[:-5] + ".png"))
            if problems:
                failures[page] = problems
    finally:
        server.shutdown()
    assert not failures, "\n".join(f"{page}:\n  " + "\n  ".join(p) for page, p in failures.items())


def test_the_site_root_opens_the_readme(browser, site):
    base, server = serve(site)
    try:
        browser.get(base)
        assert browser.current_url == base + "README.html"
        assert "Direct Nash Optimization" in browser.find_element("tag name", "h1").text
    finally:
        server.shutdown()


# --- the exercise solutions print what they say ------------------------------------------------

SOLUTIONS = sorted((ROOT / "docs" / "solutions").glob("*.md"))
FENCE = re.compile(r"^```(python|text)\n(.*?)^```$", re.S | re.M)
RECORDED_ON = re.compile(r"<!-- numbers recorded on: (.+?) -->")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def cpu_kind() -> str:
    """What decides which fp32 kernels torch runs here: the vendor, the vector ISA torch
    dispatches to and AMX tiles (e.g. ``Intel AVX512 AMX``, ``AMD AVX2``). A training run's
    numbers repeat bit for bit only on the same kind (README, notebook 04's headline)."""
    import torch

    caps = torch.cpu.get_capabilities()
    vendor = next((v for v in ("Intel", "AMD") if v.lower() in str(caps.get("cpu_name", "")).lower()),
                  str(caps.get("architecture", "unknown")))
    return " ".join([vendor, torch.backends.cpu.get_cpu_capability(), *(["AMX"] if caps.get("amx_tile") else [])])


@pytest.mark.parametrize("page", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_code_runs_and_prints_the_numbers_on_its_page(page, capsys):
    """Each ```python block runs (in order, one namespace); the ```text block after it is its output.

    A page whose numbers come from training says on which kind of CPU it printed them
    (``<!-- numbers recorded on: Intel AVX512 AMX -->``); on another kind each block must print
    the same text with other numbers, and the test skips the exact comparison, saying so."""
    text = page.read_text()
    blocks = FENCE.findall(text)
    assert blocks and blocks[0][0] == "python", f"{page.name} has no code"
    recorded, here = RECORDED_ON.search(text), cpu_kind()
    exact = recorded is None or recorded.group(1) == here
    namespace: dict = {"__name__": "__solutions__"}
    for k, (kind, body) in enumerate(blocks):
        if kind != "python":
            continue
        capsys.readouterr()
        exec(compile(body, f"{page.name} block {k}", "exec"), namespace)
        printed = capsys.readouterr().out
        if k + 1 < len(blocks) and blocks[k + 1][0] == "text":
            expected = blocks[k + 1][1]
            if not exact:
                printed, expected = NUMBER.sub("#", printed), NUMBER.sub("#", expected)
            assert printed == expected, f"{page.name}: block {k} printed\n{printed}"
    if not exact:
        pytest.skip(f"{page.name}: every block ran and printed its page's text; the numbers were "
                    f"recorded on {recorded.group(1)}, this CPU is {here}")
