"""Flag document, file store, SSM store (moto in-process), operations and the cached reader."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from infra.errors import UserError
from infra.flags import (
    CachedFlagReader,
    FileFlagStore,
    FlagChange,
    FlagConflictError,
    FlagDocument,
    FlagDocumentError,
    FlagStoreError,
    SSMFlagStore,
    apply_change,
    decide_route,
    parse_document,
    rollback_to_openai,
)
from infra.flags.document import bucket
from infra.flags.operations import parse_percentages, parse_provider, parse_tier_switches

PARAM = "/triple-llm/test/flags"
TIERS = ("base", "company", "abstraction")


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("FLAGS_ACTOR", "tester")


def doc(version: int = 1, provider: str = "huggingface", **kwargs: object) -> FlagDocument:
    return FlagDocument(provider=provider, tiers=kwargs.pop("tiers", dict.fromkeys(TIERS, True)),
                        version=version, updated_at=datetime(2025, 1, 1, tzinfo=UTC),
                        updated_by="tester", reason="test", **kwargs)


@pytest.fixture
def ssm_store():
    with mock_aws():
        yield SSMFlagStore(PARAM, client=boto3.client("ssm", region_name="eu-west-1"))


@pytest.fixture
def file_store(tmp_path):
    return FileFlagStore(tmp_path / ".flags" / "test.json")


@pytest.fixture(params=["ssm", "file"])
def store(request, tmp_path):
    if request.param == "file":
        yield FileFlagStore(tmp_path / "flags.json")
    else:
        with mock_aws():
            yield SSMFlagStore(PARAM, client=boto3.client("ssm", region_name="eu-west-1"))


# --- document ----------------------------------------------------------------------------------


def test_document_round_trips_through_json() -> None:
    original = doc(percentages={"company": 25})
    assert parse_document(original.to_json(), source="test") == original


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        ({"provider": "anthropic"}, "provider: Input should be 'openai' or 'huggingface'"),
        ({"tiers": {"base": "maybe"}}, "tiers.base: Input should be a valid boolean"),
        ({"percentages": {"base": 150}}, "percentage for 'base' is 150; valid: 0-100"),
        ({"percentages": {"ghost": 10}}, "percentages name tiers not in tiers: ghost"),
        ({"version": -1}, "version: Input should be greater than or equal to 0"),
        ({"schema_version": 7}, "schema_version: Input should be 1"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted (valid fields: schema_version"),
        ({"tiers": {}}, "tiers must name at least one tier"),
        ({"reason": ""}, "reason: String should have at least 1 character"),
    ],
)
def test_bad_documents_name_the_field_and_what_is_valid(mutate: dict, expected: str) -> None:
    raw = json.loads(doc().to_json()) | mutate
    with pytest.raises(FlagDocumentError) as info:
        parse_document(json.dumps(raw), source="unit")
    assert "flag document from unit is invalid" in str(info.value)
    assert expected in str(info.value)


def test_missing_field_and_non_json_are_clear() -> None:
    raw = json.loads(doc().to_json())
    del raw["provider"]
    with pytest.raises(FlagDocumentError, match=r"provider: Field required \(valid: openai or huggingface\)"):
        parse_document(json.dumps(raw), source="x")
    with pytest.raises(FlagDocumentError, match="is not valid JSON"):
        parse_document("{nope", source="x")
    with pytest.raises(FlagDocumentError, match="must be a JSON object, got list"):
        parse_document("[1]", source="x")


def test_routing_rules() -> None:
    assert decide_route(None, "base", "r").provider == "openai"
    assert decide_route(doc(provider="openai"), "base", "r").reason == "provider-openai"
    off = doc(tiers={"base": False, "company": True})
    assert decide_route(off, "base", "r").reason == "tier-off"
    assert decide_route(off, "abstraction", "r").reason == "tier-off"  # unknown tier: off
    assert decide_route(off, "company", "r") == decide_route(off, "company", "r")
    assert decide_route(off, "company", "r").provider == "huggingface"


def test_percentage_routing_is_deterministic_and_proportional() -> None:
    flags = doc(percentages={"company": 25, "base": 0})
    ids = [f"req-{i}" for i in range(4000)]
    to_hf = [i for i in ids if decide_route(flags, "company", i).provider == "huggingface"]
    assert 0.21 < len(to_hf) / len(ids) < 0.29
    assert all(bucket("company", i) < 25 for i in to_hf)
    assert all(decide_route(flags, "base", i).provider == "openai" for i in ids[:200])
    assert all(decide_route(flags, "abstraction", i).provider == "huggingface" for i in ids[:200])


# --- stores (both kinds) -----------------------------------------------------------------------


def test_empty_store_reads_as_nothing(store) -> None:
    snap = store.snapshot()
    assert snap.document is None and snap.revision is None and snap.problem is None
    assert store.history() == []


def test_write_read_and_history(store) -> None:
    first = store.write(doc(1), expected_revision=None)
    assert first.document == doc(1)
    second = store.write(doc(2, provider="openai"), expected_revision=first.revision)
    assert second.revision != first.revision
    assert store.snapshot().document == doc(2, provider="openai")
    history = store.history()
    assert [entry.document.version for entry in history] == [2, 1]
    assert history[0].document.provider == "openai"
    assert [e.document.version for e in store.history(limit=1)] == [2]


def test_stale_writer_is_refused(store) -> None:
    first = store.write(doc(1), expected_revision=None)
    store.write(doc(2), expected_revision=first.revision)  # someone else
    with pytest.raises(FlagConflictError, match="changed since they were read"):
        store.write(doc(3, provider="openai"), expected_revision=first.revision)
    assert store.snapshot().document.version == 2


def test_second_first_writer_is_refused(store) -> None:
    store.write(doc(1), expected_revision=None)
    with pytest.raises(FlagConflictError):
        store.write(doc(1, provider="openai"), expected_revision=None)


def test_versions_only_move_forward(store) -> None:
    first = store.write(doc(5), expected_revision=None)
    with pytest.raises(FlagConflictError, match="already holds version 5"):
        store.write(doc(5, provider="openai"), expected_revision=first.revision)


def test_invalid_stored_text_is_reported_then_rollback_repairs_it(store) -> None:
    first = store.write(doc(4), expected_revision=None)
    if isinstance(store, SSMFlagStore):
        store.client.put_parameter(Name=PARAM, Value='{"provider": "azure"}', Type="String", Overwrite=True)
    else:
        store.path.write_text('{"provider": "azure"}')
    snap = store.snapshot()
    assert snap.document is None and snap.revision != first.revision
    assert "provider: Input should be 'openai' or 'huggingface'" in snap.problem
    with pytest.raises(FlagDocumentError):
        snap.require()
    with pytest.raises(UserError, match="partial change cannot be applied"):
        apply_change(store, FlagChange(tiers={"base": False}), reason="x")
    result = rollback_to_openai(store, reason="repair")
    assert result.before.problem is not None
    assert result.after.document.provider == "openai"
    assert result.after.document.version == 5  # continues after the last valid version


# --- SSM specifics -----------------------------------------------------------------------------


class RacingClient:
    """A boto3 client whose next put is preceded (or followed) by another writer's put."""

    def __init__(self, client, *, before: bool) -> None:
        self._client, self._before = client, before
        self.meta = client.meta

    def __getattr__(self, name):
        return getattr(self._client, name)

    def put_parameter(self, **kwargs):
        other = doc(99, provider="huggingface").to_json()
        if self._before:
            self._client.put_parameter(Name=kwargs["Name"], Value=other, Type="String", Overwrite=True)
        response = self._client.put_parameter(**kwargs)
        if not self._before:
            self._client.put_parameter(Name=kwargs["Name"], Value=other, Type="String", Overwrite=True)
        return response


