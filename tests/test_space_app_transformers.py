"""The rendered Space app with LLM_ENGINE=transformers, against a fake `transformers` package.

The fake mimics the transformers 5 shapes the app relies on (apply_chat_template returning a
dict-like BatchEncoding, `generate(**inputs)`, prompt + new tokens in the output, special tokens
dropped by `decode`) and loads slowly, so the tests see /health go 503 "loading" -> 200, and a
slow generation in flight while /health still answers at once. No torch, no download.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import pytest
from support import CONFIG

from infra.local_space import free_port
from infra.render import render_space, write_space
from infra.spec import load_declaration

KEY = "space-key-for-tests"  # noqa: S105
MODEL = "acme-ai/acme-llm"
LOAD_DELAY = 1.5  # seconds the fake from_pretrained takes
SLOW_GENERATE = 1.0  # seconds the fake generate takes when the last user message contains "slow"

FAKE_TRANSFORMERS = textwrap.dedent('''
    """Test double for `transformers` 5: the few calls the Space app makes, with their return shapes."""

    import os
    import time

    SPECIAL = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
    VOCAB = {word: index for index, word in enumerate(SPECIAL)}
    WORDS = dict(enumerate(SPECIAL))
    EOS = VOCAB["<|endoftext|>"]


    def token_id(word):
        if word not in VOCAB:
            VOCAB[word] = len(VOCAB)
            WORDS[VOCAB[word]] = word
        return VOCAB[word]


    class Tensor:
        """A 2-D batch of token ids with `.shape` and `.to(device)`, like a torch tensor."""

        def __init__(self, rows, device="cpu"):
            self.rows, self.device = rows, device

        @property
        def shape(self):
            return (len(self.rows), len(self.rows[0]))

        def to(self, device):
            return Tensor(self.rows, device)

        def __getitem__(self, index):
            return self.rows[index]


    class BatchEncoding(dict):
        """Dict-like, as in transformers: no `.shape`, `.to(device)` moves every tensor and returns self."""

        def to(self, device):
            for name, value in self.items():
                self[name] = value.to(device)
            return self


    class Tokenizer:
        def apply_chat_template(self, messages, add_generation_prompt=False, return_dict=True,
                                return_tensors=None, **kwargs):
            assert add_generation_prompt and return_tensors == "pt", (add_generation_prompt, return_tensors)
            ids = []
            for message in messages:
                ids += [VOCAB["<|im_start|>"], token_id(message["role"])]
                ids += [token_id(word) for word in message["content"].split()] + [VOCAB["<|im_end|>"]]
            ids += [VOCAB["<|im_start|>"], token_id("assistant")]
            input_ids = Tensor([ids])
            if not return_dict:
                return input_ids
            return BatchEncoding(input_ids=input_ids, attention_mask=Tensor([[1] * len(ids)]))

        def decode(self, ids, skip_special_tokens=False):
            return " ".join(WORDS[i] for i in ids if not (skip_special_tokens and WORDS[i] in SPECIAL))


    class Model:
        device = "fake:0"

        def generate(self, input_ids=None, attention_mask=None, *, max_new_tokens, **sampling):
            assert isinstance(input_ids, Tensor) and input_ids.device == self.device, input_ids
            assert attention_mask is not None and attention_mask.shape == input_ids.shape
            prompt = input_ids[0]
            # The reply: "fake", the sampling used, then the last user message (the words after its role).
            last_user = max(i for i, token in enumerate(prompt) if WORDS[token] == "user") + 1
            user_words = [WORDS[t] for t in prompt[last_user:prompt.index(VOCAB["<|im_end|>"], last_user)]]
            if "slow" in user_words:
                time.sleep(float(os.environ["FAKE_SLOW_GENERATE"]))
            temperature = sampling.get("temperature", "greedy") if sampling.get("do_sample") else "greedy"
            reply = [token_id(w) for w in ["fake", f"t={temperature}", *user_words]] + [EOS]
            return Tensor([prompt + reply[:max_new_tokens]])


    def _load(model_id, kwargs, delay=0.0):
        time.sleep(delay)
        if os.environ.get("FAKE_LOAD_ERROR"):
            raise OSError(os.environ["FAKE_LOAD_ERROR"])
        assert model_id == os.environ["FAKE_EXPECTED_MODEL"], model_id
        assert kwargs.get("token") == os.environ["HF_TOKEN"], kwargs


    class AutoTokenizer:
        @staticmethod
        def from_pretrained(model_id, **kwargs):
            _load(model_id, kwargs)
            return Tokenizer()


    class AutoModelForCausalLM:
        @staticmethod
        def from_pretrained(model_id, **kwargs):
            _load(model_id, kwargs, delay=float(os.environ["FAKE_LOAD_DELAY"]))
            return Model()
''')


@dataclass
class App:
    url: str
    process: subprocess.Popen
    log: Path
    seen: list[tuple[int, dict]] = field(default_factory=list)  # /health answers while starting

    def health(self) -> tuple[int, dict]:
        response = httpx.get(f"{self.url}/health", timeout=5)
        return response.status_code, response.json()

    def wait_health(self, done: Callable[[int, dict], bool], timeout: float = 15) -> tuple[int, dict]:
        """Poll /health, recording every answer, until `done(status, body)`; fail if the app exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"app exited early:\n{self.log.read_text()}"
            try:
                answer = self.health()
            except httpx.TransportError:
                time.sleep(0.02)
                continue
            self.seen.append(answer)
            if done(*answer):
                return answer
            time.sleep(0.05)
        raise AssertionError(f"/health never got there; seen {self.seen}\n{self.log.read_text()}")

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=KEY, max_retries=0, timeout=15)


