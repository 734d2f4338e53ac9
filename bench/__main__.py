"""``python -m bench``: run the benchmark suite (bench/run.py)."""

from __future__ import annotations

import sys

from bench.run import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