@pytest.mark.parametrize("before", [True, False], ids=["racer-before-put", "racer-after-put"])
def test_ssm_racing_writer_is_detected(ssm_store, before: bool) -> None:
    first = ssm_store.write(doc(1), expected_revision=None)
    racing = SSMFlagStore(PARAM, client=RacingClient(ssm_store.client, before=before))
    with pytest.raises(FlagConflictError, match="another writer"):
        racing.write(doc(2, provider="openai"), expected_revision=first.revision)
    # Nothing was silently lost: both writes are in the parameter history.
    versions = {entry.document.version for entry in ssm_store.history(10)}
    assert {1, 2, 99} <= versions


def test_ssm_history_pages_and_records_dates(ssm_store) -> None:
    snap = ssm_store.write(doc(1), expected_revision=None)
    for version in range(2, 63):
        snap = ssm_store.write(doc(version), expected_revision=snap.revision)
    history = ssm_store.history(limit=100)
    assert [e.document.version for e in history[:3]] == [62, 61, 60]
    assert len(history) == 62
    assert history[0].modified_at is not None


def test_ssm_parameter_name_must_be_a_path() -> None:
    with pytest.raises(FlagStoreError, match="must be a path"):
        SSMFlagStore("flags", client=object())


def test_ssm_store_down_is_a_clear_bounded_error(monkeypatch) -> None:
    from infra.flags.ssm import make_ssm_client

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # closed port
    store = SSMFlagStore(PARAM, client=make_ssm_client(connect_timeout=0.2, read_timeout=0.2, max_attempts=1))
    expected = r"reading ssm:/triple-llm/test/flags \(eu-west-1\) failed: EndpointConnectionError"
    with pytest.raises(FlagStoreError, match=expected):
        store.snapshot()
    with pytest.raises(FlagStoreError) as info:
        store.write(doc(1), expected_revision=None)
    assert "testing" not in str(info.value)  # the fake secret key never shows


