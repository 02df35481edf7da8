"""Screenshot a `chargen cells` HTML page with headless Chromium and check the picture is not blank.

    python scripts/screenshot_cells.py docs/assets/cells_shakespeare.html docs/assets/cells.png \
        [--size 1200,1600] [--show N]

Needs a `chromium` on PATH (Debian: apt-get install -y chromium). Prints what it checked;
exits 1 if Chromium fails or the PNG is missing, the wrong size, one colour or without colour.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def screenshot(page: Path, png: Path, width: int, height: int, shown: int = 0, timeout: float = 120.0) -> None:
    """Render `page` at width x height pixels into `png`, coloured by the picker's unit number `shown`
    (the page reads it from the address's #N). A throwaway profile folder keeps runs apart."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("error: no chromium on PATH (Debian: apt-get install -y chromium)")
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={profile}", f"--screenshot={png.resolve()}", f"--window-size={width},{height}",
               f"{page.resolve().as_uri()}#{shown}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not png.exists():
        raise SystemExit(f"error: chromium exited {proc.returncode} without {png}: {proc.stderr.strip()[-500:]}")


def check_png(png: Path, width: int, height: int) -> dict:
    """Decode the PNG and measure it: size, distinct colours, and the share of clearly coloured pixels
    (a channel spread over 0.2: the red and blue backgrounds, not the grey text)."""
    import matplotlib.image as mpimg
    import numpy as np

    image = mpimg.imread(png)[..., :3]  # (height, width, 3) floats in [0, 1]
    flat = (image.reshape(-1, 3) * 255).round().astype(np.int32)  # (pixels, 3)
    colours = len(np.unique(flat[:, 0] * 65536 + flat[:, 1] * 256 + flat[:, 2]))
    coloured = float(((image.max(axis=2) - image.min(axis=2)) > 0.2).mean())
    return {"bytes": png.stat().st_size, "width": image.shape[1], "height": image.shape[0],
            "distinct_colours": colours, "coloured_fraction": coloured,
            "ok": image.shape[:2] == (height, width) and colours > 16 and coloured > 0.01}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--size", default="1200,1600", help="window width,height in pixels")
    parser.add_argument("--show", type=int, default=0, help="colour by the picker's unit N (0 = the page's first)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split(","))
    if not args.page.is_file():
        print(f"error: {args.page} not found", file=sys.stderr)
        return 1
    screenshot(args.page, args.png, width, height, args.show)
    report = check_png(args.png, width, height)
    print(f"{args.png}: {report['bytes']} bytes, {report['width']}x{report['height']} pixels "
          f"(wanted {width}x{height}), {report['distinct_colours']} distinct colours (need > 16), "
          f"{report['coloured_fraction']:.1%} clearly coloured pixels (need > 1%): "
          f"{'ok' if report['ok'] else 'FAILED'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
