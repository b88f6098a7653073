#!/usr/bin/env python3
"""The pages in a real browser: headless Chromium driven over W3C WebDriver
(chromedriver), against a stack this script starts itself (`pastebin up` with port 0
everywhere, in a temporary directory).

Only the standard library: WebDriver is JSON over HTTP, so a few lines of urllib
replace a client library (no venv, no download, nothing to pin).

Usage: scripts/browser_test.py [--bin target/debug/pastebin] [--screenshots DIR]

Without chromium/chromedriver it prints a loud SKIPPED line and exits 77 (the
conventional "skipped", which scripts/test.sh counts among what it skipped), unless
CI=true, where it fails.
"""

import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HTML_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
BROWSER_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
    "image/webp,image/apng,*/*;q=0.8"
)
DEADLINE = 60.0  # seconds for any one condition to become true (shared, slow machine)

CHROME_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def log(msg):
    print(f"browser_test: {msg}", flush=True)


def fail(msg):
    raise AssertionError(msg)


def poll(what, cond, deadline=DEADLINE):
    """Polls cond() until it returns a truthy value; fails after the deadline."""
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        try:
            value = cond()
            if value:
                return value
        except Exception as err:  # noqa: BLE001 - reported if the deadline passes
            last = err
        time.sleep(0.1)
    fail(f"timed out waiting for {what} (last error: {last})")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None):
    """One HTTP exchange without following redirects: (status, headers, body)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


class Stack:
    """`pastebin up` on free ports in a temporary directory."""

    def __init__(self, binary, workdir):
        config = os.path.join(workdir, "pastebin.toml")
        with open(config, "w") as f:
            f.write(
                f'data_dir = "{os.path.join(workdir, "data")}"\n'
                '[lb]\nlisten = "127.0.0.1:0"\n'
                "[web]\ncount = 1\nbase_port = 0\n"
                '[sqlsvc]\nlisten = "127.0.0.1:0"\n'
                '[nosqlsvc]\nlisten = "127.0.0.1:0"\n'
            )
        self.proc = subprocess.Popen(
            [binary, "--config", config, "up"],
            stdout=subprocess.PIPE,
            stderr=open(os.path.join(workdir, "pastebin.log"), "wb"),
            text=True,
        )
        found = {}
        ready = threading.Event()

        def read():
            for line in self.proc.stdout:
                if line.startswith("http://") and not ready.is_set():
                    found["url"] = line.strip()
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(DEADLINE * 2):
            self.stop()
            fail(f"pastebin up announced no URL (log: {workdir}/pastebin.log)")
        self.url = found["url"].rstrip("/")
        log(f"stack up at {self.url}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Driver:
    """A minimal W3C WebDriver client for chromedriver."""

    def __init__(self, chromedriver, chromium, profile_dir, workdir):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [chromedriver, f"--port={self.port}"],
            stdout=open(os.path.join(workdir, "chromedriver.log"), "wb"),
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        poll("chromedriver", lambda: self._call("GET", "/status")["ready"])
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "unhandledPromptBehavior": "ignore",
                    "goog:loggingPrefs": {"browser": "ALL"},
                    "goog:chromeOptions": {
                        "binary": chromium,
                        "args": CHROME_ARGS + [f"--user-data-dir={profile_dir}"],
                    },
                }
            }
        }
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return json.load(resp)["value"]
        except urllib.error.HTTPError as err:
            value = json.load(err).get("value", {})
            raise WebDriverError(value.get("error", "?"), value.get("message", "")) from None

    def cmd(self, method, path, body=None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def get(self, url):
        self.cmd("POST", "/url", {"url": url})

    def url(self):
        return self.cmd("GET", "/url")

    def js(self, script, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        found = self.cmd("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(found.values()))

    def click(self, css):
        self.cmd("POST", f"/element/{self.find(css)}/click", {})

    def alert_open(self):
        try:
            self.cmd("GET", "/alert/text")
            return True
        except WebDriverError as err:
            if err.code == "no such alert":
                return False
            raise

    def console(self):
        """The browser console entries since the last call (chromedriver's log API)."""
        return self.cmd("POST", "/se/log", {"type": "browser"})

    def size(self, width, height):
        self.cmd("POST", "/window/rect", {"width": width, "height": height})

    def screenshot(self, path):
        png = base64.b64decode(self.cmd("GET", "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)
        log(f"screenshot {path} ({len(png)} bytes)")

    def quit(self):
        try:
            self.cmd("DELETE", "")
        except Exception:  # noqa: BLE001 - best effort at teardown
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class WebDriverError(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


def script_errors(entries):
    """Severe console entries but the favicon's 404 (there is no favicon)."""
    return [
        e for e in entries
        if e.get("level") == "SEVERE" and "favicon.ico" not in e.get("message", "")
    ]


def csp_violations(entries):
    return [e for e in entries if "Content Security Policy" in e.get("message", "")]


def load_ms(d):
    """Navigation start to load end of the current page, from Navigation Timing."""
    return round(
        d.js("const [n] = performance.getEntriesByType('navigation'); return n.loadEventEnd - n.startTime")
    )


def check_headers(url):
    """Negotiation and headers, seen by a plain HTTP client."""
    status, headers, body = http("POST", url + "/pastes/", b"hello\n", {"Content-Type": "text/plain"})
    assert status == 201, (status, body)
    paste = body.decode().strip()
    for accept, kind in [
        (BROWSER_ACCEPT, "text/html"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        (None, "application/json"),
    ]:
        for method in ("GET", "HEAD"):
            status, headers, _ = http(method, paste, headers={"Accept": accept} if accept else {})
            assert status == 200, (method, accept, status)
            assert headers["Content-Type"].startswith(kind), (method, accept, headers["Content-Type"])
            assert headers["Vary"] == "Accept", (method, accept, headers)
            assert headers["X-Content-Type-Options"] == "nosniff", headers
            assert headers["Referrer-Policy"] == "no-referrer", headers
            if kind == "text/html":
                assert headers["Content-Security-Policy"] == HTML_CSP, headers
    status, headers, _ = http("GET", paste + "/raw?download=1")
    assert status == 200 and headers["Content-Disposition"].startswith("attachment"), headers
    # The form without JavaScript: urlencoded, answered 303 to the paste's page.
    status, headers, _ = http(
        "POST",
        url + "/pastes/",
        b"text=a%0D%0Ab&expires_in=",
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 303, status
    location = headers["Location"]
    assert re.fullmatch(re.escape(url) + r"/pastes/[0-9A-Za-z]{10}", location), location
    _, _, body = http("GET", location)
    assert json.loads(body)["text"] == "a\nb", body
    # The form's burn-after-reading and unlisted boxes without JavaScript; the JSON API
    # keeps burning on a GET (curl's */*), and HEAD never burns.
    status, headers, _ = http(
        "POST",
        url + "/pastes/",
        b"text=burn+me&expires_in=&burn_after_reading=1&visibility=unlisted",
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 303, status
    burn = headers["Location"]
    for _ in range(2):
        status, headers, body = http("HEAD", burn, headers={"Accept": "*/*"})
        assert status == 200, status
        status, headers, body = http("GET", burn, headers={"Accept": BROWSER_ACCEPT})
        assert status == 200 and b'id="reveal"' in body and b"burn me" not in body, (status, body)
        assert headers["Cache-Control"] == "no-store", headers
    status, _, body = http("GET", burn, headers={"Accept": "*/*"})
    assert status == 200, status
    assert json.loads(body)["text"] == "burn me", body
    status, _, _ = http("GET", burn, headers={"Accept": "*/*"})
    assert status == 404, status
    log("headers and negotiation: ok")


def create_in_browser(d, base, text, *checkboxes):
    """Creates a paste through the home page's form (ticking `checkboxes`), and
    answers the URL the browser landed on."""
    d.get(base + "/")
    poll("the home page", lambda: d.js("return document.readyState") == "complete")
    d.js("document.getElementById('text').value = arguments[0]", text)
    for box in checkboxes:
        d.click(box)
    d.click("#submit")
    return poll(
        "the paste's page after the form",
        lambda: re.fullmatch(re.escape(base) + r"/pastes/[0-9A-Za-z]{10}", d.url()) and d.url(),
    )


def list_ids(base):
    """Every listed paste's id, following the list's `Link` pages."""
    ids, url = [], base + "/pastes?limit=100"
    while url:
        status, headers, body = http("GET", url)
        assert status == 200, (status, body)
        ids += [p["paste_id"] for p in json.loads(body)]
        link = re.match(r"<([^>]+)>; rel=\"next\"", headers.get("Link") or "")
        url = link and link.group(1)
    return ids


def run(args, chromium, chromedriver):
    workdir = tempfile.mkdtemp(prefix="pastebin-browser.")
    stack = driver = None
    try:
        stack = Stack(args.bin, workdir)
        check_headers(stack.url)
        profile = os.path.join(workdir, "profile")
        driver = Driver(chromedriver, chromium, profile, workdir)
        d = driver
        d.size(1280, 900)

        # 1. Create through the form (JavaScript on) and land on the paste's page.
        text = "<script>alert(1)</script>\nline two <b>bold</b> & 'q'\n\u202eevil\n<img src=x onerror=alert(2)>"
        d.get(stack.url + "/")
        poll("the home page", lambda: d.js("return document.readyState") == "complete")
        if args.screenshots:
            d.screenshot(os.path.join(args.screenshots, "home-desktop.png"))
        d.js("document.getElementById('text').value = arguments[0]", text)
        d.js("document.getElementById('expires_in').value = '3600'")
        d.click("#submit")
        page = poll(
            "the paste's page after the form",
            lambda: re.fullmatch(re.escape(stack.url) + r"/pastes/[0-9A-Za-z]{10}", d.url()) and d.url(),
        )
        poll("the page loaded", lambda: d.js("return document.readyState") == "complete")
        log(f"form landed on {page}")

        # 2. The text exactly, nothing run: no dialog, no script or img from the paste.
        shown = d.js(
            "return [...document.querySelectorAll('#text .l > span')].map(s => s.textContent).join('\\n')"
        )
        assert shown == text, (shown, text)
        assert not d.alert_open(), "a dialog opened"
        scripts = d.js("return [...document.scripts].map(s => s.getAttribute('src'))")
        assert len(scripts) == 1 and re.fullmatch(r"/static/app\.[0-9a-f]{16}\.js", scripts[0]), scripts
        assert d.js("return document.querySelectorAll('#text img, #text b, #text script').length") == 0
        assert d.js("return document.getElementById('bidi') !== null"), "no bidi notice"

        # 3. Line links: #L2 targets line 2, and the gutter links to its line.
        d.get(page + "#L2")
        target = poll("the :target line", lambda: d.js("return document.querySelector(':target')?.id"))
        assert target == "L2", target
        assert d.js("return document.querySelector(':target > span').textContent") == text.split("\n")[1]
        d.click("#L3 > a")
        assert d.js("return location.hash") == "#L3"
        assert d.js("return getComputedStyle(document.querySelector('#L3 > a'), '::before').content") in ('attr(data-n)', '"3"')

        # 4. Times shown in local time by the script, from the UTC <time datetime>.
        times = d.js(
            "return [...document.querySelectorAll('time')].map(t => "
            "[t.getAttribute('datetime'), t.textContent, t.title, t.classList.contains('local')])"
        )
        assert len(times) == 2, times  # created and expires
        for iso, shown, utc, local in times:
            assert local and shown and shown != utc and utc.endswith("UTC"), times
        created = d.js("return Date.parse(arguments[0])", times[0][0]) / 1000
        assert abs(created - time.time()) < 600, (times, time.time())
        expires = d.js("return Date.parse(arguments[0])", times[1][0]) / 1000
        assert 3000 < expires - created <= 3600, times

        # 5. Copy puts the exact text on the clipboard (the button is the script's).
        assert d.js("return document.getElementById('copy').hidden") is False
        for name in ("clipboard-read", "clipboard-write"):
            d.cmd("POST", "/permissions", {"descriptor": {"name": name}, "state": "granted"})
        d.click("#copy")
        label = poll("the copy button's answer", lambda: d.js(
            "const t = document.getElementById('copy').textContent; return t !== 'Copy' && t"
        ))
        assert label == "Copied", label
        copied = d.cmd("POST", "/execute/async", {
            "script": "navigator.clipboard.readText().then(arguments[0], e => arguments[0]('ERR ' + e))",
            "args": [],
        })
        assert copied == text, (copied, text)

        # 6. No CSP violation so far; and the log does show one when there is one.
        entries = d.console()
        assert not csp_violations(entries), csp_violations(entries)
        assert not script_errors(entries), script_errors(entries)
        d.js(
            "const i = document.createElement('img');"
            "i.src = 'data:image/gif;base64,R0lGODlhAQABAAAAACw=';"
            "document.body.append(i);"
        )
        poll("a CSP violation in the console for a data: image", lambda: csp_violations(d.console()))

        # 7. A 500 KB line renders as text, in one piece.
        long_line = "x" * 500_000
        status, headers, body = http(
            "POST",
            stack.url + "/pastes/",
            json.dumps({"text": long_line}).encode(),
            {"Content-Type": "application/json"},
        )
        assert status == 201, (status, body)
        d.get(json.loads(body)["url"])
        n = poll("the long line", lambda: d.js("return document.querySelector('#L1 > span')?.textContent.length"))
        assert n == 500_000, n
        assert d.js("return getComputedStyle(document.querySelector('#L1 > span')).whiteSpace") == "pre"
        d.click("#wrap")  # the wrap switch is CSS alone: a checkbox before the text
        assert d.js("return getComputedStyle(document.querySelector('#L1 > span')).whiteSpace") == "pre-wrap"
        assert d.js("return document.querySelectorAll('style, [style]').length") == 0, "inline style"
        assert not csp_violations(d.console())
        log(f"500 KB line: page loaded in {load_ms(d)} ms (navigation start to load end)")

        # 7b. Many lines (480 KB): every line its own linked block, up to 50,000 lines.
        many = "\n".join(f"line {i:06}" for i in range(1, 40_001)) + "\n"
        status, headers, body = http(
            "POST",
            stack.url + "/pastes/",
            json.dumps({"text": many}).encode(),
            {"Content-Type": "application/json"},
        )
        assert status == 201, (status, body)
        d.get(json.loads(body)["url"] + "#L39999")
        n = poll("the many lines", lambda: d.js("return document.querySelectorAll('#text .l').length"))
        assert n == 40_000, n
        assert d.js("return document.querySelector(':target > span').textContent") == "line 039999"
        # Scrolled to, though its chunk was not laid out before (content-visibility).
        poll("line 39999 on screen", lambda: d.js(
            "const r = document.querySelector(':target').getBoundingClientRect();"
            "return r.height > 0 && r.top >= 0 && r.bottom <= innerHeight"
        ))
        log(f"40,000 lines ({len(many)} bytes): page loaded in {load_ms(d)} ms")

        # 9. Burn after reading, through the form: the link opens a notice (opening it
        # again, or a HEAD, burns nothing), only the Reveal button burns it and shows
        # the exact text, once; then the link says it is gone.
        secret = "the secret <b>once</b> & 'only'\nsecond line\n"
        burn_url = create_in_browser(d, stack.url, secret, "#burn_after_reading")
        burn_id = burn_url.rsplit("/", 1)[1]
        for _ in range(2):
            d.get(burn_url)
            poll("the burn notice", lambda: d.js("return document.getElementById('reveal') !== null"))
            assert d.js("return document.getElementById('text')") is None, "the text before the reveal"
            assert "second line" not in d.js("return document.body.textContent")
        status, _, _ = http("HEAD", burn_url, headers={"Accept": "*/*"})
        assert status == 200, status
        if args.screenshots:
            d.screenshot(os.path.join(args.screenshots, "burn-notice-desktop.png"))
        d.click("#reveal")
        poll("the revealed text", lambda: d.js("return document.getElementById('burnt') !== null"))
        shown = d.js(
            "return [...document.querySelectorAll('#text .l > span')].map(s => s.textContent).join('\\n')"
        )
        assert shown == secret.rstrip("\n"), (shown, secret)
        assert d.js("return document.getElementById('raw')") is None, "a raw link to a burnt paste"
        d.get(burn_url)
        poll("the burnt paste's 404 page", lambda: "404" in d.js("return document.querySelector('h1')?.textContent || ''"))
        status, _, _ = http("GET", burn_url, headers={"Accept": "application/json"})
        assert status == 404, status
        status, _, _ = http("POST", burn_url + "/reveal")
        assert status == 404, status
        assert not csp_violations(d.console())
        log(f"burn after reading: notice, one reveal, then gone ({burn_id})")

        # 10. Unlisted, through the form: readable by its link, absent from the list;
        # a public paste made after it is listed.
        unlisted_url = create_in_browser(d, stack.url, "not for the list\n", "#unlisted")
        public_url = create_in_browser(d, stack.url, "for the list\n")
        ids = list_ids(stack.url)
        assert public_url.rsplit("/", 1)[1] in ids, "the public paste is not listed"
        assert unlisted_url.rsplit("/", 1)[1] not in ids, "the unlisted paste is listed"
        status, _, body = http("GET", unlisted_url)
        assert status == 200 and json.loads(body)["text"] == "not for the list\n", (status, body)
        log(f"unlisted: readable, not among the {len(ids)} listed")

        # 11. The view count on the page, rising as the page is opened again (views are
        # flushed in batches, so it is polled; a page whose count sqlsvc did not give in
        # time is sent without it, so each poll loads the page again).
        def page_views():  # the count's text ("0" is truthy for poll), or None
            d.get(public_url)
            return d.js("const v = document.getElementById('views'); return v && v.textContent")

        first = int(poll("the view count", page_views))

        def more_views():
            shown = page_views()
            return shown is not None and int(shown) > first

        poll("the view count to rise", more_views)
        log(f"view count: {first} then more")

        # 12. Delete: offered to the creating browser only. A second browser profile
        # (fresh localStorage) sees no Delete button; the creator's deletes the paste.
        d.get(page)
        poll("the delete button", lambda: d.js("return document.getElementById('delete')?.hidden === false"))
        other = Driver(chromedriver, chromium, os.path.join(workdir, "profile2"), workdir)
        try:
            other.get(page)
            poll("the page in another profile", lambda: other.js("return document.readyState") == "complete"
                 and other.js("return document.getElementById('copy')?.hidden === false"))
            assert other.js("return document.getElementById('delete').hidden") is True, "Delete in a fresh profile"
            assert other.js("return localStorage.length") == 0
        finally:
            other.quit()
        d.click("#delete")
        assert d.js("return document.getElementById('delete').textContent") == "Delete for good?"
        status, _, _ = http("GET", page)
        assert status == 200, "the first click deleted"
        d.click("#delete")
        poll("home after the delete", lambda: "/?deleted=" in d.url())
        said = poll("the deleted notice", lambda: d.js("return document.getElementById('out').textContent"))
        assert "was deleted" in said, said
        status, _, _ = http("GET", page)
        assert status == 404, status
        assert d.js("return localStorage.getItem(arguments[0])", "pastebin.delete." + page.rsplit("/", 1)[1]) is None
        assert not csp_violations(d.console())
        log("delete: creator only, then gone")

        # 8. Screenshots: a paste worth looking at, desktop and phone widths.
        if args.screenshots:
            sample = (
                "// A paste as it is shown: line numbers link (#L3), long lines scroll.\n"
                "fn main() {\n"
                '    let greeting = "hello, world";\n'
                '    println!("{greeting} from a paste that holds <html> & \\"quotes\\"");\n'
                "    let long = \"" + "a very long line that scrolls sideways " * 4 + "\";\n"
                "}\n"
            )
            d.get(stack.url + "/")
            poll("the home page", lambda: d.js("return document.readyState") == "complete")
            d.js("document.getElementById('text').value = arguments[0]", sample)
            d.js("document.getElementById('expires_in').value = '86400'")
            d.click("#submit")
            shot = poll("the sample's page", lambda: "/pastes/" in d.url() and d.url())
            d.get(shot + "#L3")
            poll("the page loaded", lambda: d.js("return document.readyState") == "complete")
            d.screenshot(os.path.join(args.screenshots, "paste-desktop.png"))
            d.size(390, 844)
            poll("a phone-width window", lambda: d.js("return innerWidth") <= 400)
            d.screenshot(os.path.join(args.screenshots, "paste-phone.png"))
            d.get(stack.url + "/")
            poll("the home page", lambda: d.js("return document.readyState") == "complete")
            d.screenshot(os.path.join(args.screenshots, "home-phone.png"))
            assert not csp_violations(d.console())
        log("all browser checks passed")
    finally:
        if driver:
            driver.quit()
        if stack:
            stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# Exit status of a run that tested nothing (as automake's test drivers use it).
SKIPPED = 77


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=os.environ.get("PASTEBIN_BIN", "target/debug/pastebin"))
    parser.add_argument("--screenshots", help="directory to write PNG screenshots into")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not chromium or not chromedriver:
        if os.environ.get("CI") == "true":
            log("chromium or chromedriver missing, and CI=true: failing")
            return 1
        log("******** SKIPPED: browser tests (install chromium and chromium-driver) ********")
        return SKIPPED
    if args.screenshots:
        os.makedirs(args.screenshots, exist_ok=True)
    run(args, chromium, chromedriver)
    return 0


if __name__ == "__main__":
    sys.exit(main())
