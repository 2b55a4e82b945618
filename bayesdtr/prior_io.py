"""Priors in posterior files: ``pymc_extras`` ``Prior`` objects as plain JSON, and back.

Writing keeps only priors that survive the round trip exactly; reading rebuilds each prior
through an allowlist (a PyMC distribution class name, numeric parameters or nested priors, dims
and a transform name), so no text read from a file is evaluated. Split out of
:mod:`bayesdtr.io`, which calls :func:`priors_json` when writing and :func:`priors_from` when
reading.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from bayesdtr.data.frames import file_error, parse_json
from bayesdtr.exceptions import FileFormatError, PriorError
from bayesdtr.models.priors import PRIOR_NAMES, StagePriors

if TYPE_CHECKING:
    from pymc_extras.prior import Prior

__all__ = ["priors_json", "prior_from_plain", "priors_from"]


def priors_json(priors: StagePriors, treatment: str) -> str:
    from pymc_extras.prior import Prior  # imported when needed: `import bayesdtr` stays light

    out = {}
    for name, p in priors.overrides.items():
        ok = isinstance(p, Prior)
        if ok:
            try:
                plain = p.to_dict()
                text = json.dumps(plain)
                ok = prior_from_plain(json.loads(text), "<check>", name).to_dict() == json.loads(
                    text
                )
            except (TypeError, ValueError, FileFormatError):
                ok = False
        if not ok:
            raise PriorError(
                f"Prior {name!r} of stage {treatment!r} ({p!r:.80}) cannot be stored in a posterior "
                "file: files hold pymc_extras.prior.Prior objects of PyMC distributions with "
                "numeric parameters. Use such a Prior, or keep this posterior in memory."
            )
        out[name] = plain
    return json.dumps(out)


def prior_from_plain(d: Any, source: str, where: str, depth: int = 0) -> Prior:
    """A ``Prior`` from its plain-dictionary form, through an allowlist (no text is evaluated):
    a PyMC distribution class name, numeric parameters or nested priors, dims and a transform name."""
    if (
        depth > 6
        or not isinstance(d, dict)
        or not set(d) <= {"dist", "kwargs", "centered", "dims", "transform"}
    ):
        raise file_error(source, f"prior {where} is not a stored Prior")
    import pymc as pm
    from pymc_extras.prior import Prior

    dist = d.get("dist")
    cls = (
        getattr(pm, dist, None)
        if isinstance(dist, str) and re.fullmatch(r"[A-Z][A-Za-z0-9]{0,40}", dist)
        else None
    )
    if not (isinstance(cls, type) and issubclass(cls, pm.Distribution)):
        raise file_error(
            source,
            f"prior {where} names distribution {dist!r:.40}, which is not a PyMC distribution",
        )
    kwargs = {}
    raw = d.get("kwargs", {})
    if not isinstance(raw, dict):
        raise file_error(source, f"prior {where} parameters are not a dictionary")
    for key, val in raw.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise file_error(source, f"prior {where} has a parameter name {key!r:.40}")
        if isinstance(val, dict):
            kwargs[key] = prior_from_plain(val, source, f"{where}.{key}", depth + 1)
        elif isinstance(val, bool) or not isinstance(val, int | float | list):
            raise file_error(
                source, f"prior {where} parameter {key!r} is {type(val).__name__}, not a number"
            )
        else:
            arr = np.asarray(val)
            if arr.dtype.kind not in "if" or not np.all(np.isfinite(arr)):
                raise file_error(source, f"prior {where} parameter {key!r} is not finite numbers")
            kwargs[key] = arr if isinstance(val, list) else val
    dims = d.get("dims")
    if dims is not None and not (
        isinstance(dims, str) or (isinstance(dims, list) and all(isinstance(x, str) for x in dims))
    ):
        raise file_error(source, f"prior {where} dims must be names")
    transform = d.get("transform")
    if transform is not None and not (isinstance(transform, str) and transform.isidentifier()):
        raise file_error(source, f"prior {where} transform {transform!r:.40} is not a name")
    centered = d.get("centered", True)
    if not isinstance(centered, bool):
        raise file_error(source, f"prior {where} 'centered' must be true or false")
    try:
        return Prior(
            dist,
            dims=tuple(dims) if isinstance(dims, list) else dims,
            centered=centered,
            transform=transform,
            **kwargs,
        )
    except Exception as err:  # pymc-extras raises several types for bad parameters
        raise file_error(
            source, f"prior {where} cannot be rebuilt ({type(err).__name__}: {str(err)[:100]})"
        ) from None


def priors_from(attrs: dict, treatment: str, source: str, where: str) -> StagePriors:
    plain = parse_json(attrs.get("priors", "{}"), source, f"{where} priors")
    if not isinstance(plain, dict):
        raise file_error(source, f"{where} priors must be a dictionary")
    out = StagePriors()
    for name, d in plain.items():
        if name not in PRIOR_NAMES:
            raise file_error(
                source, f"{where} names an unknown prior {name!r:.40} (known: {list(PRIOR_NAMES)})"
            )
        out.overrides[name] = prior_from_plain(d, source, f"{treatment}.{name}")
    return out
