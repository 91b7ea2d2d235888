"""OpenAIChatBackend against real HTTP servers (scripted failures on 127.0.0.1, and llama.cpp's
server with the bundled SmolLM2 model), FunctionBackend, request validation and
query_probabilities (retry, fall-back to the prior, counters)."""

from __future__ import annotations

import json
import logging
import math
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from jaxsim.llm import (
    CacheMissError,
    CachedBackend,
    ChatRequest,
    FunctionBackend,
    OpenAIChatBackend,
    ResponseCache,
    SamplingSettings,
    query_probabilities,
)
from jaxsim.llm.query import PROBABILITY_SCHEMA, RETRY_MESSAGE

# --------------------------------------------------------------------------------------
# A real HTTP server on 127.0.0.1 whose replies a test scripts
# --------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: object = None  # dict -> JSON, str/bytes -> as is
    delay_s: float = 0.0
    headers: dict = field(default_factory=dict)


def completion(text: str) -> dict:
    return {"id": "x", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}


class ScriptedServer:
    """``respond(index, payload, headers) -> Reply`` answers each POST; every request is recorded."""

    def __init__(self, respond):
        self.respond = respond
        self.received: list[tuple[dict, object]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                try:
                    payload = json.loads(raw)
                except ValueError:
                    payload = raw
                with outer._lock:
                    index = len(outer.received)
                    outer.received.append((dict(self.headers), payload))
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                counted = True

                def done():  # a request stops counting before its reply leaves: the client
                    nonlocal counted  # may send its next request as soon as it has the reply
                    if counted:
                        counted = False
                        with outer._lock:
                            outer.in_flight -= 1

                try:
                    reply = outer.respond(index, payload, dict(self.headers))
                    time.sleep(reply.delay_s)
                    body = reply.body
                    if isinstance(body, dict):
                        body = json.dumps(body)
                    if isinstance(body, str):
                        body = body.encode("utf-8")
                    body = body or b""
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    done()
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)
                finally:
                    done()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def user(text="How likely are you to isolate at home this week?"):
    return ChatRequest(messages=({"role": "user", "content": text},))


FAST = dict(backoff_s=0.01, timeout_s=5.0)

# --------------------------------------------------------------------------------------
# Request and settings validation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": -0.1}, "temperature must be >= 0"),
        ({"temperature": float("nan")}, "temperature must be a finite number"),
        ({"max_tokens": 0}, "max_tokens must be >= 1"),
        ({"max_tokens": 2.5}, "max_tokens must be an int"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"seed": -1}, "seed must be >= 0"),
    ],
)
def test_sampling_settings_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SamplingSettings(**kwargs)


def test_chat_request_validation_and_seed():
    with pytest.raises(ValueError, match="messages is empty"):
        ChatRequest(messages=())
    with pytest.raises(ValueError, match=r"messages\[0\].role"):
        ChatRequest(messages=({"role": "robot", "content": "hi"},))
    with pytest.raises(ValueError, match=r"messages\[1\].content must be a str"):
        ChatRequest(messages=({"role": "user", "content": "hi"}, {"role": "user", "content": 3}))
    with pytest.raises(ValueError, match="sample_index"):
        ChatRequest(messages=({"role": "user", "content": "hi"},), sample_index=-1)
    with pytest.raises(ValueError, match="must be a sequence of message dicts"):
        ChatRequest(messages="hello")
    with pytest.raises(ValueError, match="json_schema must be plain JSON data"):
        ChatRequest(messages=({"role": "user", "content": "hi"},), json_schema={"enum": {1, 2}})
    with pytest.raises(ValueError, match="messages must be plain JSON data"):
        ChatRequest(messages=({"role": "user", "content": "hi", "name": object()},))
    message = {"role": "user", "content": "hi"}
    request = ChatRequest(messages=[message], settings=SamplingSettings(seed=10), sample_index=3)
    message["content"] = "changed"  # the request holds its own copy
    assert request.messages == ({"role": "user", "content": "hi"},)
    assert request.effective_seed == 13


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"base_url": "127.0.0.1:8080/v1"}, "must be an http"),
        ({"base_url": "ftp://host/v1"}, "must be an http"),
        ({"model": ""}, "model must be a non-empty"),
        ({"timeout_s": 0}, "timeout_s must be > 0"),
        ({"max_concurrency": 0}, "max_concurrency must be an int >= 1"),
        ({"max_retries": -1}, "max_retries must be an int >= 0"),
        ({"backoff_s": -1.0}, "backoff_s must be >= 0"),
    ],
)
def test_openai_backend_validation(kwargs, match):
    arguments = {"base_url": "http://127.0.0.1:8080/v1", "model": "m", **kwargs}
    with pytest.raises(ValueError, match=match):
        OpenAIChatBackend(**arguments)


