"""How a client authenticates to a rendered Space app, public or private.

A private Space is reached through the Hub's proxy, which requires a Hugging Face token in
`Authorization: Bearer`. The app's own key (`SPACE_API_KEY`) then travels in `X-Space-Api-Key`,
which the app checks first; a public Space (or a local run) takes the key as the bearer token, as
any OpenAI client sends it.
"""

from __future__ import annotations

API_KEY_HEADER = "X-Space-Api-Key"


def openai_auth(api_key: str, hub_token: str | None = None) -> dict:
    """Keyword arguments for `openai.OpenAI(...)`: `api_key` and `default_headers`."""
    if hub_token:
        return {"api_key": hub_token, "default_headers": {API_KEY_HEADER: api_key}}
    return {"api_key": api_key}


def request_headers(api_key: str | None, hub_token: str | None = None) -> dict[str, str]:
    """Headers for a plain HTTP request to the app; `api_key=None` sends only what the proxy needs."""
    headers = {"Authorization": f"Bearer {hub_token}"} if hub_token else {}
    if api_key:
        if hub_token:
            headers[API_KEY_HEADER] = api_key
        else:
            headers["Authorization"] = f"Bearer {api_key}"
    return headers
