"""Screenshot of the web page for the README: type a text, predict, save the full page.

Drives Debian's headless Chromium (/usr/bin/chromium) through Playwright against a server that
is already running; it starts none itself:

    kgfuse serve BUNDLE &
    python bench/screenshot.py --text "a bad case of influenza and a cough"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Debian's Chromium and the flags that run it headless in a container (tests/test_web_page.py too)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the running server")
    parser.add_argument("--text", required=True, help="the message to type into the page")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshot.png"), help="PNG file")
    parser.add_argument("--key", default=None, help="API key, when the server needs one")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for paths")
    args = parser.parse_args(argv)

    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: run `apt-get install chromium`", file=sys.stderr)
        return 2

    from playwright.sync_api import Error, sync_playwright

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            if args.key:
                context.set_extra_http_headers({"Authorization": f"Bearer {args.key}"})
            page = context.new_page()
            try:
                page.goto(args.url)
            except Error as e:
                print(f"cannot open {args.url} (is the server running?): {e}", file=sys.stderr)
                return 1
            page.fill("#text", args.text)
            page.click("#predict")
            try:
                page.wait_for_selector(
                    "#paths-graph svg text, #error:not([hidden])", timeout=args.timeout * 1e3
                )
            except Error as e:
                print(f"the page showed no paths graph: {e}", file=sys.stderr)
                return 1
            if page.locator("#error").is_visible():
                print(f"the page shows an error: {page.text_content('#error')}", file=sys.stderr)
                return 1
            page.screenshot(path=str(args.out), full_page=True)
        finally:
            browser.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
