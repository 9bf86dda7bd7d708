"""`python -m bench [--quick] [--backend B] [--markdown]`: runs every bench module in turn.

A bench module is any module of this package with a `main(argv)` function; the same
flags are passed to each. `python -m bench.<name>` runs one of them.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import bench

SKIP = {"common", "__main__"}


def modules() -> list[str]:
    """Returns the names of the bench modules (those with a `main`), sorted."""
    names = []
    for info in pkgutil.iter_modules(bench.__path__):
        if info.name in SKIP or info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"bench.{info.name}")
        except Exception:  # noqa: BLE001 - listed, so that main() reports the import error
            names.append(info.name)
            continue
        if hasattr(module, "main"):
            names.append(info.name)
    return sorted(names)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    failed = []
    for name in modules():
        print(f"\n=== bench.{name} ===", flush=True)
        started = time.perf_counter()
        try:
            code = importlib.import_module(f"bench.{name}").main(argv)
        except Exception as exc:  # noqa: BLE001 - one broken bench must not hide the others
            print(f"bench.{name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            code = 1
        print(f"(bench.{name}: {time.perf_counter() - started:.1f} s)", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
