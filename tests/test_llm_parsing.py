"""parse_probability: every accepted form, its precedence, clamping, and garbage."""

import math

import pytest

from jaxsim.llm.parsing import parse_probability


@pytest.mark.parametrize(
    "text, expected",
    [
        # JSON, bare, fenced, inside prose, other field names, string values
        ('{"probability": 0.3}', 0.3),
        ('{"Probability": 0.3}', 0.3),
        ('  {"probability": 1}  ', 1.0),
        ('```json\n{"probability": 0.25}\n```', 0.25),
        ('```\n{"probability": 0.25}\n```', 0.25),
        ('Sure! Here is my answer: {"probability": 0.7}. Hope it helps.', 0.7),
        ('{"p": 0.45}', 0.45),
        ('{"isolation_probability": 0.2, "age": 70}', 0.2),
        ('{"probability": 0.6, "confidence": 0.9}', 0.6),
        ('{"probability": "30%"}', 0.3),
        ('{"probability": 35}', 0.35),
        ('{"reason": "cases rose", "probability": 0.8}', 0.8),
        # bare decimals
        ("0.35", 0.35),
        ("Probability: .4", 0.4),
        ("Probability of isolating: 0.6.", 0.6),
        ("1e-1", 0.1),
        ("0", 0.0),
        ("1", 1.0),
        ("1.0", 1.0),
        # bare number in (1, 100] read as a percentage
        ("35", 0.35),
        ("I'd say 80.", 0.8),
        # percentages
        ("35%", 0.35),
        ("35 %", 0.35),
        ("35 percent", 0.35),
        ("about 35 per cent", 0.35),
        ("12.5%", 0.125),
        # fractions
        ("3/10", 0.3),
        ("3 / 10", 0.3),
        ("3 in 10", 0.3),
        ("About 3 in 10.", 0.3),
        ("3/10.", 0.3),
        ("1 out of 4", 0.25),
        # ranges -> midpoint
        ("0.2-0.4", 0.3),
        ("20-40%", 0.3),
        ("0.2 to 0.4", 0.3),
        ("between 0.1 and 0.3", 0.2),
        ("between 10% and 30%", 0.2),
        # Yes / No at the start, without a number
        ("Yes", 1.0),
        ("yes.", 1.0),
        ('"Yes."', 1.0),
        ("No", 0.0),
        ("NO, I would not.", 0.0),
        ("**No**", 0.0),
        # a number wins over yes/no
        ("Yes, about 80%", 0.8),
        ("No - maybe 0.1", 0.1),
        # clamping
        ("-0.2", 0.0),
        ("120%", 1.0),
        ('{"probability": 1.5}', 0.015),
        ('{"probability": -3}', 0.0),
    ],
)
def test_accepted_forms(text, expected):
    value = parse_probability(text)
    assert value is not None, text
    assert value == pytest.approx(expected), text
    assert 0.0 <= value <= 1.0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t",
        "I cannot answer that.",
        "nan",
        "NaN%",
        "inf",
        "-inf",
        "Infinity",
        '{"probability": NaN}',
        '{"probability": Infinity}',
        '{"probability": null}',
        '{"probability": "unknown"}',
        '{"a": 0.1, "b": 0.2}',  # two numeric fields, none named like a probability: ambiguous
        "150",  # above 100 without a percent sign: neither a probability nor a percentage
        "1e999",
        "1/0",
        "Maybe.",
        "Yesterday I went out.",  # 'yes' only as a whole word
        "Nobody knows.",
        "No idea.",
        "no clue, sorry",
    ],
)
def test_unreadable_replies_give_none(text):
    assert parse_probability(text) is None


def test_none_input_gives_none_and_non_str_is_an_error():
    assert parse_probability(None) is None
    with pytest.raises(TypeError, match="expects a str"):
        parse_probability(0.3)


def test_json_is_preferred_over_earlier_numbers_in_prose():
    assert parse_probability('For a 70-year-old: {"probability": 0.9}') == pytest.approx(0.9)


def test_first_number_is_used_in_prose():
    assert parse_probability("I estimate 0.25, maybe up to 0.5.") == pytest.approx(0.25)


def test_truncated_json_falls_back_to_the_number():
    # max_tokens can cut the closing brace off
    assert parse_probability('{"probability": 0.42') == pytest.approx(0.42)


def test_result_is_a_finite_float():
    value = parse_probability("0.5")
    assert isinstance(value, float) and math.isfinite(value)
