"""Execute the research notebooks and write their outputs back into the .ipynb files.

    python notebooks/run.py            # small sizes (seconds each; what CI runs)
    python notebooks/run.py --full     # the sizes you would report (minutes)
    python notebooks/run.py 01 03      # only the notebooks whose names start with these

Each notebook reads ``BAYESDTR_NOTEBOOK_SIZE`` ("small" or "full") in its first code cell; this
script sets it. Kernels start in the repository root, so ``import bayesdtr`` finds this checkout's
package first. Needs ``nbclient``, ``nbformat`` and ``ipykernel`` (the ``test`` extra).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def notebooks(prefixes: list[str] | None = None) -> list[Path]:
    """The notebooks of this folder in name order, optionally those starting with ``prefixes``."""
    found = sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    if prefixes:
        found = [p for p in found if any(p.name.startswith(x) for x in prefixes)]
    return found


def execute(
    path: Path, *, size: str = "small", out: Path | None = None, timeout: int = 1800
) -> float:
    """Run one notebook in a fresh kernel started in the repository root and save it with its
    outputs to ``out`` (default: in place). Returns the wall time in seconds."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # timestamps of earlier runs
    old = os.environ.get("BAYESDTR_NOTEBOOK_SIZE")
    os.environ["BAYESDTR_NOTEBOOK_SIZE"] = size  # the kernel inherits this process's environment
    t0 = time.perf_counter()
    try:
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(ROOT)}},
            record_timing=False,  # no timestamps in the committed files
        )
        client.execute()
    finally:
        if old is None:
            os.environ.pop("BAYESDTR_NOTEBOOK_SIZE", None)
        else:
            os.environ["BAYESDTR_NOTEBOOK_SIZE"] = old
    seconds = time.perf_counter() - t0
    nbformat.write(nb, out or path)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="run only notebooks whose names start with these")
    parser.add_argument(
        "--full", action="store_true", help="run at full size (minutes per notebook)"
    )
    args = parser.parse_args(argv)
    size = "full" if args.full else "small"
    paths = notebooks(args.names)
    if not paths:
        print(f"no notebook matches {args.names}", file=sys.stderr)
        return 2
    total = 0.0
    for path in paths:
        print(f"{path.name} ({size}) ...", end=" ", flush=True)
        seconds = execute(path, size=size)
        total += seconds
        print(f"{seconds:.1f} s", flush=True)
    print(f"{len(paths)} notebook(s) in {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
