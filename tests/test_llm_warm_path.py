"""The warm-cache path: cache keys assembled from pieces, keys without request objects,
the cache read into memory, answers straight from the cache, memoised parsing, schema
checks, and prompt templates bound per archetype. Each must give exactly what the plain
path gives."""

import json
import math

import numpy as np
import pytest

from jaxsim import behaviour
from jaxsim.models import covid
from jaxsim.llm import (
    CachedBackend,
    CacheMissError,
    ChatRequest,
    FunctionBackend,
    ResponseCache,
    SamplingSettings,
    cache_key,
    parse_probability,
    query_probabilities,
)
from jaxsim.llm.cache import canonical_request_json, prompt_keys
from jaxsim.llm.query import PROBABILITY_SCHEMA


def reference_request_json(backend_name, model, request):
    """The key's input written in one go: the definition the pieces must reproduce."""
    record = {
        "backend": backend_name,
        "model": model,
        "messages": [dict(m) for m in request.messages],
        "settings": request.settings.as_dict(),
        "sample_index": request.sample_index,
        "json_schema": request.json_schema,
    }
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


REQUESTS = [
    ChatRequest(messages=({"role": "user", "content": "plain"},)),
    ChatRequest(
        messages=(
            {"role": "system", "content": 'quotes " and \\ backslash, braces {x} and\nnewlines\ttabs'},
            {"role": "user", "content": "unicode: é ü 中文 \u2028 emoji 🙂, control \x01"},
        ),
        settings=SamplingSettings(temperature=0.7, max_tokens=5, top_p=0.9, seed=11),
        sample_index=3,
        json_schema=PROBABILITY_SCHEMA,
    ),
    ChatRequest(  # an extra key in a message takes the general encoder
        messages=({"role": "user", "content": "x", "name": "alice"},),
        json_schema={"type": "object", "b": [1, 2.5, None, True], "a": {"z": "é", "y": 1e-7}},
    ),
]


@pytest.mark.parametrize("request_", REQUESTS)
@pytest.mark.parametrize("backend_name, model", [("function", "fn"), ("openai", 'a "quoted" model/é')])
def test_key_pieces_equal_the_whole_record(request_, backend_name, model):
    assert canonical_request_json(backend_name, model, request_) == reference_request_json(backend_name, model, request_)


def test_prompt_keys_equal_request_keys():
    prompts = [r.messages for r in REQUESTS[:2]]
    settings = SamplingSettings(temperature=0.3, seed=5)
    for schema in (PROBABILITY_SCHEMA, None):
        keys = prompt_keys("function", "fn", prompts, settings, 3, schema)
        expected = [
            cache_key("function", "fn", ChatRequest(messages=p, settings=settings, sample_index=s, json_schema=schema))
            for p in prompts for s in range(3)
        ]
        assert keys == expected


@pytest.mark.parametrize("prompt", [
    ({"role": "user", "content": "x", "name": "alice"},),   # extra key
    ({"role": "robot", "content": "x"},),                    # unknown role
    ({"role": "user", "content": 3},),                       # content not a str
    (("user", "x"),),                                        # not a dict
])
def test_prompt_keys_leave_unusual_prompts_to_the_request_checks(prompt):
    assert prompt_keys("function", "fn", [prompt], SamplingSettings(), 1, None) is None


def test_a_schema_changed_in_place_changes_the_key():
    schema = {"type": "object", "properties": {"p": {"type": "number"}}}
    messages = ({"role": "user", "content": "x"},)
    before = cache_key("f", "m", ChatRequest(messages=messages, json_schema=schema))
    schema["properties"]["p"]["maximum"] = 1
    after = cache_key("f", "m", ChatRequest(messages=messages, json_schema=schema))
    assert before != after
    assert canonical_request_json("f", "m", ChatRequest(messages=messages, json_schema=schema)) == (
        reference_request_json("f", "m", ChatRequest(messages=messages, json_schema=schema))
    )


@pytest.mark.parametrize("schema, message", [
    ({"maximum": math.nan}, "json_schema must be plain JSON data"),
    ({"f": object()}, "json_schema must be plain JSON data"),
    ([1, 2], "json_schema must be a dict or None"),
])
def test_bad_schemas_are_still_refused(schema, message):
    for _ in range(2):  # the second time through the memo
        with pytest.raises(ValueError, match=message):
            ChatRequest(messages=({"role": "user", "content": "x"},), json_schema=schema)


