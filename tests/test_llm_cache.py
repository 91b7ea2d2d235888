"""ResponseCache and CachedBackend: hits and misses, key fields, replay, persistence, bad files, threads."""

import sqlite3
import threading

import pytest

from jaxsim.llm import (
    CacheFileError,
    CacheMissError,
    CachedBackend,
    ChatRequest,
    FunctionBackend,
    OpenAIChatBackend,
    ResponseCache,
    SamplingSettings,
    cache_key,
)
from jaxsim.llm.query import PROBABILITY_SCHEMA

SYSTEM = {"role": "system", "content": "You answer with a probability."}


def request(text="How likely are you to isolate?", **kwargs):
    return ChatRequest(messages=(SYSTEM, {"role": "user", "content": text}), **kwargs)


def echo_backend(name="function", model="fn"):
    """Replies with the user's text and the sample index, so replies differ per request."""
    return FunctionBackend(lambda r: f"{r.last_user_message()}#{r.sample_index}", name=name, model=model)


def test_miss_then_hit(tmp_path):
    inner = echo_backend()
    with ResponseCache(tmp_path / "replies.sqlite") as cache:
        backend = CachedBackend(inner, cache)
        requests = [request("a"), request("b"), request("a", sample_index=1)]
        first = backend.chat(requests)
        assert [r.text for r in first] == ["a#0", "b#0", "a#1"]
        assert (backend.llm_calls, backend.cache_hits, inner.calls) == (3, 0, 3)
        second = backend.chat(requests + [request("c")])
        assert [r.text for r in second] == ["a#0", "b#0", "a#1", "c#0"]
        assert (backend.llm_calls, backend.cache_hits, inner.calls) == (4, 3, 4)
        assert len(cache) == 4
        assert backend.name == "function" and backend.model == "fn"


def test_misses_go_to_the_inner_backend_in_one_batch_and_repeats_once(tmp_path):
    batches = []

    class Recording(FunctionBackend):
        def chat(self, requests):
            batches.append(len(requests))
            return super().chat(requests)

    inner = Recording(lambda r: "0.5")
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        backend = CachedBackend(inner, cache)
        backend.chat([request("a")])
        replies = backend.chat([request("a"), request("b"), request("c"), request("b")])
        assert [r.text for r in replies] == ["0.5"] * 4
        assert batches == [1, 2]  # 'a' was cached; 'b' repeated in the batch is sent once
        assert (backend.llm_calls, backend.cache_hits) == (3, 2)


def test_errors_are_returned_but_not_stored(tmp_path):
    state = {"fail": True}

    def flaky(r):
        if state["fail"]:
            raise RuntimeError("model overloaded")
        return "0.25"

    inner = FunctionBackend(flaky)
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        backend = CachedBackend(inner, cache)
        (reply,) = backend.chat([request()])
        assert reply.text is None and "RuntimeError: model overloaded" in reply.error
        assert len(cache) == 0
        state["fail"] = False
        (reply,) = backend.chat([request()])
        assert reply.text == "0.25"
        assert len(cache) == 1 and inner.calls == 2


def base_request():
    return ChatRequest(
        messages=(SYSTEM, {"role": "user", "content": "q"}),
        settings=SamplingSettings(temperature=0.5, max_tokens=16, top_p=0.9, seed=3),
        sample_index=1,
        json_schema=PROBABILITY_SCHEMA,
    )