# --- file specifics ----------------------------------------------------------------------------


def test_file_store_is_atomic_and_keeps_history_beside_it(file_store) -> None:
    snap = file_store.write(doc(1), expected_revision=None)
    file_store.write(doc(2), expected_revision=snap.revision)
    files = sorted(p.name for p in file_store.path.parent.iterdir())
    assert files == ["test.history.jsonl", "test.json", "test.json.lock"]  # no temp files left
    lines = file_store.history_path.read_text().splitlines()
    assert [json.loads(line)["document"]["version"] for line in lines] == [1, 2]


def test_file_store_concurrent_writers_never_lose_a_write(file_store) -> None:
    file_store.write(doc(0), expected_revision=None)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def writer() -> None:
        snap = file_store.snapshot()
        barrier.wait()
        try:
            file_store.write(doc(snap.document.version + 1, provider="openai"), expected_revision=snap.revision)
            outcomes.append("ok")
        except FlagConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("ok") == 1 and outcomes.count("conflict") == 7
    assert [e.document.version for e in file_store.history()] == [1, 0]


def test_file_history_reports_bad_lines(file_store) -> None:
    file_store.write(doc(1), expected_revision=None)
    with open(file_store.history_path, "a") as handle:
        handle.write("garbage\n")
    history = file_store.history()
    assert history[0].document is None and "test.history.jsonl:2" in history[0].problem
    assert history[1].document.version == 1


def test_unreadable_file_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "flags.json").mkdir()  # a directory where the file should be
    with pytest.raises(FlagStoreError, match="reading file:.*flags.json failed after 3 attempts"):
        FileFlagStore(tmp_path / "flags.json").snapshot()


# --- operations --------------------------------------------------------------------------------


def test_apply_change_from_empty_uses_initial_and_keeps_the_rest(store) -> None:
    initial = doc(0, provider="openai", tiers={"base": True, "company": False, "abstraction": True})
    result = apply_change(store, FlagChange(provider="huggingface", percentages={"base": 10}),
                          reason="start", initial=initial)
    after = result.after.document
    assert result.before.document is None
    assert (after.version, after.provider, after.tiers["company"], after.percentages) == (
        1, "huggingface", False, {"base": 10})
    assert after.updated_by == "tester" and after.reason == "start"
    again = apply_change(store, FlagChange(tiers={"company": True}, percentages={"base": None}), reason="more")
    assert again.after.document.tiers == dict.fromkeys(TIERS, True)
    assert again.after.document.percentages == {}
    assert again.after.document.provider == "huggingface"


def test_rollback_keeps_switches_and_needs_a_reason(store) -> None:
    apply_change(store, FlagChange(provider="huggingface", tiers={"company": False},
                                   percentages={"base": 30}), reason="rollout")
    with pytest.raises(UserError, match="--reason is required"):
        rollback_to_openai(store, reason="  ")
    result = rollback_to_openai(store, reason="incident 42")
    assert result.before.document.provider == "huggingface"
    after = result.after.document
    assert (after.provider, after.tiers["company"], after.percentages, after.reason) == (
        "openai", False, {"base": 30}, "incident 42")