def test_memoised_parsing_checks_types_and_gives_the_same_values():
    for text in ['{"probability": 0.3}', "35%", "No.", "nothing here", "  "]:
        assert parse_probability(text) == parse_probability(text)
    assert parse_probability('{"probability": 0.3}') == 0.3
    assert parse_probability(None) is None
    for bad in (3, ["0.3"], b"0.3"):
        with pytest.raises(TypeError, match="expects a str"):
            parse_probability(bad)


# ------------------------------------------------------------------ cache in memory
def store(path, pairs):
    """Write replies for user texts through a cache, as an earlier run would."""
    with ResponseCache(path) as cache:
        backend = CachedBackend(FunctionBackend(lambda r: pairs[r.last_user_message()]), cache)
        backend.chat([ChatRequest(messages=({"role": "user", "content": t},)) for t in pairs])


def key(text):
    return cache_key("function", "fn", ChatRequest(messages=({"role": "user", "content": text},)))


def test_lookup_reads_the_file_once_and_finds_later_writes(tmp_path):
    path = tmp_path / "replies.sqlite"
    store(path, {"a": "0.1", "b": "0.2"})
    with ResponseCache(path) as reader:
        assert reader.lookup([key("a"), key("b"), key("c")]) == {key("a"): "0.1", key("b"): "0.2"}
        store(path, {"c": "0.3"})  # another process writes after the file was read
        assert reader.lookup([key("c"), key("a")]) == {key("c"): "0.3", key("a"): "0.1"}
        assert reader.lookup([]) == {}


def test_lookup_without_preloading_a_large_file(tmp_path, monkeypatch):
    path = tmp_path / "replies.sqlite"
    store(path, {"a": "0.1", "b": "0.2"})
    monkeypatch.setattr(ResponseCache, "preload_max_bytes", 1000)  # the file is larger
    with ResponseCache(path, mode="replay") as reader:
        assert reader.lookup([key("b")]) == {key("b"): "0.2"}
        assert key("a") not in reader._memory  # only what was asked for
        assert reader.lookup([key("a"), key("a")]) == {key("a"): "0.1"}


def test_memory_keeps_the_first_reply_like_the_file(tmp_path):
    path = tmp_path / "replies.sqlite"
    request = ChatRequest(messages=({"role": "user", "content": "a"},))
    with ResponseCache(path) as mine, ResponseCache(path) as other:
        assert mine.lookup([key("a")]) == {}  # read (empty) into memory
        other.put("function", "fn", request, "first")
        mine.put("function", "fn", request, "second")  # ignored by the file: first reply wins
        assert mine.lookup([key("a")]) == {key("a"): "first"}
        assert mine.get("function", "fn", request) == "first"


def test_off_mode_lookup_is_empty():
    assert ResponseCache(None, mode="off").lookup([key("a")]) == {}


# --------------------------------------------------------- answers straight from the cache
PROMPTS = [
    ({"role": "system", "content": "Answer with a probability."}, {"role": "user", "content": f"group {g}"})
    for g in "abcd"
]


def replies_by_group(request):
    group = request.last_user_message()[-1]
    return {"a": '{"probability": 0.25}', "b": "40%", "c": "Yes.", "d": "0.9"}[group] if (
        request.sample_index == 0 or group != "d") else '{"probability": 0.7}'


def test_warm_answers_equal_the_model_answers_and_count_hits(tmp_path):
    settings = SamplingSettings()
    direct = query_probabilities(FunctionBackend(replies_by_group), PROMPTS, settings, 2, prior=np.zeros(4))
    path = tmp_path / "replies.sqlite"
    with ResponseCache(path) as cache:
        cold_backend = CachedBackend(FunctionBackend(replies_by_group), cache)
        cold = query_probabilities(cold_backend, PROMPTS, settings, 2, prior=np.zeros(4))
    with ResponseCache(path, mode="replay") as cache:
        warm_backend = CachedBackend(FunctionBackend(lambda r: pytest.fail("the model was asked")), cache)
        warm = query_probabilities(warm_backend, PROMPTS, settings, 2, prior=np.zeros(4))
    for answers in (cold, warm):
        np.testing.assert_array_equal(answers.probabilities, direct.probabilities)
        np.testing.assert_array_equal(answers.samples, direct.samples)
        assert answers.replies == direct.replies
        assert (answers.parse_failures, answers.retries, answers.errors) == (0, 0, ())
        assert not answers.used_prior.any() and not answers.fallbacks.any()
    np.testing.assert_allclose(warm.probabilities, [0.25, 0.4, 1.0, 0.8])
    assert (cold_backend.llm_calls, cold_backend.cache_hits) == (8, 0)
    assert (warm_backend.llm_calls, warm_backend.cache_hits) == (0, 8)