# --------------------------------------------------------------------------------------
# Failures of the HTTP layer
# --------------------------------------------------------------------------------------


def test_request_payload_and_url():
    with ScriptedServer(lambda i, p, h: Reply(body=completion("0.3"))) as server:
        backend = OpenAIChatBackend(server.base_url + "/", "test-model", **FAST)
        settings = SamplingSettings(temperature=0.7, max_tokens=12, top_p=0.9, seed=5)
        request = ChatRequest(
            messages=({"role": "system", "content": "s"}, {"role": "user", "content": "u"}),
            settings=settings, sample_index=2,
        )
        (reply,) = backend.chat([request])
    assert reply.text == "0.3" and reply.error is None
    headers, payload = server.received[0]
    assert payload == {
        "model": "test-model",
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
        "temperature": 0.7, "top_p": 0.9, "max_tokens": 12, "seed": 7,
    }
    assert backend.url == server.base_url + "/chat/completions"
    assert "Authorization" not in headers or backend.has_api_key


def test_server_down_gives_an_error_reply_after_retries():
    backend = OpenAIChatBackend(f"http://127.0.0.1:{closed_port()}/v1", "m", max_retries=2, **FAST)
    replies = backend.chat([user(), user("second")])
    assert [r.text for r in replies] == [None, None]
    assert all("cannot connect" in r.error and "after 3 attempts" in r.error for r in replies)
    assert backend.calls == 6


def test_timeout_is_retried_then_reported():
    with ScriptedServer(lambda i, p, h: Reply(body=completion("0.5"), delay_s=3.0)) as server:
        backend = OpenAIChatBackend(server.base_url, "m", timeout_s=0.3, max_retries=1, backoff_s=0.01)
        start = time.perf_counter()
        (reply,) = backend.chat([user()])
        elapsed = time.perf_counter() - start
    assert reply.text is None and "timed out after 0.3 s" in reply.error and "after 2 attempts" in reply.error
    assert backend.calls == 2 and len(server.received) == 2
    assert elapsed < 2.5  # gave up at the timeout, did not wait for the slow reply


def test_http_500_then_success_is_retried():
    def respond(i, payload, headers):
        return Reply(status=500, body={"error": "busy"}) if i < 2 else Reply(body=completion("0.42"))

    with ScriptedServer(respond) as server:
        backend = OpenAIChatBackend(server.base_url, "m", max_retries=3, **FAST)
        (reply,) = backend.chat([user()])
    assert reply.text == "0.42"
    assert backend.calls == 3 and len(server.received) == 3


def test_http_429_is_retried_honouring_retry_after():
    def respond(i, payload, headers):
        return Reply(status=429, body="slow down", headers={"Retry-After": "0.2"}) if i == 0 else Reply(
            body=completion("0.1"))

    with ScriptedServer(respond) as server:
        backend = OpenAIChatBackend(server.base_url, "m", max_retries=1, **FAST)
        start = time.perf_counter()
        (reply,) = backend.chat([user()])
        assert time.perf_counter() - start >= 0.2
    assert reply.text == "0.1" and backend.calls == 2


def test_http_500_forever_gives_an_error_reply():
    with ScriptedServer(lambda i, p, h: Reply(status=503, body="upstream unavailable")) as server:
        backend = OpenAIChatBackend(server.base_url, "m", max_retries=2, **FAST)
        (reply,) = backend.chat([user()])
    assert reply.text is None
    assert "HTTP 503" in reply.error and "upstream unavailable" in reply.error and "after 3 attempts" in reply.error
    assert backend.calls == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_other_4xx_is_not_retried(status):
    with ScriptedServer(lambda i, p, h: Reply(status=status, body={"error": {"message": "nope"}})) as server:
        backend = OpenAIChatBackend(server.base_url, "m", max_retries=3, **FAST)
        (reply,) = backend.chat([user()])
    assert reply.text is None and f"HTTP {status}" in reply.error and "nope" in reply.error
    assert backend.calls == 1 and len(server.received) == 1


