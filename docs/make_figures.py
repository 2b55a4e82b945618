"""Regenerate the README's picture: ``python docs/make_figures.py`` writes docs/decision.png."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import bayesdtr as bd  # noqa: E402
from bayesdtr.cli import bmi_model  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> None:
    post = bmi_model().fit(random_seed=1, progressbar=False)
    out = bd.plot_decision(post, stage=1, x="baselineBMI")
    fig = out.figure if hasattr(out, "figure") else out[0].figure
    fig.savefig(HERE / "decision.png", dpi=100, bbox_inches="tight")
    print(f"wrote {HERE / 'decision.png'}")


if __name__ == "__main__":
    main()
