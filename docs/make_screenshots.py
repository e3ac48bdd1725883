"""Screenshots of an edition's HTML as a reader sees it, on a desktop and on a phone."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_HTML = REPOSITORY / "tests" / "golden" / "edition.html"
DEFAULT_OUT_DIR = REPOSITORY / "docs" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
# Quiet flags: the browser itself should not phone home while it takes the pictures.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@dataclass(frozen=True)
class Screen:
    file_name: str
    width: int
    height: int
    scale: float


SCREENS = (
    Screen("edition-desktop.png", width=1200, height=900, scale=1),
    Screen("edition-phone.png", width=390, height=844, scale=2),
)


def take_screenshots(html_path: Path, out_dir: Path, *, chromium: Path = CHROMIUM) -> list[Path]:
    """Full-page PNGs of `html_path` for every screen in SCREENS, written to `out_dir`.

    Requests for anything but the file itself are refused, as a careful mail client
    would refuse them; article images then show their alt text.
    """
    from playwright.sync_api import Route, sync_playwright

    page_url = html_path.resolve().as_uri()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def only_the_page(route: Route) -> None:
        if route.request.url == page_url:
            route.continue_()
        else:
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            for screen in SCREENS:
                context = browser.new_context(
                    viewport={"width": screen.width, "height": screen.height},
                    device_scale_factor=screen.scale,
                )
                page = context.new_page()
                page.route("**/*", only_the_page)
                page.goto(page_url)
                target = out_dir / screen.file_name
                page.screenshot(path=str(target), full_page=True)
                written.append(target)
                context.close()
        finally:
            browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--html", type=Path, default=DEFAULT_HTML, help=f"edition HTML (default {DEFAULT_HTML})"
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=DEFAULT_OUT_DIR,
        help=f"folder for the PNGs (default {DEFAULT_OUT_DIR})",
    )
    parser.add_argument("--chromium", type=Path, default=CHROMIUM, help="the browser to use")
    arguments = parser.parse_args(argv)
    if not arguments.html.is_file():
        print(f"error: no such file: {arguments.html}", file=sys.stderr)
        return 2
    if not arguments.chromium.exists():
        print(f"error: {arguments.chromium} not found (run `make browser`)", file=sys.stderr)
        return 2
    for path in take_screenshots(arguments.html, arguments.out_dir, chromium=arguments.chromium):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