def test_an_unreadable_stored_reply_takes_the_general_path(tmp_path):
    """A cached reply that does not parse: the retry (stored too) answers, as in the cold run."""
    def model(request):
        if request.messages[-1]["content"].startswith("Answer with only a number"):
            return "0.6"
        return "I would rather not say" if request.last_user_message().endswith("b") else "0.2"

    path = tmp_path / "replies.sqlite"
    with ResponseCache(path) as cache:
        cold = query_probabilities(CachedBackend(FunctionBackend(model), cache), PROMPTS[:2], SamplingSettings(),
                                   prior=np.zeros(2))
    with ResponseCache(path, mode="replay") as cache:
        backend = CachedBackend(FunctionBackend(lambda r: pytest.fail("the model was asked")), cache)
        warm = query_probabilities(backend, PROMPTS[:2], SamplingSettings(), prior=np.zeros(2))
    np.testing.assert_array_equal(warm.probabilities, cold.probabilities)
    np.testing.assert_allclose(warm.probabilities, [0.2, 0.6])
    assert warm.retries == cold.retries == 1
    assert (backend.llm_calls, backend.cache_hits) == (0, 3)  # counted once, by the general path


def test_a_partly_cached_batch_asks_only_the_misses(tmp_path):
    path = tmp_path / "replies.sqlite"
    model = FunctionBackend(replies_by_group)
    with ResponseCache(path) as cache:
        query_probabilities(CachedBackend(model, cache), PROMPTS[:2], SamplingSettings(), prior=np.zeros(2))
        backend = CachedBackend(model, cache)
        answers = query_probabilities(backend, PROMPTS, SamplingSettings(), prior=np.zeros(4))
    np.testing.assert_allclose(answers.probabilities, [0.25, 0.4, 1.0, 0.9])
    assert (backend.llm_calls, backend.cache_hits) == (2, 2)
    with ResponseCache(path, mode="replay") as cache, pytest.raises(CacheMissError):
        query_probabilities(CachedBackend(model, cache), PROMPTS + [PROMPTS[0][:1]], SamplingSettings(),
                            prior=np.zeros(5))


# ------------------------------------------------------------------ templates bound per archetype
SIGNALS = covid.WeeklySignals(week=3, onsets_this_week=412.0, onsets_four_week_average=300.0, ascertainment=0.25)


@pytest.mark.parametrize("template", [
    covid.isolation_template(("age", "gender")),
    covid.isolation_template(("age", "area")),
    behaviour.PromptTemplate(
        system='Reply as JSON {{"probability": p}}; you are {age!r} ({gender_phrase:>12}).',
        user="{{literal}} {cases_this_week:>6} cases, {cases_change}, week {weeks_since_start!s}, "
             "{neighbourhood}; {age_phrase} {{{gender}}}",
    ),
])
def test_bound_templates_render_what_the_template_renders(template):
    label_sets = [
        {"age": "20-29", "gender": "female", "area": "QN0103"},
        {"age": "80+", "gender": "male", "area": "{odd} label"},
    ]
    for labels in label_sets:
        fixed = {"neighbourhood": "Astoria, Queens"} | behaviour.label_values(labels)
        bound = template.bind(fixed)
        assert bound.render(SIGNALS.values()) == template.render(SIGNALS.values() | fixed)


def test_binding_a_nested_format_spec_is_refused():
    template = behaviour.PromptTemplate(system="s", user="{age:{width}}")
    with pytest.raises(behaviour.ArchetypeError, match="nested format spec"):
        template.bind({"age": "20-29"})