def test_rollback_retries_a_conflict_but_change_does_not(ssm_store) -> None:
    apply_change(ssm_store, FlagChange(provider="huggingface"), reason="rollout")
    racing = SSMFlagStore(PARAM, client=RacingClient(ssm_store.client, before=True))
    with pytest.raises(FlagConflictError):
        apply_change(racing, FlagChange(tiers={"base": False}), reason="x")
    flaky = SSMFlagStore(PARAM, client=ssm_store.client)
    calls = {"n": 0}
    real_write = flaky.write

    def write_once_conflicting(document, *, expected_revision):
        calls["n"] += 1
        if calls["n"] == 1:
            raise FlagConflictError("simulated")
        return real_write(document, expected_revision=expected_revision)

    flaky.write = write_once_conflicting
    result = rollback_to_openai(flaky, reason="incident")
    assert calls["n"] == 2 and result.after.document.provider == "openai"


def test_option_parsing_names_what_is_valid() -> None:
    assert parse_tier_switches(["base=on", "company=OFF"], TIERS) == {"base": True, "company": False}
    assert parse_percentages(["company=25", "base=none", "abstraction=100%"], TIERS) == {
        "company": 25, "base": None, "abstraction": 100}
    assert parse_provider("HuggingFace") == "huggingface"
    with pytest.raises(UserError, match="unknown tier 'gold'; valid: base, company, abstraction"):
        parse_tier_switches(["gold=on"], TIERS)
    with pytest.raises(UserError, match="valid: on or off"):
        parse_tier_switches(["base=maybe"], TIERS)
    with pytest.raises(UserError, match="expected TIER=on|off"):
        parse_tier_switches(["base"], TIERS)
    with pytest.raises(UserError, match="valid: an integer 0-100 or none"):
        parse_percentages(["base=101"], TIERS)
    with pytest.raises(UserError, match="valid: openai or huggingface"):
        parse_provider("azure")


# --- cached reader -----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FlakyStore:
    """Wraps a store; `down` makes reads fail like an unreachable backend."""

    def __init__(self, inner) -> None:
        self.inner, self.down, self.reads = inner, False, 0
        self.description = "flaky"

    def snapshot(self):
        self.reads += 1
        if self.down:
            raise FlagStoreError("store unreachable")
        return self.inner.snapshot()


def test_reader_caches_for_ttl_then_refreshes(file_store) -> None:
    clock = Clock()
    flaky = FlakyStore(file_store)
    reader = CachedFlagReader(flaky, ttl=3.0, clock=clock)
    assert reader.get() is None and flaky.reads == 1  # never written: None (route to OpenAI)
    snap = file_store.write(doc(1), expected_revision=None)
    clock.now = 2.9
    assert reader.get() is None and flaky.reads == 1
    clock.now = 3.1
    assert reader.get().version == 1 and flaky.reads == 2
    file_store.write(doc(2, provider="openai"), expected_revision=snap.revision)
    reader.invalidate()
    assert reader.get().provider == "openai"


def test_reader_keeps_last_value_when_store_is_down(file_store) -> None:
    clock = Clock()
    file_store.write(doc(1), expected_revision=None)
    flaky = FlakyStore(file_store)
    reader = CachedFlagReader(flaky, ttl=1.0, clock=clock)
    assert reader.get().provider == "huggingface"
    flaky.down = True
    clock.now = 5
    assert reader.get().provider == "huggingface"
    assert reader.failure_count == 1 and "unreachable" in reader.last_error
    assert reader.get() is not None and flaky.reads == 2  # failures also wait a TTL before retrying
    flaky.down = False
    clock.now = 10
    assert reader.get().version == 1 and reader.last_error is None


def test_reader_never_read_means_none(file_store) -> None:
    flaky = FlakyStore(file_store)
    flaky.down = True
    reader = CachedFlagReader(flaky, ttl=1.0, clock=Clock())
    assert reader.get() is None
    assert decide_route(reader.get(), "base", "r").provider == "openai"


def test_reader_is_thread_safe_and_reads_once_per_ttl(file_store) -> None:
    file_store.write(doc(1), expected_revision=None)
    flaky = FlakyStore(file_store)
    reader = CachedFlagReader(flaky, ttl=60)
    results: list[object] = []

    def worker() -> None:
        for _ in range(200):
            results.append(reader.get())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert flaky.reads == 1
    assert all(r is not None and r.version == 1 for r in results)
