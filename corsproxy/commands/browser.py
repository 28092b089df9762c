"""The `browser` and `chrome-flags` commands: a Chromium that reaches the intercepted hosts
through corsproxy and trusts its CA, and nothing else.

`browser` runs `corsproxy serve` as a child, waits for its intercept line (so the listener is
up: an unreachable PAC makes Chromium go direct, silently), then starts Debian's `chromium`
(or `$CHROMIUM`) with a fresh profile folder, the PAC and the CA's SPKI pin. Nothing is added
to a trust store; the profile is deleted when the browser closes, and the proxy is stopped
then or on Ctrl-C. `chrome-flags` prints the same flags for a proxy that is already running
(from its /ca.pem), for people who start their own browser or Playwright.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from corsproxy.model import Config
from corsproxy.errors import StoreError
from corsproxy.server.intercept import load_ca
from corsproxy.server.serve import display_url

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
STARTUP_SECONDS = 30.0
STOP_SECONDS = 15.0
# The contract's line: corsproxy intercepting <hosts> on <url> (CA SPKI sha256: <base64>)
INTERCEPT_LINE = re.compile(r"^corsproxy intercepting (?P<hosts>.+) on (?P<url>http://\S+) "
                            r"\(CA SPKI sha256: (?P<spki>[A-Za-z0-9+/=]+)\)$")


def chrome_flags(listener_url: str, spki: str) -> list[str]:
    """The flags that route the listed hosts to the listener and trust the CA by its SPKI
    only. Never --ignore-certificate-errors: every other certificate is checked as usual.
    (Pass them as launch args to Playwright, not as its proxy= option, which also sends
    loopback through the proxy.)"""
    return [f"--proxy-pac-url={listener_url}/proxy.pac",
            f"--ignore-certificate-errors-spki-list={spki}"]


def profile_flags(profile: str) -> list[str]:
    return [f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check"]


def add_browser_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", nargs="?", help="the page to open, e.g. http://localhost:3000")


def add_flags_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="the running intercept listener (default: the config's intercept.listen)")


def run_flags(args: argparse.Namespace, config: Config | None, _path: Path | None) -> int:
    url = args.url or (_listen_url(config) if config else None)
    if url is None:
        print("corsproxy chrome-flags: the config has no intercept block; pass --url http://127.0.0.1:PORT",
              file=sys.stderr)
        return EXIT_USAGE
    url = url.rstrip("/")
    try:
        spki = fetch_spki(url)
    except StoreError as exc:
        print(f"corsproxy chrome-flags: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (OSError, ValueError) as exc:
        print(f"corsproxy chrome-flags: cannot read {url}/ca.pem ({exc}); is `corsproxy serve` running "
              "with an intercept block?", file=sys.stderr)
        return EXIT_FAILURE
    print("\n".join(chrome_flags(url, spki)))
    print("note: start the browser with a fresh --user-data-dir: the SPKI pin applies to the whole profile",
          file=sys.stderr)
    return EXIT_OK


def fetch_spki(listener_url: str, timeout: float = 5.0) -> str:
    ca = load_ca()
    request = urllib.request.Request(f"{listener_url}/ca.pem", headers={"Host": "localhost"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return ca.spki_sha256(ca.x509.load_pem_x509_certificate(response.read(64 * 1024)))


def _listen_url(config: Config) -> str | None:
    intercept = config.intercept
    if intercept is None:
        return None
    host = "127.0.0.1" if intercept.listen_host in ("0.0.0.0", "::") else intercept.listen_host
    return display_url(host, intercept.listen_port)


def find_chromium(env=os.environ) -> str | None:
    return env.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def run_browser(args: argparse.Namespace, config: Config | None, path: Path | None) -> int:
    if config is None or config.intercept is None or path is None:
        print("corsproxy browser: the config has no intercept block; add one (README: When you cannot "
              "change the URL)", file=sys.stderr)
        return EXIT_USAGE
    chromium = find_chromium()
    if chromium is None:
        print("corsproxy browser: no Chromium found; install it (Debian: apt-get install chromium) or "
              "set $CHROMIUM to its path", file=sys.stderr)
        return EXIT_FAILURE
    proxy = subprocess.Popen([sys.executable, "-m", "corsproxy", "serve", "-c", str(path)],
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        found = _wait_for_intercept_line(proxy)
        if found is None:
            print("corsproxy browser: the proxy did not start (see its messages above)", file=sys.stderr)
            return EXIT_FAILURE
        url, spki = found
        return _run_chromium(chromium, url, spki, args.url)
    finally:
        _stop(proxy)


def _wait_for_intercept_line(proxy: subprocess.Popen) -> tuple[str, str] | None:
    """Echo the proxy's stdout; (listener url, spki) once the intercept line is printed."""
    assert proxy.stdout is not None
    found: list[tuple[str, str]] = []
    seen = threading.Event()

    def pump() -> None:
        for line in proxy.stdout:
            print(line, end="", flush=True)
            if not found and (match := INTERCEPT_LINE.match(line.strip())):
                found.append((match["url"], match["spki"]))
                seen.set()
        seen.set()

    threading.Thread(target=pump, daemon=True).start()
    seen.wait(STARTUP_SECONDS)
    return found[0] if found else None


def _run_chromium(chromium: str, listener_url: str, spki: str, page: str | None) -> int:
    profile = tempfile.mkdtemp(prefix="corsproxy-browser-")
    command = [chromium, *profile_flags(profile), *chrome_flags(listener_url, spki), *([page] if page else [])]
    try:
        browser = subprocess.Popen(command)
        try:
            browser.wait()
        except KeyboardInterrupt:
            print("\ncorsproxy browser: stopping the browser and the proxy", file=sys.stderr)
            _stop(browser)
        return EXIT_OK
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM, a bounded wait, then SIGKILL: never leave a child behind."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        try:
            process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            continue
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting politely
            break
    if process.poll() is None:
        process.kill()
        process.wait(timeout=STOP_SECONDS)