@pytest.mark.parametrize(
    "backend_name, model, changed",
    [
        ("openai", "m", base_request()),  # backend name
        ("function", "m2", base_request()),  # model
        ("function", "m", ChatRequest(messages=(SYSTEM, {"role": "user", "content": "q2"}), settings=base_request().settings, sample_index=1, json_schema=PROBABILITY_SCHEMA)),
        ("function", "m", ChatRequest(messages=({"role": "system", "content": "other"}, {"role": "user", "content": "q"}), settings=base_request().settings, sample_index=1, json_schema=PROBABILITY_SCHEMA)),
        ("function", "m", ChatRequest(messages=({"role": "user", "content": "q"},), settings=base_request().settings, sample_index=1, json_schema=PROBABILITY_SCHEMA)),
        ("function", "m", ChatRequest(messages=(SYSTEM, {"role": "assistant", "content": "q"}), settings=base_request().settings, sample_index=1, json_schema=PROBABILITY_SCHEMA)),
        ("function", "m", ChatRequest(messages=base_request().messages, settings=SamplingSettings(temperature=0.6, max_tokens=16, top_p=0.9, seed=3), sample_index=1, json_schema=PROBABILITY_SCHEMA)),
        ("function", "m", ChatRequest(messages=base_request().messages, settings=SamplingSettings(temperature=0.5, max_tokens=17, top_p=0.9, seed=3), sample_index=1, json_schema=PROBABILITY_SCHEMA)),
        ("function", "m", ChatRequest(messages=base_request().messages, settings=SamplingSettings(temperature=0.5, max_tokens=16, top_p=0.8, seed=3), sample_index=1, json_schema=PROBABILITY_SCHEMA)),
        ("function", "m", ChatRequest(messages=base_request().messages, settings=SamplingSettings(temperature=0.5, max_tokens=16, top_p=0.9, seed=4), sample_index=1, json_schema=PROBABILITY_SCHEMA)),
        ("function", "m", ChatRequest(messages=base_request().messages, settings=base_request().settings, sample_index=2, json_schema=PROBABILITY_SCHEMA)),
        ("function", "m", ChatRequest(messages=base_request().messages, settings=base_request().settings, sample_index=1, json_schema=None)),
        ("function", "m", ChatRequest(messages=base_request().messages, settings=base_request().settings, sample_index=1, json_schema={"type": "object"})),
    ],
    ids=["backend", "model", "user-content", "system-content", "messages-dropped", "role", "temperature",
         "max_tokens", "top_p", "seed", "sample_index", "no-schema", "other-schema"],
)
def test_every_key_field_changes_the_key(tmp_path, backend_name, model, changed):
    base_key = cache_key("function", "m", base_request())
    assert cache_key(backend_name, model, changed) != base_key
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        cache.put("function", "m", base_request(), "stored")
        assert cache.get("function", "m", base_request()) == "stored"
        assert cache.get(backend_name, model, changed) is None


def test_integer_and_float_settings_give_the_same_key():
    a = ChatRequest(messages=({"role": "user", "content": "q"},), settings=SamplingSettings(temperature=0, top_p=1))
    b = ChatRequest(messages=({"role": "user", "content": "q"},), settings=SamplingSettings(temperature=0.0, top_p=1.0))
    assert cache_key("x", "m", a) == cache_key("x", "m", b)


def test_key_is_stable_and_ignores_dict_order():
    a = ChatRequest(messages=({"role": "user", "content": "q"},), json_schema={"type": "object", "title": "t"})
    b = ChatRequest(messages=({"content": "q", "role": "user"},), json_schema={"title": "t", "type": "object"})
    assert cache_key("x", "m", a) == cache_key("x", "m", b)
    assert len(cache_key("x", "m", a)) == 64


def test_replay_miss_raises_naming_the_request_and_never_calls_the_model(tmp_path):
    path = tmp_path / "recorded.sqlite"
    with ResponseCache(path) as cache:
        CachedBackend(echo_backend(), cache).chat([request("recorded question")])
    long_question = "Would a 70-year-old woman in Astoria stay home? " * 10
    inner = echo_backend()
    with ResponseCache(path, mode="replay") as replay:
        backend = CachedBackend(inner, replay)
        (reply,) = backend.chat([request("recorded question")])
        assert reply.text == "recorded question#0"
        with pytest.raises(CacheMissError) as info:
            backend.chat([request("recorded question"), request(long_question)])
    message = str(info.value)
    assert "replay-only" in message and "'function'" in message and "'fn'" in message
    assert long_question[:200] in message and long_question[:201] not in message
    assert inner.calls == 0
    assert backend.llm_calls == 0


def test_replay_needs_an_existing_file_and_cannot_store(tmp_path):
    with pytest.raises(CacheFileError, match="does not exist"):
        ResponseCache(tmp_path / "missing.sqlite", mode="replay")
    assert not (tmp_path / "missing.sqlite").exists()
    path = tmp_path / "c.sqlite"
    ResponseCache(path).close()
    with ResponseCache(path, mode="replay") as replay:
        with pytest.raises(CacheFileError, match="replay-only"):
            replay.put("function", "fn", request(), "x")