@contextmanager
def run_transformers_app(root: Path, **fake_env: str) -> Iterator[App]:
    """Render the company Space into root/space, the fake package into root/fakes; run `python app.py`."""
    write_space(render_space(load_declaration(CONFIG, environ={}), "staging", "company"), root / "space")
    (root / "fakes" / "transformers").mkdir(parents=True, exist_ok=True)
    (root / "fakes" / "transformers" / "__init__.py").write_text(FAKE_TRANSFORMERS, encoding="utf-8")
    port = free_port()
    python_path = os.pathsep.join(p for p in (str(root / "fakes"), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": python_path, "LLM_ENGINE": "transformers", "SPACE_API_KEY": KEY,
           "HF_TOKEN": "hf-test-token", "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "warning",
           "FAKE_LOAD_DELAY": str(LOAD_DELAY), "FAKE_SLOW_GENERATE": str(SLOW_GENERATE),
           "FAKE_EXPECTED_MODEL": MODEL, **fake_env}
    log_path = root / "app.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=root / "space", env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield App(f"http://127.0.0.1:{port}", process, log_path)
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class Started:
    app: App
    models_while_loading: httpx.Response


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    with run_transformers_app(tmp_path_factory.mktemp("transformers-space")) as app:
        app.wait_health(lambda status, body: True)  # the first answer, while the fake is still loading
        models = httpx.get(f"{app.url}/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=5)
        app.wait_health(lambda status, body: status == 200)
        yield Started(app, models)


def test_health_is_503_loading_until_the_model_is_loaded(started: Started) -> None:
    loading = {"status": "loading", "model": MODEL, "engine": "transformers"}
    assert started.app.seen[0] == (503, loading)
    assert started.app.seen[-1] == (200, {"status": "ok", "model": MODEL, "engine": "transformers",
                                          "tier": "company"})
    assert {answer for answer, _ in started.app.seen} == {503, 200}
    assert started.models_while_loading.status_code == 503
    assert started.models_while_loading.json()["error"]["code"] == "model_loading"


def test_completion_decodes_only_the_new_tokens(started: Started) -> None:
    reply = started.app.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello fake model"}])
    # The prompt (system prompt, chat markup) is sliced off, special tokens skipped, sampling passed on.
    assert reply.choices[0].message.content == "fake t=0.3 hello fake model"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens == 6  # five words and the end-of-text token


def test_max_tokens_caps_new_tokens_with_finish_reason_length(started: Started) -> None:
    reply = started.app.client().chat.completions.create(
        model=MODEL, max_tokens=3, temperature=0, messages=[{"role": "user", "content": "one two three"}])
    assert reply.choices[0].message.content == "fake t=greedy one"
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 3


def test_stream_through_the_openai_client(started: Started) -> None:
    chunks = list(started.app.client().chat.completions.create(
        model=MODEL, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "stream this reply"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "fake t=0.3 stream this reply"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6


def test_health_answers_at_once_while_a_slow_generation_runs(started: Started) -> None:
    client = started.app.client()
    with ThreadPoolExecutor(max_workers=1) as pool:
        started_at = time.monotonic()
        slow = pool.submit(client.chat.completions.create, model=MODEL,
                           messages=[{"role": "user", "content": "a slow one"}])
        time.sleep(0.3)  # the request is in the fake generate by now
        before = time.monotonic()
        status, _ = started.app.health()
        health_took = time.monotonic() - before
        in_flight = not slow.done()
        reply = slow.result(timeout=15)
    assert status == 200
    assert in_flight, "the slow generation should still be running when /health answered"
    assert health_took < 0.5, f"/health took {health_took:.2f}s: generation is blocking the event loop"
    assert time.monotonic() - started_at >= SLOW_GENERATE
    assert reply.choices[0].message.content == "fake t=0.3 a slow one"


def test_a_loader_that_raises_gives_503_error_everywhere(tmp_path: Path) -> None:
    message = f"{MODEL} is not a local folder and is not a valid model identifier"
    with run_transformers_app(tmp_path, FAKE_LOAD_DELAY="0.2", FAKE_LOAD_ERROR=message) as app:
        status, body = app.wait_health(lambda status, body: body.get("status") == "error")
        assert status == 503
        assert body == {"status": "error", "model": MODEL, "engine": "transformers"}, "no detail without the key"
        models = httpx.get(f"{app.url}/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=5)
        assert models.status_code == 503
        assert models.json()["error"]["code"] == "model_load_failed"
        with pytest.raises(openai.InternalServerError) as caught:
            app.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
        assert caught.value.status_code == 503
        assert message in caught.value.body["message"]
        assert app.process.poll() is None, "a failed load is reported, not fatal"
