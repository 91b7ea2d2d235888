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

from jaxsim.llm.backends import (
    Backend,
    ChatReply,
    ChatRequest,
    FunctionBackend,
    LlamaCppBackend,
    OpenAIChatBackend,
    SamplingSettings,
    default_model_path,
)
from jaxsim.llm.cache import CacheFileError, CacheMissError, CachedBackend, ResponseCache, cache_key
from jaxsim.llm.local_server import LocalLlamaServer, LocalServerError
from jaxsim.llm.parsing import parse_probability
from jaxsim.llm.query import PROBABILITY_SCHEMA, ProbabilityAnswers, query_probabilities

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
