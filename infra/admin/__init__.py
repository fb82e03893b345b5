"""The admin web page: view every environment's flags and Spaces, and flip providers and tiers safely.

`app` (Starlette app factory, routes, security headers), `auth` (credentials, password hashes,
signed session cookie, CSRF), `state` (read-only gathering: flags, history, Hub status, smoke
results). Templates and the stylesheet live beside the code (`templates/`, `static/`): no
front-end build, no JavaScript. Served by `invoke admin`; see `app` for the safety rules.
"""

from infra.admin.app import create_app, serve
from infra.admin.auth import Credentials, hash_password

__all__ = ["Credentials", "create_app", "hash_password", "serve"]
