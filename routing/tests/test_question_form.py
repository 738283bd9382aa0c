"""The question-form features of ADR 0049's candidates (bench/routing_form.py): they
read the options, the stem and its cues, not the topic."""

from __future__ import annotations

import math

from bench.routing_form import question_form

NAMES = (
    "options_mean_length",
    "options_spread",
    "options_longest_to_shortest",
    "options_overlap",
    "all_or_none",
    "option_units",
    "stem_length",
    "stem_to_options",
    "last_sentence_share",
    "question_mark",
    "stem_numbers",
    "arithmetic",
    "multi_step_cues",
    "roman_combination",
    "judgement",
    "code",
    "formula",
    "blank",
    "stem_units",
    "stem_lines",
    *(f"starts_{word}" for word in ("what", "which", "why", "how", "who", "when", "where")),
    "option_negation",
    "passage_then_short_question",
)
WORD_PROBLEM = (
    "Janet's ducks lay 16 eggs per day. She eats three each morning and bakes with four. "
    "She sells the remaining eggs for $2 each. How much does she make every day?"
)
MULTIPLE_CHOICE = (
    "Which of the following is NOT a prime number?\nA. 2\nB. 3\nC. 9\nD. all of the above\nAnswer:"
)


def features(text: str) -> dict[str, float]:
    values = question_form(text)
    assert len(values) == len(NAMES)
    return dict(zip(NAMES, values, strict=True))


def test_a_word_problem_has_numbers_and_multi_step_cues_and_no_options() -> None:
    form = features(WORD_PROBLEM)

    assert form["multi_step_cues"] == math.log1p(5)  # per, each twice, remaining, how much
    assert form["stem_numbers"] == math.log1p(2)
    assert form["options_mean_length"] == 0.0
    assert form["question_mark"] == 1.0
    # As measured: a question word opening the stem, or inside its last sentence's opening.
    assert form["starts_how"] == 0.0
    assert features("Tell me how many eggs there are?")["starts_how"] == 1.0


def test_options_are_compared() -> None:
    form = features(MULTIPLE_CHOICE)

    assert form["all_or_none"] == 1.0
    assert form["starts_which"] == 1.0
    # "all of the above" (16 characters) against "2", each plus one.
    assert form["options_longest_to_shortest"] == math.log(17 / 2)
    assert form["stem_length"] == math.log1p(len("Which of the following is NOT a prime number?"))
    assert features("Pick one.\nA. yes\nB. no\nAnswer:")["option_negation"] == 1.0
