"""Choose and locate the flag store from the declaration (`flags.store`).

`FLAG_STORE=file|ssm` overrides the declared kind at run time, e.g. to try a change against a local
file before touching the shared parameter.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from infra.errors import UserError
from infra.flags.document import DEFAULT_TIERS, FlagDocument, now_utc
from infra.flags.file import FileFlagStore
from infra.flags.ssm import SSMFlagStore, make_ssm_client
from infra.flags.store import FlagStore

STORE_KINDS = ("ssm", "file")
DEFAULT_FILE_PATH = ".flags/{env}.json"
DEFAULT_SSM_NAME = "/triple-llm/{env}/flags"


def _check_env(decl: Any, env: str) -> None:
    environments = getattr(decl, "environments", None)
    if environments and env not in environments:
        raise UserError(f"unknown environment {env!r}; valid: {', '.join(environments)}")


def store_kind(decl: Any) -> str:
    """The declared kind, unless FLAG_STORE overrides it."""
    kind = os.environ.get("FLAG_STORE") or decl.flags.store.kind
    if kind not in STORE_KINDS:
        raise UserError(f"flag store kind {kind!r} (FLAG_STORE or flags.store.kind) is not valid; "
                        f"valid: {', '.join(STORE_KINDS)}")
    return kind


def open_flag_store(decl: Any, env: str, *, ssm_client: Any | None = None) -> FlagStore:
    """The flag store for `env` as the declaration locates it."""
    _check_env(decl, env)
    store = decl.flags.store
    if store_kind(decl) == "ssm":
        name = (getattr(store, "name", None) or DEFAULT_SSM_NAME).format(env=env)
        region = getattr(store, "region", None)
        return SSMFlagStore(name, client=ssm_client or make_ssm_client(region), region=region)
    template = getattr(store, "path", None) or DEFAULT_FILE_PATH
    path = Path(template.format(env=env))
    if not path.is_absolute():
        path = Path(getattr(decl, "source_dir", None) or ".") / path
    return FileFlagStore(path)


def tier_names(decl: Any) -> list[str]:
    """Tier names from the declaration, in declared order."""
    return list(getattr(decl, "tier_names", None) or DEFAULT_TIERS)


def initial_document(decl: Any) -> FlagDocument:
    """The declaration's `flags.initial`, as version 0: the base for the first write to a store."""
    initial = getattr(decl.flags, "initial", None)
    names = tier_names(decl)
    provider = getattr(initial, "provider", None) or "openai"
    tiers = dict(getattr(initial, "tiers", None) or dict.fromkeys(names, True))
    for name in names:
        tiers.setdefault(name, True)
    return FlagDocument(provider=provider, tiers=tiers, version=0, updated_at=now_utc(),
                        updated_by="declaration", reason="flags.initial from the declaration")
