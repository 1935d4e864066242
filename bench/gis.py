"""The issue's name for the asset-register benchmark: runs bench/assets.py (same options,
same last line of JSON)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.assets import main

if __name__ == "__main__":
    main()