@pytest.mark.parametrize(
    "body, match",
    [
        ("<html>Bad gateway</html>", "is not JSON"),
        ('{"choices": []}', r"no choices\[0\].message.content"),
        ('{"object": "error"}', r"no choices\[0\].message.content"),
        ('{"choices": [{"message": {"role": "assistant", "content": null}}]}', "is NoneType, not text"),
    ],
)
def test_malformed_200_body_is_an_error_reply_not_retried(body, match):
    with ScriptedServer(lambda i, p, h: Reply(body=body)) as server:
        backend = OpenAIChatBackend(server.base_url, "m", max_retries=3, **FAST)
        replies = backend.chat([user(), user("again")])
    assert all(r.text is None for r in replies)
    assert all(re.search(match, r.error) for r in replies)
    assert backend.calls == 2


def test_concurrency_is_bounded_and_order_kept():
    def respond(i, payload, headers):
        return Reply(body=completion(payload["messages"][0]["content"]), delay_s=0.15)

    with ScriptedServer(respond) as server:
        backend = OpenAIChatBackend(server.base_url, "m", max_concurrency=3, **FAST)
        replies = backend.chat([user(f"q{i}") for i in range(9)])
    assert [r.text for r in replies] == [f"q{i}" for i in range(9)]
    assert server.max_in_flight <= 3
    assert server.max_in_flight >= 2  # requests did overlap


def test_server_rejecting_structured_output_falls_back_and_remembers(caplog):
    def respond(i, payload, headers):
        if "response_format" in payload:
            return Reply(status=400, body={"error": {"message": "unknown parameter: response_format"}})
        return Reply(body=completion("0.2"))

    with ScriptedServer(respond) as server, caplog.at_level(logging.WARNING, logger="jaxsim.llm.backends"):
        backend = OpenAIChatBackend(server.base_url, "m", max_concurrency=1, **FAST)
        request = ChatRequest(messages=user().messages, json_schema=PROBABILITY_SCHEMA)
        first = backend.chat([request])
        assert backend.structured_output_supported is False and backend.structured_output_format is None
        calls_after_first = backend.calls
        second = backend.chat([request, request])
    assert [r.text for r in first + second] == ["0.2"] * 3
    sent_formats = [p.get("response_format", {}).get("type") for _, p in server.received]
    # json_schema refused, then json_object refused, then plain; later requests plain at once
    assert sent_formats == ["json_schema", "json_object", None, None, None]
    assert server.received[0][1]["response_format"]["json_schema"] == {
        "name": "probability", "schema": PROBABILITY_SCHEMA, "strict": True}
    assert calls_after_first == 3 and backend.calls == 5
    assert sum("refused structured output" in r.message for r in caplog.records) == 1


