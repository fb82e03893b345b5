"""HTTP routes of the emulated Hub API, with the request and response shapes `huggingface_hub` uses.

Each route parses its request, authenticates the caller, counts the call in the Space's `write_calls`
when it mutates something, and delegates to `infra.sandbox.hub.Hub`. Routes the sandbox does not model
answer 501 with the method and path, never a silent 200.
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from infra.sandbox.auth import User
from infra.sandbox.errors import HubError, bad_request, not_modelled
from infra.sandbox.hub import Hub
from infra.sandbox.runtime import front_matter

TREE_PAGE = 1000
TREE_PAGE_EXPANDED = 50
COMMITS_PAGE = 50


@dataclass
class Call:
    """One API request, parsed: caller, path parameters, query, body and the server's base URL."""

    request: Request
    hub: Hub
    caller: User | None
    body: bytes

    @property
    def space_id(self) -> str:
        p = self.request.path_params
        return f"{p['ns']}/{p['name']}"

    @property
    def base_url(self) -> str:
        return str(self.request.base_url).rstrip("/")

    def param(self, name: str) -> str:
        return str(self.request.path_params[name])

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            data = json.loads(self.body)
        except json.JSONDecodeError:
            raise bad_request("request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise bad_request("request body must be a JSON object")
        return data

    def flag(self, name: str) -> bool:
        return self.request.query_params.get(name, "").lower() in ("1", "true")


Handler = Callable[[Call], Any]


def endpoint(hub: Hub, handler: Handler, write: str | None = None,
             target: Callable[[Call], str | None] | None = None) -> Callable[[Request], Any]:
    """Wrap a synchronous handler: auth, write counting, errors as Hub errors, JSON answers."""

    async def run(request: Request) -> Response:
        body = await request.body()
        try:
            caller = hub.store.users.authenticate(request.headers.get("authorization"))
            call = Call(request, hub, caller, body)
            if write is not None:
                space_id = target(call) if target is not None else call.space_id
                if space_id:
                    hub.store.count_write(space_id, write)
            result = await run_in_threadpool(handler, call)
        except HubError as error:
            return error.response()
        if isinstance(result, Response):
            return result
        return JSONResponse(result if result is not None else {})

    return run


def _paginated(call: Call, items: list[Any], page_size: int) -> Response:
    """One page of `items` with a `Link: <...>; rel="next"` header when more remain (cursor = offset)."""
    try:
        start = int(call.request.query_params.get("cursor", "0"))
    except ValueError:
        raise bad_request("invalid cursor") from None
    page = items[start : start + page_size]
    headers = {}
    if start + page_size < len(items):
        query = [(k, v) for k, v in call.request.query_params.multi_items() if k != "cursor"]
        query.append(("cursor", str(start + page_size)))
        url = str(call.request.url.replace(query=urlencode(query)))
        headers["Link"] = f'<{url}>; rel="next"'
    return JSONResponse(page, headers=headers)


# --- handlers ------------------------------------------------------------------------------------------


def whoami(call: Call) -> Any:
    if call.caller is None:
        raise HubError(401, "Invalid credentials in Authorization header")
    return call.caller.whoami()


def validate_yaml(call: Call) -> Any:
    content = call.json().get("content", "")
    try:
        data = front_matter(content if isinstance(content, str) else "")
    except ValueError as error:
        return JSONResponse({"errors": [{"message": str(error)}], "warnings": []}, status_code=400)
    warnings = [] if data else [{"message": "empty or missing yaml metadata in repo card"}]
    return {"errors": [], "warnings": warnings}


def create_repo(call: Call) -> Any:
    return call.hub.create(call.caller, call.json(), call.base_url)


def _create_target(call: Call) -> str | None:
    payload = call.json()
    namespace = payload.get("organization") or (call.caller.name if call.caller else None)
    return f"{namespace}/{payload.get('name')}" if namespace and payload.get("type") == "space" else None


def delete_repo(call: Call) -> Any:
    call.hub.delete(call.caller, call.json())
    return Response(status_code=200)


def list_spaces(call: Call) -> Any:
    q = call.request.query_params
    if q.get("filter") or q.get("sort"):
        raise not_modelled("list_spaces filter/sort")
    spaces = call.hub.list_spaces(call.caller, q.get("author"), q.get("search"))
    limit = q.get("limit")
    return spaces[: int(limit)] if limit and limit.isdigit() else spaces


def space_info(call: Call) -> Any:
    q = call.request.query_params
    revision = call.request.path_params.get("rev")
    return call.hub.info(call.caller, call.space_id, revision, call.flag("blobs"), q.getlist("expand"))


def settings(call: Call) -> Any:
    call.hub.update_settings(call.caller, call.space_id, call.json())
    return {}


def tree(call: Call) -> Any:
    expand = call.flag("expand")
    entries = call.hub.tree(
        call.caller, call.space_id, call.param("rev"), call.request.path_params.get("path", ""),
        call.flag("recursive"), expand,
    )
    return _paginated(call, entries, TREE_PAGE_EXPANDED if expand else TREE_PAGE)


async def _form_paths(request: Request) -> tuple[list[str], bool]:
    form = await request.form()
    paths = [str(p) for p in form.getlist("paths")]
    return paths, str(form.get("expand", "")).lower() in ("1", "true")


def paths_info_route(hub: Hub) -> Callable[[Request], Any]:
    """`paths-info` posts a form, so its body is parsed before the generic wrapper."""

    async def run(request: Request) -> Response:
        try:
            caller = hub.store.users.authenticate(request.headers.get("authorization"))
            paths, expand = await _form_paths(request)
            p = request.path_params
            result = await run_in_threadpool(
                hub.paths_info, caller, f"{p['ns']}/{p['name']}", p["rev"], paths, expand
            )
        except HubError as error:
            return error.response()
        return JSONResponse(result)

    return run


def commits(call: Call) -> Any:
    items = call.hub.commits(call.caller, call.space_id, call.param("rev"))
    if "formatted" not in call.request.query_params.getlist("expand[]"):
        for item in items:
            item.pop("formatted")
    return _paginated(call, items, COMMITS_PAGE)


def refs(call: Call) -> Any:
    return call.hub.refs(call.caller, call.space_id)


def preupload(call: Call) -> Any:
    if call.flag("create_pr"):
        raise not_modelled("pull requests (create_pr)")
    return call.hub.preupload(call.caller, call.space_id, call.param("rev"), call.json())


def commit(call: Call) -> Any:
    result = call.hub.commit(
        call.caller, call.space_id, call.param("rev"), call.body, dict(call.request.query_params)
    )
    return {
        "success": True,
        "commitOid": result.sha,
        "commitUrl": f"{call.base_url}/spaces/{call.space_id}/commit/{result.sha}",
        "hookOutput": "",
    }


def resolve(call: Call) -> Any:
    commit_obj, oid, data = call.hub.read_file(call.caller, call.space_id, call.param("rev"), call.param("path"))
    name = call.param("path").rsplit("/", 1)[-1]
    headers = {
        "X-Repo-Commit": commit_obj.id,
        "ETag": f'"{oid}"',
        "Accept-Ranges": "bytes",
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}; filename=\"{name}\"",
        "Cache-Control": "private, max-age=0, must-revalidate",
    }
    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
    status = 200
    body = data
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", call.request.headers.get("range", ""))
    if match and (match.group(1) or match.group(2)):
        start = int(match.group(1)) if match.group(1) else max(len(data) - int(match.group(2)), 0)
        end = int(match.group(2)) if match.group(1) and match.group(2) else len(data) - 1
        if start >= len(data) and len(data) > 0:
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{len(data)}"})
        body = data[start : end + 1]
        status = 206
        headers["Content-Range"] = f"bytes {start}-{start + len(body) - 1}/{len(data)}"
    if call.request.method == "HEAD":
        headers["Content-Length"] = str(len(body))
        return Response(b"", status_code=status, headers=headers, media_type=media)
    return Response(body, status_code=status, headers=headers, media_type=media)


