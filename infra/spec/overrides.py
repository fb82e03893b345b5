"""Environment-variable overrides of owner and Space names, as the seed application used them.

The seed's front end read `VITE_HUGGINGFACE_ORG` and `VITE_HF_*_SPACE`; server-side code should use
the same names without the `VITE_` prefix, which win when both are set. Overrides are applied to
the raw YAML data before validation so the same rules check them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

OWNER_VARIABLES = ("HUGGINGFACE_ORG", "VITE_HUGGINGFACE_ORG")
SPACE_VARIABLES = {
    "base": ("HF_BASE_SPACE", "VITE_HF_BASE_SPACE"),
    "company": ("HF_COMPANY_SPACE", "VITE_HF_COMPANY_SPACE"),
    "abstraction": ("HF_ABSTRACTION_SPACE", "VITE_HF_ABSTRACTION_SPACE"),
}


def _first_set(names: tuple[str, ...], environ: Mapping[str, str]) -> tuple[str, str] | None:
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return None


def apply_overrides(data: Any, environ: Mapping[str, str] | None = None) -> dict[tuple[str, ...], str]:
    """Overwrite owner / tier Space names in `data` in place; return {field path: variable used}."""
    environ = os.environ if environ is None else environ
    applied: dict[tuple[str, ...], str] = {}
    if not isinstance(data, dict):
        return applied
    owner = _first_set(OWNER_VARIABLES, environ)
    if owner:
        data["owner"] = owner[1]
        applied[("owner",)] = owner[0]
    tiers = data.get("tiers")
    if isinstance(tiers, dict):
        for tier, names in SPACE_VARIABLES.items():
            found = _first_set(names, environ)
            if found and isinstance(tiers.get(tier), dict):
                tiers[tier]["space"] = found[1]
                applied[("tiers", tier, "space")] = found[0]
    return applied