#: What OpenAI answers a reasoning model (o1, o3, gpt-5) asked with ``max_tokens``.
REASONING_MODEL_REFUSAL = {"error": {
    "message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
               "Use 'max_completion_tokens' instead.",
    "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}}


def reasoning_model(i, payload, headers):
    if "max_tokens" in payload:
        return Reply(status=400, body=REASONING_MODEL_REFUSAL)
    return Reply(body=completion(f"limit {payload['max_completion_tokens']}"))


def test_a_server_refusing_max_tokens_gets_max_completion_tokens_and_keeps_it(caplog):
    settings = SamplingSettings(max_tokens=700)
    request = ChatRequest(messages=user().messages, settings=settings)
    with ScriptedServer(reasoning_model) as server, caplog.at_level(logging.WARNING, logger="jaxsim.llm.backends"):
        backend = OpenAIChatBackend(server.base_url, "o-reasoner", max_concurrency=1, **FAST)
        assert backend.token_limit_field == "max_tokens"
        first = backend.chat([request])
        assert backend.token_limit_field == "max_completion_tokens" and backend.calls == 2
        later = backend.chat([request, request])
    assert [r.text for r in first + later] == ["limit 700"] * 3
    sent = [sorted(k for k in p if k.startswith("max_")) for _, p in server.received]
    assert sent == [["max_tokens"], ["max_completion_tokens"], ["max_completion_tokens"], ["max_completion_tokens"]]
    assert backend.calls == 4  # the refusal was not retried as a failure
    assert sum("refused max_tokens" in r.message for r in caplog.records) == 1
    assert "token_limit_field='max_completion_tokens'" in repr(backend)


def test_a_fixed_token_limit_field_is_sent_as_given():
    request = ChatRequest(messages=user().messages, settings=SamplingSettings(max_tokens=9))
    with ScriptedServer(reasoning_model) as server:
        direct = OpenAIChatBackend(server.base_url, "o", token_limit_field="max_completion_tokens", **FAST)
        assert direct.chat([request])[0].text == "limit 9" and direct.calls == 1
        fixed = OpenAIChatBackend(server.base_url, "o", token_limit_field="max_tokens", max_retries=2, **FAST)
        reply = fixed.chat([request])[0]
    assert reply.text is None and "max_completion_tokens" in reply.error and "HTTP 400" in reply.error
    assert fixed.calls == 1  # a 400 is not retried
    with pytest.raises(ValueError, match="token_limit_field must be one of"):
        OpenAIChatBackend("http://127.0.0.1:1/v1", "m", token_limit_field="max_new_tokens")


def test_server_taking_json_object_only_keeps_using_it():
    def respond(i, payload, headers):
        kind = payload.get("response_format", {}).get("type")
        if kind == "json_schema":  # what llama-cpp-python's server does: HTTP 500 naming the field
            return Reply(status=500, body={"error": {"message": "('body', 'response_format', 'type') "
                                                                "Input should be 'text' or 'json_object'"}})
        return Reply(body=completion('{"probability": 0.6}'))

    with ScriptedServer(respond) as server:
        backend = OpenAIChatBackend(server.base_url, "m", max_concurrency=1, max_retries=3, **FAST)
        request = ChatRequest(messages=user().messages, json_schema=PROBABILITY_SCHEMA)
        replies = backend.chat([request, request, request])
    assert [r.text for r in replies] == ['{"probability": 0.6}'] * 3
    assert backend.structured_output_supported is True and backend.structured_output_format == "json_object"
    sent = [p.get("response_format") for _, p in server.received]
    assert sent[0]["type"] == "json_schema"  # refused once, not retried although HTTP 500
    assert sent[1:] == [{"type": "json_object", "schema": PROBABILITY_SCHEMA}] * 3


@pytest.mark.parametrize("status", [400, 404, 422])
def test_any_4xx_on_the_first_structured_request_tries_plain(status):
    def respond(i, payload, headers):
        if "response_format" in payload:
            return Reply(status=status, body={"error": {"message": "invalid request"}})
        return Reply(body=completion("0.2"))

    with ScriptedServer(respond) as server:
        backend = OpenAIChatBackend(server.base_url, "m", **FAST)
        (reply,) = backend.chat([ChatRequest(messages=user().messages, json_schema=PROBABILITY_SCHEMA)])
    assert reply.text == "0.2" and backend.structured_output_supported is False
    assert backend.calls == 3


def test_a_4xx_after_structured_output_worked_is_an_error_not_a_fall_back():
    def respond(i, payload, headers):
        if i == 0:
            return Reply(body=completion('{"probability": 0.2}'))
        return Reply(status=400, body={"error": {"message": "context length exceeded"}})

    with ScriptedServer(respond) as server:
        backend = OpenAIChatBackend(server.base_url, "m", max_concurrency=1, **FAST)
        request = ChatRequest(messages=user().messages, json_schema=PROBABILITY_SCHEMA)
        first, second = backend.chat([request, request])
    assert first.text == '{"probability": 0.2}' and backend.structured_output_format == "json_schema"
    assert second.text is None and "context length exceeded" in second.error
    assert backend.calls == 2 and backend.structured_output_supported is True


def test_structured_output_can_be_switched_off():
    with ScriptedServer(lambda i, p, h: Reply(body=completion("0.3"))) as server:
        backend = OpenAIChatBackend(server.base_url, "m", structured_output=False, **FAST)
        backend.chat([ChatRequest(messages=user().messages, json_schema=PROBABILITY_SCHEMA)])
    assert "response_format" not in server.received[0][1]


def test_api_key_is_sent_but_never_shown(monkeypatch, caplog, tmp_path):
    secret = "sk-test-0123456789-SECRET"
    monkeypatch.setenv("JAXSIM_TEST_LLM_KEY", secret)

    def respond(i, payload, headers):
        # a careless server echoing the request's headers in its error
        if i == 0:
            return Reply(status=500, body=f"failed with headers {headers}")
        return Reply(status=401, body=f"bad key {headers.get('Authorization')}")

    with ScriptedServer(respond) as server, caplog.at_level(logging.DEBUG, logger="jaxsim.llm"):
        backend = OpenAIChatBackend(server.base_url, "m", api_key_env="JAXSIM_TEST_LLM_KEY", max_retries=1, **FAST)
        with ResponseCache(tmp_path / "c.sqlite") as cache:
            cached = CachedBackend(backend, cache)
            (reply,) = cached.chat([user()])
            cache.put(backend.name, backend.model, user("stored"), "0.5")
    assert all(h.get("Authorization") == f"Bearer {secret}" for h, _ in server.received)
    assert reply.text is None and "HTTP 401" in reply.error and "***" in reply.error
    for shown in (reply.error, repr(backend), repr(cached), caplog.text):
        assert secret not in shown
    assert "api_key=set" in repr(backend)
    assert secret.encode() not in (tmp_path / "c.sqlite").read_bytes()
    assert any("retrying" in r.message for r in caplog.records)  # the log did see the echoed body


def test_missing_api_key_sends_no_header(monkeypatch):
    monkeypatch.delenv("JAXSIM_TEST_LLM_KEY", raising=False)
    with ScriptedServer(lambda i, p, h: Reply(body=completion("0.3"))) as server:
        backend = OpenAIChatBackend(server.base_url, "m", api_key_env="JAXSIM_TEST_LLM_KEY", **FAST)
        backend.chat([user()])
    assert "Authorization" not in server.received[0][0]
    assert "api_key=unset" in repr(backend)


def test_function_backend_turns_exceptions_into_error_replies():
    def fn(request):
        if "boom" in request.last_user_message():
            raise ValueError("boom happened")
        if "number" in request.last_user_message():
            return 0.5
        return "0.4"

    backend = FunctionBackend(fn, name="fake", model="v1")
    replies = backend.chat([user("fine"), user("boom"), user("number")])
    assert replies[0].text == "0.4"
    assert replies[1].text is None and "fake backend (model v1): ValueError: boom happened" == replies[1].error
    assert replies[2].text is None and "returned float, not str" in replies[2].error
    assert backend.calls == 3
    with pytest.raises(TypeError, match="not a ChatRequest"):
        backend.chat(["hello"])


# --------------------------------------------------------------------------------------
# query_probabilities
# --------------------------------------------------------------------------------------

PROMPTS = [
    ({"role": "system", "content": "You are a resident of Queens, New York."},
     {"role": "user", "content": f"You are {age} years old and COVID cases rose 40% this week. "
                                 "How likely are you to stay home this week? Give a probability between 0 and 1."})
    for age in (25, 50, 75)
]


def test_query_means_samples_with_distinct_seeds():
    values = {0: "0.2", 1: "30%", 2: '{"probability": 0.4}'}
    backend = FunctionBackend(lambda r: values[r.sample_index])
    answers = query_probabilities(backend, PROMPTS[:2], SamplingSettings(seed=7), samples=3, prior=[0.9, 0.9])
    np.testing.assert_allclose(answers.samples, [[0.2, 0.3, 0.4]] * 2)
    np.testing.assert_allclose(answers.probabilities, [0.3, 0.3])
    assert answers.fallbacks.tolist() == [0, 0] and answers.used_prior.tolist() == [False, False]
    assert (answers.parse_failures, answers.retries, backend.calls) == (0, 0, 6)


def test_query_retries_unreadable_replies_once_with_the_conversation():
    seen = []

    def fn(request):
        seen.append(request)
        if request.messages[-1]["content"] == RETRY_MESSAGE:
            return "0.35"
        return "I would probably stay home, it depends."

    answers = query_probabilities(FunctionBackend(fn), PROMPTS[:1], SamplingSettings(), samples=2, prior=[0.1])
    np.testing.assert_allclose(answers.probabilities, [0.35])
    assert (answers.parse_failures, answers.retries) == (0, 2)
    retry = seen[2]
    assert retry.messages[:2] == PROMPTS[0]
    assert retry.messages[2] == {"role": "assistant", "content": "I would probably stay home, it depends."}
    assert retry.messages[3] == {"role": "user", "content": RETRY_MESSAGE}
    assert [r.sample_index for r in seen] == [0, 1, 0, 1]
    assert answers.replies == (("0.35", "0.35"),)


def test_query_falls_back_to_the_prior_and_counts_failures():
    def fn(request):
        age_text = request.messages[1]["content"]
        if "25 years" in age_text:
            raise RuntimeError("server exploded")  # error: no retry
        if "50 years" in age_text:
            return "0.6" if request.sample_index == 1 else "no idea"  # one sample unreadable
        return "I cannot say."  # every sample unreadable, even after the retry

    backend = FunctionBackend(fn)
    answers = query_probabilities(backend, PROMPTS, SamplingSettings(), samples=2, prior=[0.11, 0.22, 0.33])
    np.testing.assert_allclose(answers.probabilities, [0.11, 0.6, 0.33])
    assert answers.fallbacks.tolist() == [2, 1, 2]
    assert answers.used_prior.tolist() == [True, False, True]
    assert np.isnan(answers.samples[0]).all() and answers.samples[1, 1] == 0.6 and math.isnan(answers.samples[1, 0])
    assert answers.parse_failures == 5 and answers.retries == 3
    assert backend.calls == 6 + 3
    assert answers.errors == ("function backend (model fn): RuntimeError: server exploded",)


def test_query_validates_its_arguments():
    backend = FunctionBackend(lambda r: "0.5")
    with pytest.raises(ValueError, match=r"prior has shape \(2,\), expected \(3,\)"):
        query_probabilities(backend, PROMPTS, SamplingSettings(), prior=[0.1, 0.2])
    with pytest.raises(ValueError, match=r"prior\[1\] = 1.5 is not a probability"):
        query_probabilities(backend, PROMPTS, SamplingSettings(), prior=[0.1, 1.5, 0.2])
    with pytest.raises(ValueError, match="samples must be an int >= 1"):
        query_probabilities(backend, PROMPTS, SamplingSettings(), samples=0, prior=[0.1] * 3)
    with pytest.raises(TypeError, match="SamplingSettings"):
        query_probabilities(backend, PROMPTS, {"temperature": 0}, prior=[0.1] * 3)
    assert backend.calls == 0
    empty = query_probabilities(backend, [], SamplingSettings(), prior=[])
    assert empty.probabilities.shape == (0,) and empty.samples.shape == (0, 1)


def test_query_in_replay_mode_raises_on_a_miss(tmp_path):
    path = tmp_path / "c.sqlite"
    with ResponseCache(path) as cache:
        query_probabilities(CachedBackend(FunctionBackend(lambda r: "0.5"), cache), PROMPTS[:2],
                            SamplingSettings(), prior=[0.1, 0.1])
    with ResponseCache(path, mode="replay") as cache:
        backend = CachedBackend(FunctionBackend(lambda r: "0.5"), cache)
        answers = query_probabilities(backend, PROMPTS[:2], SamplingSettings(), prior=[0.1, 0.1])
        assert answers.probabilities.tolist() == [0.5, 0.5] and backend.llm_calls == 0
        with pytest.raises(CacheMissError, match="replay-only"):
            query_probabilities(backend, PROMPTS, SamplingSettings(), prior=[0.1] * 3)


def test_garbage_from_a_real_http_server_falls_back_to_the_prior():
    with ScriptedServer(lambda i, p, h: Reply(body=completion("As an AI, I have no opinion."))) as server:
        backend = OpenAIChatBackend(server.base_url, "m", **FAST)
        answers = query_probabilities(backend, PROMPTS[:2], SamplingSettings(), samples=2, prior=[0.05, 0.5],
                                      json_schema=None)
    np.testing.assert_allclose(answers.probabilities, [0.05, 0.5])
    assert answers.used_prior.all() and answers.fallbacks.tolist() == [2, 2]
    assert (answers.parse_failures, answers.retries) == (4, 4)
    assert backend.calls == 8 and len(server.received) == 8
    retry_payloads = [p for _, p in server.received if p["messages"][-1]["content"] == RETRY_MESSAGE]
    assert len(retry_payloads) == 4


# --------------------------------------------------------------------------------------
# End to end: llama.cpp's OpenAI-compatible server with the bundled SmolLM2-135M model
# --------------------------------------------------------------------------------------

QUICK = SamplingSettings(temperature=0.0, max_tokens=16, seed=0)


def test_llama_server_gives_valid_probabilities(llama_server):
    backend = OpenAIChatBackend(llama_server.base_url, llama_server.model, max_concurrency=2)
    answers = query_probabilities(backend, PROMPTS, QUICK, samples=2, prior=[0.5, 0.5, 0.5])
    assert answers.probabilities.shape == (3,)
    assert ((answers.probabilities >= 0) & (answers.probabilities <= 1)).all()
    assert answers.used_prior.sum() == 0, answers.replies  # grammar-constrained JSON is always readable
    # llama_cpp.server refuses the json_schema form (HTTP 500) and takes {"type": "json_object", "schema"}
    assert backend.structured_output_format == "json_object"
    assert all(json.loads(text)["probability"] is not None for row in answers.replies for text in row)
    # Tokens as the server reported them (usage.total_tokens): more than one per completion.
    assert backend.tokens > backend.calls


def test_total_tokens_of_a_completion_body():
    from jaxsim.llm.backends import _total_tokens

    assert _total_tokens(b'{"usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}}') == 12
    for body in (b'{"choices": []}', b"not json", b'{"usage": {"total_tokens": -1}}', b'{"usage": null}'):
        assert _total_tokens(body) == 0, body


def test_llama_server_is_deterministic_at_temperature_zero_and_with_a_seed(llama_server):
    def run(settings):
        backend = OpenAIChatBackend(llama_server.base_url, llama_server.model, max_concurrency=2)
        requests = [ChatRequest(messages=PROMPTS[0], settings=settings, sample_index=s) for s in (0, 1)]
        return [r.text for r in backend.chat(requests)]

    first = run(QUICK)
    assert all(text for text in first)
    assert run(QUICK) == first
    hot = SamplingSettings(temperature=1.0, max_tokens=16, seed=3)
    first_hot = run(hot)
    assert run(hot) == first_hot  # the server honours the per-request seed


def test_llama_server_with_cache_then_replay(llama_server, tmp_path):
    path = tmp_path / "replies.sqlite"
    samples = 2

    def run(mode, base_url):
        backend = OpenAIChatBackend(base_url, llama_server.model, max_concurrency=2, max_retries=0)
        with ResponseCache(path, mode=mode) as cache:
            cached = CachedBackend(backend, cache)
            answers = query_probabilities(cached, PROMPTS, QUICK, samples=samples, prior=[0.5] * 3, json_schema=None)
            return answers, cached, backend

    first, cached, _ = run("readwrite", llama_server.base_url)
    assert cached.llm_calls == len(PROMPTS) * samples + first.retries and cached.cache_hits == 0
    second, cached, _ = run("readwrite", llama_server.base_url)
    assert cached.llm_calls == 0 and cached.cache_hits == len(PROMPTS) * samples + first.retries
    np.testing.assert_array_equal(second.probabilities, first.probabilities)
    assert second.replies == first.replies
    # replay against a port where nothing listens: answered from the file alone
    replayed, cached, backend = run("replay", f"http://127.0.0.1:{closed_port()}/v1")
    np.testing.assert_array_equal(replayed.probabilities, first.probabilities)
    assert backend.calls == 0 and cached.llm_calls == 0
