"""Wire a `TieredLLMService` for one environment from the declaration.

The application needs what the declaration cannot hold: the OpenAI service, the Space key
(`SPACE_API_KEY`, a secret), for private Spaces a Hugging Face read token (`HF_TOKEN`) for the
Hub's proxy, and, outside production, Space URLs other than `*.hf.space`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from infra.errors import UserError
from infra.flags.factory import open_flag_store, tier_names
from infra.flags.reader import DEFAULT_TTL, CachedFlagReader
from infra.hub import resolve_token
from infra.service.classifier import TierClassifier
from infra.service.openai_compat import OpenAIService, SpaceService, space_url
from infra.service.protocol import GeneralLLMService
from infra.service.tiered import TieredLLMService
from infra.usage_log import UsageLogger


def build_tiered_service(
    decl: Any,
    env: str,
    *,
    openai: GeneralLLMService | None = None,
    space_token: str | None = None,
    space_urls: Mapping[str, str] | None = None,
    flag_ttl: float = DEFAULT_TTL,
    space_timeout: float = 10.0,
    classifier: TierClassifier | None = None,
    usage: UsageLogger | None = None,
    ssm_client: Any | None = None,
    hub_token: str | None = None,
) -> TieredLLMService:
    """A tiered service for `env`: Spaces at their hub URLs (or `space_urls`), flags from the declared store."""
    token = space_token or os.environ.get("SPACE_API_KEY")
    if not token:
        raise UserError("SPACE_API_KEY is not set; the tiered service needs the Spaces' bearer token")
    urls = dict(space_urls or {})
    private = [tier for tier in tier_names(decl) if decl.space(env, tier).private]
    hub_token = hub_token or (resolve_token() if private else None)
    if private and not hub_token:
        raise UserError(f"the {', '.join(private)} Spaces of {env} are private: the Hub's proxy needs a "
                        "Hugging Face read token (set HF_TOKEN server-side)")
    spaces = {
        tier: SpaceService(urls.get(tier) or space_url(decl.space_id(env, tier)), token, tier=tier,
                           timeout=space_timeout, hub_token=hub_token if tier in private else None)
        for tier in tier_names(decl)
    }
    reader = CachedFlagReader(open_flag_store(decl, env, ssm_client=ssm_client), ttl=flag_ttl)
    return TieredLLMService(openai=openai or OpenAIService(), spaces=spaces, flags=reader,
                            classifier=classifier, usage=usage)
