"""`serve_space_locally` never leaves a Space app behind: not on a normal or failing exit of the
context (the child is stopped and reaped), and not when its parent is SIGKILLed and runs no clean-up
at all (the kernel's parent-death signal, set by the sandbox runtime's post-exec bootstrap)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from support import CONFIG, ROOT

from infra.local_space import serve_space_locally
from infra.render import render_space
from infra.spec import load_declaration

KEY = "space-key-for-tests"  # noqa: S105

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG")


def children_of(ppid: int) -> set[int]:
    """Live pids whose parent is `ppid` (from /proc, so no helper library is needed)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # state, ppid, ... after "pid (comm) "
        if int(fields[1]) == ppid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (an orphan's zombie may wait for a lax init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=0.5).status_code == 200
    except httpx.TransportError:
        return False


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_child_is_stopped_and_reaped_when_the_context_exits() -> None:
    files = render_space(load_declaration(CONFIG, environ={}), "staging", "company")
    before = children_of(os.getpid())
    with serve_space_locally(files, {"SPACE_API_KEY": KEY}) as url:
        (pid,) = children_of(os.getpid()) - before
        assert answers(url) and running(pid)
    assert not Path(f"/proc/{pid}").exists()  # gone and reaped: no zombie left behind
    assert not answers(url)

    before = children_of(os.getpid())
    with pytest.raises(RuntimeError, match="caller failed"), serve_space_locally(files, {"SPACE_API_KEY": KEY}):
        (pid,) = children_of(os.getpid()) - before
        raise RuntimeError("caller failed")
    assert not Path(f"/proc/{pid}").exists()


PARENT = textwrap.dedent("""
    import json, os, sys, time
    sys.path.insert(0, sys.argv[1])
    from infra.local_space import serve_space_locally
    from infra.render import render_space
    from infra.spec import load_declaration

    files = render_space(load_declaration(sys.argv[2], environ={}), "staging", "company")
    with serve_space_locally(files, {"SPACE_API_KEY": "k"}) as url:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and p != str(os.getpid())]
        mine = []
        for pid in pids:
            try:
                stat = open(f"/proc/{pid}/stat").read()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == os.getpid():
                mine.append(pid)
        print(json.dumps({"url": url, "pids": mine}), flush=True)
        time.sleep(600)  # until SIGKILLed: no finally, no atexit, nothing of ours runs
""")


def test_app_dies_with_a_sigkilled_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(ROOT), str(CONFIG)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        line = parent.stdout.readline()
        assert line, "the parent exited before serving the Space"
        started = json.loads(line)
        pids, url = started["pids"], started["url"]
        assert len(pids) == 1 and running(pids[0]) and answers(url)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert wait_until(lambda: not running(pids[0]), timeout=5), "the Space app outlived its SIGKILLed parent"
        assert not answers(url)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in pids:  # clean up an orphan if the assertion above failed
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        if parent.stdout:
            parent.stdout.close()
