"""Sandbox Hub: a local emulator of the Hugging Face Hub API for Spaces, which also runs those Spaces.

huggingface.co cannot be reached here, so every capability that talks to the Hub (provision, smoke,
promote, CI) is verified against this server instead. The real `huggingface_hub` client talks to it
unchanged: `HfApi(endpoint=sb.url, token=sb.token)`, or `HF_ENDPOINT=http://127.0.0.1:PORT` and
`HF_TOKEN=...` in the environment *before* `huggingface_hub` is imported (it reads them at import).

Python API::

    from infra.sandbox import run_sandbox

    with run_sandbox(owner="acme-ai", data_dir=None, faults=None, port=0) as sb:
        api = HfApi(endpoint=sb.url, token=sb.token)   # default user, admin of `owner`
        sb.other_token                                # a user outside `owner` (403/404 checks)
        sb.add_user("bob", {"acme-ai": "read"})        # -> token; roles admin/write/read
        sb.stats(); sb.set_faults([...]); sb.clear_faults()
        sb.set_stage("acme-ai/x", "SLEEPING"); sb.wait_for_stage("acme-ai/x"); sb.logs("acme-ai/x")
        sb.host("acme-ai/x"); sb.child_pids()

Options of `run_sandbox`/`Sandbox`: `env_overrides` (forced into every Space's environment, default
`{"LLM_ENGINE": "echo"}` because model weights cannot be downloaded), `health_timeout` (s, default 60),
`health_interval` (s, default 0.1), `fault_seed`. From a shell: `invoke sandbox [--port N] [--data DIR]
[--config PATH] [--owner NAME]` prints `HF_ENDPOINT=...` and `HF_TOKEN=...` first, then serves until
Ctrl-C/SIGTERM and stops every Space process.

Control routes (`/_sandbox/*`, not part of the Hub, no auth, never faulted):

- `GET /_sandbox/stats` -> `{"spaces": {id: {"builds", "restarts", "write_calls", "writes_by_route"}},
  "total": {"write_calls", "builds", "restarts"}, "faults": {"injected"}}`. Every mutating Hub call that
  reaches the API counts as a write of its Space (create, delete, settings, commit, secret/variable
  add/delete, hardware, sleep time, pause, restart, duplicate), whatever its outcome; reads, preupload
  and validate-yaml do not. Builds: commits, factory reboots, duplicates (not the creation commit).
  Restarts: secret/variable/hardware changes and `restart_space`. Counters outlive deleted Spaces.
- `GET|POST|DELETE /_sandbox/faults`: read, replace or clear the fault plan. POST takes a list of
  rules or `{"rules": [...]}`; a rule is `{"route": regex on "METHOD /path", "latency_ms", "status",
  "retry_after", "count" | "rate", "drop_connection", "message"}` (see `infra.sandbox.faults`).
- `GET /_sandbox/spaces/{ns}/{name}/logs` -> `{"stage", "error", "build": [...], "run": [...]}`.
- `POST /_sandbox/spaces/{ns}/{name}/stage` `{"stage": "SLEEPING", "error": "optional message"}`: force
  a stage. `RUNNING` starts the Space (no restart counted); any other stage (SLEEPING, BUILDING,
  PAUSED, RUNTIME_ERROR, ...) stops its process and stays there until the next commit/restart.
- `POST /_sandbox/users` `{"name", "orgs": {org: role} | [org], "token_role": "write"|"read"}` -> token.
- `GET /_sandbox/processes` -> pids of live Space processes; `GET /_sandbox/health`.

Modelled, with the Hub's request and response shapes as `huggingface_hub` 2.4 reads them:
whoami-v2; create_repo for Spaces (sdk, hardware, sleep time, secrets, variables, visibility, 409 with
`url` for exist_ok); delete_repo; update_repo_settings (visibility, gated); space_info/repo_info (also
at a revision, `files_metadata` -> sizes and git blob ids, `expand`); list_spaces (author/search);
list_repo_files/list_repo_tree (recursive, expand, Link pagination); get_paths_info; file_exists;
hf_hub_download / get_hf_file_metadata (`/spaces/{id}/resolve/{rev}/{path}`, HEAD and GET, ETag =
blob id, X-Repo-Commit, Content-Length, Range); create_commit (validate-yaml, preupload with
`uploadMode`/`shouldIgnore`/`oid` so unchanged files and empty commits are skipped client-side, NDJSON
commit with file/deletedFile/deletedFolder, copies as the client sends them, `parentCommit` -> 412 "A
commit has happened since"); list_repo_commits; list_repo_refs; get_space_runtime / wait_for_space;
request_space_hardware; set_space_sleep_time; pause_space; restart_space (and factory reboot);
add/delete/get secrets (values write-only) and variables; duplicate_repo for Spaces (history and
variables copied, secrets from the call); fetch_space_logs (build and run, SSE). Errors: status,
`X-Error-Code` (RepoNotFound, RevisionNotFound, EntryNotFound), `X-Error-Message` and `{"error": ...}`;
anonymous reads of public Spaces are allowed, anything else anonymous is 401; a bad token is 401
"Invalid credentials in Authorization header"; private Spaces of others are 404, writes to others'
namespaces 403. Blob, tree and commit ids are real git object ids (40-hex).

Lifecycle: create -> NO_APP_FILE; commit -> BUILDING -> child `python -u app.py` (cwd = the files of the
head commit, env = PATH/HOME/LANG..., SYSTEM=spaces, SPACE_ID, SPACE_AUTHOR_NAME, SPACE_REPO_NAME,
SPACE_HOST, the Space's variables and secrets, PORT, HOST=127.0.0.1, then `env_overrides`) -> RUNNING
once `GET /health` is 200; `host` in space_info is `http://127.0.0.1:<port>` (stable per Space while
the port is free). No app.py -> BUILD_ERROR (NO_APP_FILE without a Dockerfile either); app.py that does
not compile -> BUILD_ERROR; invalid README front matter -> CONFIG_ERROR; exit or no 200 within
`health_timeout` -> RUNTIME_ERROR with `errorMessage`; logs kept. Secret/variable/hardware changes
and restart_space -> APP_STARTING -> RUNNING (a PAUSED Space stays paused); pause stops the process;
delete stops it. Builds and restarts run in background threads; the API answers at once.

Not modelled (answer 501, or documented simplification): model and dataset repos; branches other than
`main`, tags, pull requests (`create_pr`), hot reload; LFS/Xet uploads (preupload always answers
`regular`; binary files are stored as regular blobs, so `lfs` is never set); Docker (the Dockerfile and
requirements.txt are stored but not executed: the sandbox's own Python environment runs app.py);
`app_port` (the app gets PORT); the old revision keeps serving during a rebuild on the Hub
(RUNNING_BUILDING) - here it is stopped first; sleeping after `gcTimeout` inactivity and waking on a
request (use the forced SLEEPING stage); Space templates, volumes, dev mode, collections, discussions,
likes, gating workflows, rate-limit headers (inject 429s through the fault plan instead); streaming
`follow=True` logs (the stream ends after the buffered lines).

Persistence: with a data directory, `state.json` (mode 0600: it holds Space secrets, as the Hub does)
and `blobs/` keep repos, commits, files, settings, secrets, users/tokens and counters across restarts;
Spaces that were running or starting are started again. Space processes run under `DIR/runtime`.
Without it, everything is in memory and files are materialised in a temporary directory.

Children never outlive the sandbox: process groups stopped with SIGTERM then SIGKILL on stop, Ctrl-C
and SIGTERM of `invoke sandbox`, an atexit hook, and PR_SET_PDEATHSIG on Linux if the parent is killed.

Modules: `state` (store + persistence), `auth` (users, tokens, orgs), `hub` (Hub semantics),
`api` (Hub routes), `runtime` (process supervisor), `faults` (fault plan + middleware), `control`
(`/_sandbox/*`), `server` (uvicorn thread, `run_sandbox`, `serve_forever`), `hashing` (git ids).
"""

from infra.sandbox.faults import FaultRule
from infra.sandbox.server import Sandbox, run_sandbox

__all__ = ["FaultRule", "Sandbox", "run_sandbox"]