def runtime(call: Call) -> Any:
    with call.hub.store.lock:
        return call.hub.runtime(call.hub.visible(call.caller, call.space_id))


def hardware(call: Call) -> Any:
    return call.hub.request_hardware(call.caller, call.space_id, call.json())


def sleeptime(call: Call) -> Any:
    return call.hub.set_sleep_time(call.caller, call.space_id, call.json())


def pause(call: Call) -> Any:
    return call.hub.pause(call.caller, call.space_id)


def restart(call: Call) -> Any:
    return call.hub.restart(call.caller, call.space_id, call.flag("factory"))


def secrets(call: Call) -> Any:
    method = call.request.method
    if method == "GET":
        return call.hub.secrets(call.caller, call.space_id)
    if method == "POST":
        call.hub.put_secret(call.caller, call.space_id, call.json())
    else:
        call.hub.delete_secret(call.caller, call.space_id, call.json())
    return {}


def variables(call: Call) -> Any:
    method = call.request.method
    if method == "GET":
        return call.hub.variables(call.caller, call.space_id)
    if method == "POST":
        return call.hub.put_variable(call.caller, call.space_id, call.json())
    return call.hub.delete_variable(call.caller, call.space_id, call.json())


def duplicate(call: Call) -> Any:
    return call.hub.duplicate(call.caller, call.space_id, call.json(), call.base_url)


