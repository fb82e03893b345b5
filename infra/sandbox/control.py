"""`/_sandbox/*`: the sandbox's own control routes for tests and benchmarks (not part of the Hub API).

No authentication: they are for whoever runs the sandbox on loopback. See the package docstring for
the list and the request shapes.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from infra.sandbox.errors import HubError
from infra.sandbox.faults import FaultPlan
from infra.sandbox.hub import Hub


def control_routes(hub: Hub, plan: FaultPlan) -> list[Route]:
    """Routes for stats, faults, Space logs, forced stages and extra users."""

    async def body(request: Request) -> Any:
        raw = await request.body()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            raise HubError(400, "request body is not valid JSON") from None

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "owner": hub.owner})

    async def stats(request: Request) -> Response:
        data = hub.store.stats_snapshot()
        data["faults"] = {"injected": plan.snapshot()["injected"]}
        return JSONResponse(data)

    async def faults(request: Request) -> Response:
        try:
            if request.method == "POST":
                raw = await body(request)
                rules = raw.get("rules", []) if isinstance(raw, dict) else raw
                if not isinstance(rules, list):
                    raise HubError(400, "send a list of rules or {\"rules\": [...]}")
                try:
                    plan.set(rules)
                except (ValueError, TypeError) as error:
                    raise HubError(400, str(error)) from None
            elif request.method == "DELETE":
                plan.clear()
        except HubError as error:
            return error.response()
        return JSONResponse(plan.snapshot())

    async def space_logs(request: Request) -> Response:
        space_id = f"{request.path_params['ns']}/{request.path_params['name']}"
        space = hub.store.spaces.get(space_id)
        if space is None:
            return HubError(404, "Repository not found", code="RepoNotFound").response()
        return JSONResponse(
            {"id": space_id, "stage": space.stage, "error": space.error_message, **hub.supervisor.logs(space_id)}
        )

    async def stage(request: Request) -> Response:
        space_id = f"{request.path_params['ns']}/{request.path_params['name']}"
        try:
            raw = await body(request)
            hub.set_stage(space_id, str(raw.get("stage")), raw.get("error"))
        except HubError as error:
            return error.response()
        with hub.store.lock:
            return JSONResponse(hub.runtime(hub.store.spaces[space_id]))

    async def users(request: Request) -> Response:
        try:
            raw = await body(request)
            orgs = raw.get("orgs") or {}
            if isinstance(orgs, list):
                orgs = {org: "write" for org in orgs}
            user = hub.add_user(str(raw.get("name")), orgs, raw.get("token_role", "write"))
        except HubError as error:
            return error.response()
        return JSONResponse({"name": user.name, "token": user.token, "orgs": user.orgs})

    async def processes(request: Request) -> Response:
        return JSONResponse({"pids": hub.supervisor.pids()})

    return [
        Route("/_sandbox/health", health, methods=["GET"]),
        Route("/_sandbox/stats", stats, methods=["GET"]),
        Route("/_sandbox/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_sandbox/spaces/{ns}/{name}/logs", space_logs, methods=["GET"]),
        Route("/_sandbox/spaces/{ns}/{name}/stage", stage, methods=["POST"]),
        Route("/_sandbox/users", users, methods=["POST"]),
        Route("/_sandbox/processes", processes, methods=["GET"]),
    ]
