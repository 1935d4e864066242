"""Vendors the web map's library, Leaflet, into api/static from the npm registry package
(run at build time: ``python -m assets.vendor_leaflet``; needs ``npm``).

The office may have no internet, so the map page loads Leaflet from the app itself, never
from a CDN. The package is fetched with ``npm pack`` at the pinned version, its integrity is
checked against :data:`INTEGRITY`, and leaflet.js, leaflet.css (its image addresses pointed
at the copied images) and the licence are written as ``api/static/leaflet*``; the static
folder is flat because the package data ships ``api/static/*``.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "1.9.4"
INTEGRITY = (
    "sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3"  # registry integrity
    "GDQOL+YR3XnWyZAxwQixURb+FA74PA=="
)
STATIC = Path(__file__).resolve().parent.parent / "api" / "static"
IMAGES = {
    "images/layers.png": "leaflet-layers.png",
    "images/layers-2x.png": "leaflet-layers-2x.png",
    "images/marker-icon.png": "leaflet-marker-icon.png",
}


def vendor(dest: Path = STATIC) -> list[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["npm", "pack", f"leaflet@{VERSION}", "--silent"],
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        tgz = Path(tmp) / f"leaflet-{VERSION}.tgz"
        digest = base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
        if f"sha512-{digest}" != INTEGRITY:
            raise SystemExit(f"leaflet-{VERSION}.tgz does not match its registry integrity")
        with tarfile.open(tgz) as tar:
            tar.extractall(tmp, filter="data")
        dist = Path(tmp) / "package" / "dist"
        out = [dest / "leaflet.js", dest / "leaflet.css", dest / "leaflet-LICENSE.txt"]
        out[0].write_bytes((dist / "leaflet.js").read_bytes())
        css = (dist / "leaflet.css").read_text(encoding="utf-8")
        for src, name in IMAGES.items():
            css = css.replace(f"url({src})", f"url({name})")
            (dest / name).write_bytes((dist / src).read_bytes())
            out.append(dest / name)
        out[1].write_text(css, encoding="utf-8")
        out[2].write_bytes((Path(tmp) / "package" / "LICENSE").read_bytes())
    return out


if __name__ == "__main__":
    for p in vendor():
        sys.stdout.write(f"wrote {p}\n")