def _duplicate_target(call: Call) -> str | None:
    target = call.json().get("repository")
    return target if isinstance(target, str) else None


def logs(call: Call) -> Any:
    kind = call.param("kind")
    if kind not in ("build", "run"):
        raise not_modelled(f"logs/{kind}")
    call.hub.writable(call.caller, call.space_id)
    events = call.hub.supervisor.logs(call.space_id)[kind]

    def stream() -> Any:
        for event in events:
            yield "data: " + json.dumps({"data": event["data"] + "\n", "timestamp": event["timestamp"]}) + "\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream")


def unknown(call: Call) -> Any:
    raise not_modelled(f"{call.request.method} {call.request.url.path}")


def api_routes(hub: Hub) -> list[Route]:
    """All Hub API routes, most specific first, ending with the 501 catch-all."""
    space = "/api/spaces/{ns}/{name}"
    write_methods = ("POST", "DELETE")

    def r(path: str, handler: Handler, methods: list[str], write: str | None = None,
          target: Callable[[Call], str | None] | None = None) -> Route:
        return Route(path, endpoint(hub, handler, write, target), methods=methods)

    def settings_route(path: str, handler: Handler, name: str) -> Route:
        async def run(request: Request) -> Response:
            write = name if request.method in write_methods else None
            return await endpoint(hub, handler, write)(request)

        return Route(path, run, methods=["GET", "POST", "DELETE"])

    return [
        r("/api/whoami-v2", whoami, ["GET"]),
        r("/api/validate-yaml", validate_yaml, ["POST"]),
        r("/api/repos/create", create_repo, ["POST"], "create_repo", _create_target),
        r("/api/repos/delete", delete_repo, ["DELETE"], "delete_repo", _create_target),
        r("/api/spaces", list_spaces, ["GET"]),
        r(space, space_info, ["GET"]),
        r(space + "/revision/{rev}", space_info, ["GET"]),
        r(space + "/settings", settings, ["PUT"], "update_repo_settings"),
        r(space + "/tree/{rev}", tree, ["GET"]),
        r(space + "/tree/{rev}/{path:path}", tree, ["GET"]),
        Route(space + "/paths-info/{rev}", paths_info_route(hub), methods=["POST"]),
        r(space + "/commits/{rev}", commits, ["GET"]),
        r(space + "/refs", refs, ["GET"]),
        r(space + "/preupload/{rev}", preupload, ["POST"]),
        r(space + "/commit/{rev}", commit, ["POST"], "create_commit"),
        r("/spaces/{ns}/{name}/resolve/{rev}/{path:path}", resolve, ["GET", "HEAD"]),
        r(space + "/runtime", runtime, ["GET"]),
        r(space + "/hardware", hardware, ["POST"], "request_space_hardware"),
        r(space + "/sleeptime", sleeptime, ["POST"], "set_space_sleep_time"),
        r(space + "/pause", pause, ["POST"], "pause_space"),
        r(space + "/restart", restart, ["POST"], "restart_space"),
        settings_route(space + "/secrets", secrets, "space_secret"),
        settings_route(space + "/variables", variables, "space_variable"),
        r(space + "/duplicate", duplicate, ["POST"], "duplicate_repo", _duplicate_target),
        r(space + "/logs/{kind}", logs, ["GET"]),
        r("/{rest:path}", unknown, ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
    ]