def test_persistence_across_reopen(tmp_path):
    path = tmp_path / "sub" / "replies.sqlite"
    with ResponseCache(path) as cache:
        cache.put("openai", "gpt", request("q1"), "0.3")
        cache.put("openai", "gpt", request("q2"), "0.7")
        cache.put("openai", "gpt", request("q2"), "ignored: first reply wins")
    for mode in ("readwrite", "replay"):
        with ResponseCache(path, mode=mode) as cache:
            assert len(cache) == 2
            assert cache.get("openai", "gpt", request("q1")) == "0.3"
            assert cache.get("openai", "gpt", request("q2")) == "0.7"
    row = sqlite3.connect(path).execute("SELECT backend, model, request, created FROM replies ORDER BY rowid LIMIT 1").fetchone()
    assert row[0] == "openai" and row[1] == "gpt" and '"q1"' in row[2] and row[3] > 1.7e9


def test_off_mode_touches_no_file_and_always_misses(tmp_path):
    path = tmp_path / "never.sqlite"
    inner = echo_backend()
    with ResponseCache(path, mode="off") as cache:
        backend = CachedBackend(inner, cache)
        backend.chat([request()])
        backend.chat([request()])
        assert len(cache) == 0
    assert inner.calls == 2 and backend.cache_hits == 0
    assert not path.exists()
    assert len(ResponseCache(None, mode="off")) == 0


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "garbage.sqlite"
    path.write_bytes(b"this is not an sqlite database, just some bytes" * 100)
    for mode in ("readwrite", "replay"):
        with pytest.raises(CacheFileError, match="garbage.sqlite") as info:
            ResponseCache(path, mode=mode)
        assert "sqlite" in str(info.value)
    assert path.read_bytes().startswith(b"this is not")  # left as it was


def test_other_sqlite_database_is_a_clear_error(tmp_path):
    path = tmp_path / "other.sqlite"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE replies (id INTEGER, body TEXT)")
    connection.commit()
    connection.close()
    with pytest.raises(CacheFileError, match="not a jaxsim response cache"):
        ResponseCache(path)
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    with pytest.raises(CacheFileError, match="no table"):
        ResponseCache(empty, mode="replay")


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="mode must be one of"):
        ResponseCache(tmp_path / "c.sqlite", mode="write")
    with pytest.raises(ValueError, match="needs a path"):
        ResponseCache(None)
    with pytest.raises(CacheFileError, match="is a directory"):
        ResponseCache(tmp_path)
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.close()
    with pytest.raises(CacheFileError, match="closed"):
        cache.get("f", "m", request())
    with pytest.raises(TypeError, match="ResponseCache"):
        CachedBackend(echo_backend(), "cache.sqlite")


def test_concurrent_writes_from_threads(tmp_path):
    path = tmp_path / "shared.sqlite"
    errors = []
    n_threads, per_thread = 8, 40

    def worker(thread_index, cache):
        try:
            for i in range(per_thread):
                # half the keys are shared between threads, half are the thread's own
                key_text = f"shared-{i}" if i % 2 == 0 else f"own-{thread_index}-{i}"
                cache.put("function", "fn", request(key_text), f"reply to {key_text}")
                assert cache.get("function", "fn", request(key_text)) == f"reply to {key_text}"
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    with ResponseCache(path) as shared, ResponseCache(path) as second_connection:
        threads = [
            threading.Thread(target=worker, args=(t, shared if t % 2 == 0 else second_connection))
            for t in range(n_threads)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        expected = per_thread // 2 + n_threads * (per_thread // 2)
        assert len(shared) == expected == len(second_connection)
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_cached_backend_from_many_threads(tmp_path):
    inner = echo_backend()
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        backend = CachedBackend(inner, cache)
        results = {}

        def worker(t):
            results[t] = [r.text for r in backend.chat([request(f"q{i}") for i in range(10)])]

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(texts == [f"q{i}#0" for i in range(10)] for texts in results.values())
        assert backend.llm_calls + backend.cache_hits == 40
        assert len(cache) == 10


def test_real_backend_class_is_not_contacted_in_replay(tmp_path):
    # An OpenAI backend pointing at a port where nothing listens: replay answers without it.
    path = tmp_path / "c.sqlite"
    real = OpenAIChatBackend("http://127.0.0.1:9/v1", "some-model", max_retries=0)
    with ResponseCache(path) as cache:
        cache.put(real.name, real.model, request(), "0.4")
    with ResponseCache(path, mode="replay") as cache:
        backend = CachedBackend(real, cache)
        assert [r.text for r in backend.chat([request()])] == ["0.4"]
    assert real.calls == 0
