"""Reading a probability out of a language model's free-text reply.

:func:`parse_probability` accepts, in this order of precedence:

1. **JSON**: an object such as ``{"probability": 0.3}`` anywhere in the reply (bare, inside
   a ```` ```json ```` fence or surrounded by prose). The field ``probability`` is used when
   present (any capitalisation), else a single field whose name contains ``prob``, else the
   object's only numeric field; an object with several numeric fields and none of those
   names is ambiguous and gives ``None``. A string value (``"30%"``) is read with the text
   rules below. A bare JSON number (``0.3``) is read as text.
2. **Text**, the first number in the reply, in one of these forms:

   - a percentage: ``35%``, ``35 %``, ``35 percent``, ``35 per cent`` -> 0.35;
   - a fraction: ``3/10``, ``3 in 10``, ``3 out of 10`` -> 0.3 (a zero denominator gives
     ``None``);
   - a range ``0.2-0.4``, ``20-40%``, ``0.2 to 0.4``, ``between 0.2 and 0.4`` -> its midpoint;
   - a bare decimal: ``0.35``, ``.4``, ``Probability: 0.4``, ``1e-1``.

   A bare number greater than 1 and at most 100 is read as a percentage (models often
   answer ``35`` meaning 35 %); a bare number above 100 cannot be a probability or a
   percentage and gives ``None``.
3. **Yes/No**: a reply that starts with the word ``yes`` or ``no`` (any case, optionally
   quoted or in bold) followed by the end of the reply or punctuation (``Yes``, ``"Yes."``,
   ``No, I would not``) and contains no number -> 1.0 or 0.0. ``No idea`` or ``Yes I
   would`` are not read as answers.

Results are clamped to [0, 1] (``-0.1`` -> 0.0, ``120%`` -> 1.0). Empty replies, replies
without a number, and NaN or infinite values give ``None``.
"""

from __future__ import annotations

import functools
import json
import math
import re

__all__ = ["parse_probability"]

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_PERCENT = r"\s*(?:%|percent\b|per\s+cent\b)"

# One alternative per form; earlier alternatives win at the same position.
_TEXT_FORMS = re.compile(
    rf"""
    (?:between\s+(?P<between_a>{_NUMBER})(?P<between_a_pct>{_PERCENT})?\s+and\s+
        (?P<between_b>{_NUMBER})(?P<between_b_pct>{_PERCENT})?)
  | (?:(?P<range_a>{_NUMBER})(?P<range_a_pct>{_PERCENT})?\s*(?:-|–|—|\bto\b)\s*
        (?P<range_b>{_NUMBER})(?P<range_b_pct>{_PERCENT})?)
  | (?:(?P<frac_a>\d+)\s*(?:/|\bin\b|\bout\s+of\b)\s*(?P<frac_b>\d+)(?!\d|\.\d))
  | (?:(?P<sign>-)?(?P<number>{_NUMBER})(?P<number_pct>{_PERCENT})?)
    """,
    re.IGNORECASE | re.VERBOSE,
)

# "Yes", "no.", "**No**, I would not": the word alone, then the end or punctuation ("No idea" is not an answer).
_YES_NO = re.compile(r"""^[\s"'`*(\[]*(yes|no)[\s"'`*)\]]*(?:$|[.,!;:\-–—])""", re.IGNORECASE)
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def _clamp(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return min(1.0, max(0.0, value))


def _bare_value(value: float, percent: bool) -> float | None:
    """A number as written (before clamping), with its percent sign or the >1 => percentage rule."""
    if not math.isfinite(value):
        return None
    if percent:
        return value / 100.0
    if value <= 1.0:
        return value
    if value <= 100.0:
        return value / 100.0
    return None


def _range_value(a: str, a_pct: str | None, b: str, b_pct: str | None) -> float | None:
    # "20-40%" puts the percent sign on the second bound only: it applies to both.
    percent = bool(a_pct or b_pct)
    low, high = _bare_value(float(a), percent), _bare_value(float(b), percent)
    if low is None or high is None:
        return None
    return (low + high) / 2.0


def _parse_text_number(text: str) -> float | None:
    match = _TEXT_FORMS.search(text)
    if match is None:
        return None
    groups = match.groupdict()
    if groups["between_a"] is not None:
        value = _range_value(groups["between_a"], groups["between_a_pct"], groups["between_b"], groups["between_b_pct"])
    elif groups["range_a"] is not None:
        value = _range_value(groups["range_a"], groups["range_a_pct"], groups["range_b"], groups["range_b_pct"])
    elif groups["frac_a"] is not None:
        denominator = float(groups["frac_b"])
        value = float(groups["frac_a"]) / denominator if denominator > 0 else None
    else:
        value = _bare_value(float(groups["number"]), bool(groups["number_pct"]))
        if value is not None and groups["sign"]:
            value = -value
    return _clamp(value)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _value_from_json(obj: object) -> tuple[bool, float | None]:
    """``(recognised, probability)`` for a decoded JSON object."""
    if not isinstance(obj, dict):
        return False, None
    chosen: object = None
    by_name = {str(k).lower(): v for k, v in obj.items()}
    if "probability" in by_name:
        chosen = by_name["probability"]
    else:
        prob_like = [v for k, v in by_name.items() if "prob" in k]
        numeric = [v for v in obj.values() if _is_number(v)]
        if len(prob_like) == 1:
            chosen = prob_like[0]
        elif len(numeric) == 1:
            chosen = numeric[0]
        else:
            return (len(numeric) > 1 or len(prob_like) > 1), None
    if _is_number(chosen):
        number = float(chosen)
        return True, _clamp(number if number < 0 else _bare_value(number, False))
    if isinstance(chosen, str):
        return True, _parse_text_number(chosen)
    return True, None


def _find_json_objects(text: str):
    """Every JSON object that decodes starting at a ``{`` of ``text``, in order."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            obj, end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        yield obj
        start = text.find("{", end)


def parse_probability(text: str | None) -> float | None:
    """The probability in ``text`` (a model's reply), in [0, 1], or ``None`` if there is none.

    See the module docstring for the accepted forms and their precedence.
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError(f"parse_probability expects a str, got {type(text).__name__}")
    return _parse_text(text)


@functools.lru_cache(maxsize=4096)
def _parse_text(text: str) -> float | None:
    """:func:`parse_probability` of a str, memoised (a run meets the same replies each week)."""
    stripped = text.strip()
    if not stripped:
        return None
    candidates = [m.group(1) for m in _FENCE.finditer(stripped)] + [stripped]
    for candidate in candidates:
        for obj in _find_json_objects(candidate):
            recognised, value = _value_from_json(obj)
            if recognised:
                return value
    value = _parse_text_number(stripped)
    if value is not None:
        return value
    if _TEXT_FORMS.search(stripped) is None:
        yes_no = _YES_NO.match(stripped)
        if yes_no is not None:
            return 1.0 if yes_no.group(1).lower() == "yes" else 0.0
    return None
