"""Nothing tracked by git looks like a live credential (the declaration holds references only)."""

from __future__ import annotations

import re
import subprocess

from support import ROOT

CREDENTIAL = re.compile(rb"(hf_[A-Za-z0-9]{30,}|sk-[A-Za-z0-9]{32,}|AKIA[0-9A-Z]{16}|ghp_[A-Za-z0-9]{36})")


def test_no_tracked_file_contains_a_credential() -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    offenders = []
    for name in filter(None, files):
        path = ROOT / name.decode()
        if path.is_file() and CREDENTIAL.search(path.read_bytes()):
            offenders.append(name.decode())
    assert files and not offenders, f"credential-shaped strings in: {offenders}"
