"""Talking to language models: backends, reply parsing, a reply cache and probability queries.

- :mod:`jaxsim.llm.backends`: :class:`SamplingSettings`, :class:`ChatRequest`,
  :class:`ChatReply`, the :class:`Backend` protocol and its implementations
  (:class:`OpenAIChatBackend` for any OpenAI-compatible server, :class:`LlamaCppBackend`
  for a GGUF model in process, :class:`FunctionBackend` for tests);
- :mod:`jaxsim.llm.parsing`: :func:`parse_probability`, a probability from free text;
- :mod:`jaxsim.llm.cache`: :class:`ResponseCache` (sqlite; read-write, replay-only or off)
  and :class:`CachedBackend`;
- :mod:`jaxsim.llm.query`: :func:`query_probabilities`, one probability per prompt with
  samples, a retry for unreadable replies and a fall-back to a prior;
- :mod:`jaxsim.llm.local_server`: :class:`LocalLlamaServer`, llama-cpp-python's server in a
  subprocess.

Only the standard library is needed to talk to a server; running a model locally needs
the optional extra ``llm-local`` (``pip install -e ".[llm-local]"``), imported lazily.
"""

from __future__ import annotations

import importlib

#: Public names and the submodule each comes from, imported on first use (so that the
#: light ``jaxsim.llm.options`` does not pull numpy into a command's ``--help``).
_EXPORTS = {
    "Backend": "backends", "ChatReply": "backends", "ChatRequest": "backends", "FunctionBackend": "backends",
    "LlamaCppBackend": "backends", "OpenAIChatBackend": "backends", "SamplingSettings": "backends",
    "default_model_path": "backends",
    "CacheFileError": "cache", "CacheMissError": "cache", "CachedBackend": "cache", "ResponseCache": "cache",
    "cache_key": "cache",
    "LocalLlamaServer": "local_server", "LocalServerError": "local_server",
    "parse_probability": "parsing",
    "PROBABILITY_SCHEMA": "query", "ProbabilityAnswers": "query", "query_probabilities": "query",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'jaxsim.llm' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"jaxsim.llm.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Backend",
    "CacheFileError",
    "CacheMissError",
    "CachedBackend",
    "ChatReply",
    "ChatRequest",
    "FunctionBackend",
    "LlamaCppBackend",
    "LocalLlamaServer",
    "LocalServerError",
    "OpenAIChatBackend",
    "PROBABILITY_SCHEMA",
    "ProbabilityAnswers",
    "ResponseCache",
    "SamplingSettings",
    "cache_key",
    "default_model_path",
    "parse_probability",
    "query_probabilities",
]
