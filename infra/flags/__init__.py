"""Feature flags: which provider (OpenAI or the Spaces) serves each tier, and how to flip it.

One module per concern: `document` (schema, validation, routing rule), `store` (interface and
errors), `ssm` and `file` (backends), `reader` (cached, fail-safe reads for request paths),
`operations` (show/change/rollback), `factory` (store chosen by the declaration).
"""

from infra.flags.document import (
    DEFAULT_TIERS,
    PROVIDERS,
    FlagDocument,
    FlagDocumentError,
    Route,
    decide_route,
    parse_document,
    validate_document,
)
from infra.flags.factory import initial_document, open_flag_store, tier_names
from infra.flags.file import FileFlagStore
from infra.flags.operations import ChangeResult, FlagChange, apply_change, rollback_to_openai
from infra.flags.reader import CachedFlagReader
from infra.flags.ssm import SSMFlagStore, make_ssm_client
from infra.flags.store import (
    FlagConflictError,
    FlagStore,
    FlagStoreError,
    HistoryEntry,
    Snapshot,
    read_document,
)

__all__ = [
    "DEFAULT_TIERS", "PROVIDERS", "CachedFlagReader", "ChangeResult", "FileFlagStore", "FlagChange",
    "FlagConflictError", "FlagDocument", "FlagDocumentError", "FlagStore", "FlagStoreError",
    "HistoryEntry", "Route", "SSMFlagStore", "Snapshot", "apply_change", "decide_route",
    "initial_document", "make_ssm_client", "open_flag_store", "parse_document", "read_document",
    "rollback_to_openai", "tier_names", "validate_document",
]
