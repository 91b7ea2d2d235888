"""Asking a model for one probability per prompt, robust to replies that are not one.

:func:`query_probabilities` sends every prompt ``samples`` times (sample indices
``0..samples-1``, hence distinct seeds) in one batch, parses each reply with
:func:`jaxsim.llm.parsing.parse_probability`, and retries each unreadable reply once, in a
second batch, as the same conversation extended by the model's reply and a request for a
bare number (a new request, with its own cache entry). A sample whose reply is still
unreadable, or whose request failed (after the backend's own retries), is missing (NaN).
A prompt's probability is the mean of its readable samples; a prompt with no readable
sample falls back to its ``prior`` value (e.g. the heuristic isolation probability of that
group), so a misbehaving model degrades a run rather than stopping it. Only replay-mode
cache misses (:class:`~jaxsim.llm.cache.CacheMissError`) and misconfiguration raise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from jaxsim.llm.backends import Backend, ChatReply, ChatRequest, SamplingSettings
from jaxsim.llm.cache import prompt_keys
from jaxsim.llm.parsing import parse_probability
from jaxsim.errors import InputError

__all__ = ["PROBABILITY_SCHEMA", "RETRY_MESSAGE", "ProbabilityAnswers", "query_probabilities"]

PROBABILITY_SCHEMA: dict = {
    "title": "probability",
    "type": "object",
    "properties": {"probability": {"type": "number", "minimum": 0, "maximum": 1}},
    "required": ["probability"],
    "additionalProperties": False,
}

RETRY_MESSAGE = "Answer with only a number between 0 and 1 (the probability), and nothing else."


@dataclass(frozen=True)
class ProbabilityAnswers:
    """What :func:`query_probabilities` found, for ``G`` prompts and ``S`` samples each.

    ``probabilities`` float64 [G] in [0, 1]: mean of the readable samples, or the prior where
    there is none; ``samples`` float64 [G, S]: each sample's probability, NaN where it failed;
    ``fallbacks`` int [G]: failed samples per prompt; ``used_prior`` bool [G]: prompts whose
    every sample failed (their probability is the prior); ``replies``: the final reply text
    (``None`` for an error) per prompt and sample; ``parse_failures``: failed samples (replies
    unreadable even after the retry, or errors), ``retries``: retry requests sent,
    ``errors``: the distinct backend error messages met.
    """

    probabilities: np.ndarray
    samples: np.ndarray
    fallbacks: np.ndarray
    used_prior: np.ndarray
    replies: tuple[tuple[str | None, ...], ...]
    parse_failures: int
    retries: int
    errors: tuple[str, ...]


def _check_prior(prior: Sequence[float], n_prompts: int) -> np.ndarray:
    try:
        values = np.asarray(prior, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"query_probabilities prior must be {n_prompts} numbers in [0, 1], got {prior!r}") from None
    if values.shape != (n_prompts,):
        raise InputError(f"query_probabilities prior has shape {values.shape}, expected ({n_prompts},): one per prompt")
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0) | (values > 1))
    if bad.size:
        raise InputError(f"query_probabilities prior[{int(bad[0])}] = {float(values[bad[0]])!r} is not a probability in [0, 1]")
    return values


def query_probabilities(
    backend: Backend,
    prompts: Sequence[Sequence[dict]],
    settings: SamplingSettings,
    samples: int = 1,
    *,
    prior: Sequence[float] | Callable[[], Sequence[float]],
    json_schema: dict | None = PROBABILITY_SCHEMA,
) -> ProbabilityAnswers:
    """Ask ``backend`` each prompt ``samples`` times; one probability per prompt (see the module docstring).

    ``prompts``: G message lists (``({"role": ..., "content": ...}, ...)``, one per group);
    ``settings``: sampling (the effective seed of sample ``s`` is ``settings.seed + s``);
    ``prior``: G probabilities used for prompts without any readable sample, or a function
    returning them, called only when some prompt needs it;
    ``json_schema``: structured output requested from the backend (``None`` for none).
    """
    if not isinstance(settings, SamplingSettings):
        raise TypeError(f"query_probabilities settings must be a SamplingSettings, got {type(settings).__name__}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise InputError(f"query_probabilities samples must be an int >= 1, got {samples!r}")
    prompts = [tuple(p) for p in prompts]
    n_prompts = len(prompts)
    prior_values = None if callable(prior) else _check_prior(prior, n_prompts)
    warm = _answers_from_cache(backend, prompts, settings, samples, json_schema)
    if warm is not None:
        return warm

    requests = [
        ChatRequest(messages=prompt, settings=settings, sample_index=s, json_schema=json_schema)
        for prompt in prompts
        for s in range(samples)
    ]
    replies = _chat_checked(backend, requests)
    values = [parse_probability(r.text) if r.text is not None else None for r in replies]

    retry_slots = [i for i, (r, v) in enumerate(zip(replies, values)) if r.text is not None and v is None]
    retry_requests = [
        ChatRequest(
            messages=requests[i].messages
            + ({"role": "assistant", "content": replies[i].text}, {"role": "user", "content": RETRY_MESSAGE}),
            settings=settings,
            sample_index=requests[i].sample_index,
            json_schema=json_schema,
        )
        for i in retry_slots
    ]
    if retry_requests:
        for i, reply in zip(retry_slots, _chat_checked(backend, retry_requests)):
            replies[i] = reply
            values[i] = parse_probability(reply.text) if reply.text is not None else None

    sample_values = np.array([math.nan if v is None else v for v in values], dtype=np.float64).reshape(
        n_prompts, samples
    )
    failed = np.isnan(sample_values)
    fallbacks = failed.sum(axis=1).astype(np.int64)
    used_prior = fallbacks == samples
    if not fallbacks.any():  # every sample readable (the usual case): no prior, no NaN
        probabilities = sample_values.mean(axis=1)
    else:
        if prior_values is None:
            prior_values = _check_prior(prior() if used_prior.any() else np.zeros(n_prompts), n_prompts)
        probabilities = prior_values.copy()
        readable = ~used_prior
        if readable.any():
            probabilities[readable] = np.nanmean(sample_values[readable], axis=1)
    reply_texts = tuple(
        tuple(replies[g * samples + s].text for s in range(samples)) for g in range(n_prompts)
    )
    errors = tuple(dict.fromkeys(r.error for r in replies if r.error is not None))
    return ProbabilityAnswers(
        probabilities=probabilities,
        samples=sample_values,
        fallbacks=fallbacks,
        used_prior=used_prior,
        replies=reply_texts,
        parse_failures=int(failed.sum()),
        retries=len(retry_requests),
        errors=errors,
    )


def _answers_from_cache(backend, prompts, settings, samples, json_schema) -> ProbabilityAnswers | None:
    """The answers when ``backend`` is a :class:`~jaxsim.llm.cache.CachedBackend` holding a
    readable reply for every request (the warm-cache case: no request objects, one
    look-up); ``None`` otherwise, and the caller takes the general path (same results)."""
    cached_values = getattr(backend, "cached_values", None)
    if cached_values is None:
        return None
    keys = prompt_keys(backend.name, backend.model, prompts, settings, samples, json_schema)
    if keys is None:
        return None
    pairs = cached_values(keys, parse_probability)
    if pairs is None:
        return None
    texts = [text for text, _ in pairs]
    n_prompts = len(prompts)
    sample_values = np.array([value for _, value in pairs], dtype=np.float64).reshape(n_prompts, samples)
    return ProbabilityAnswers(
        probabilities=sample_values.mean(axis=1),
        samples=sample_values,
        fallbacks=np.zeros(n_prompts, np.int64),
        used_prior=np.zeros(n_prompts, bool),
        replies=tuple(tuple(texts[g * samples : (g + 1) * samples]) for g in range(n_prompts)),
        parse_failures=0,
        retries=0,
        errors=(),
    )


def _chat_checked(backend: Backend, requests: list[ChatRequest]) -> list[ChatReply]:
    if not requests:
        return []
    replies = list(backend.chat(requests))
    if len(replies) != len(requests) or not all(isinstance(r, ChatReply) for r in replies):
        raise RuntimeError(
            f"backend {getattr(backend, 'name', type(backend).__name__)!r} broke the Backend contract: "
            f"{len(replies)} replies for {len(requests)} requests"
        )
    return replies
