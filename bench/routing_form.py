"""Question-form features: a candidate of ADR 0049, scored by bench/routing.py, not served.

What a question asks rather than what it is about: the answer options (their
length, spread and word overlap, "all/none of the above", units, negations),
the stem (its length against the options', the share its last sentence takes,
numbers and arithmetic, multi-step cues such as "how many", "each",
"remaining"), combination answers ("I and II only"), code, formulas, blanks and
the question word (the stem's first word, or a word after the first within the
first 40 characters of its last sentence: as measured, so a last sentence
opening with "How" counts only when the stem does). The hope was that these carry across subjects where topic
words do not; on the folds they moved the shipped pipeline by less than the
folds' noise (ADR 0049), so they stay here.
"""

from __future__ import annotations

import itertools
import math
import re

OPTION = re.compile(r"^([A-J])[.)] (.*)$", re.MULTILINE)
WORD = re.compile(r"(?u)\b\w\w+\b")
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
ARITHMETIC = re.compile(r"\d\s*[-+*/x\u00d7^=]\s*\d")
SENTENCE_BREAK = re.compile(r"(?<=[.?!])\s+")
MULTI_STEP = (
    "how many",
    "how much",
    "total",
    "each",
    "per ",
    "remaining",
    "left",
    "times",
    "twice",
    "half",
    "more than",
    "less than",
    "percent",
    "%",
    "average",
    "difference",
)
ALL_OR_NONE = ("all of the above", "none of the above", "both", "neither", "all of these", "none of these")
ROMAN_COMBINATION = re.compile(r"\b(?:I{1,3}|IV)\b(?: and|,| only)")
JUDGEMENT = (
    "best",
    "most likely",
    "most appropriate",
    "primarily",
    "most accurate",
    "strongest",
    "weakest",
    "most",
)
CODE = re.compile(r"[{};]|\bdef |\breturn\b|==|\bint \b|\bprint\(")
FORMULA = re.compile(r"[\^_\\]|\b(?:sqrt|log|sin|cos)\b")
BLANK = re.compile(r"_{2,}")
UNITS = re.compile(r"\b\d+(?:\.\d+)?\s?(?:m|s|kg|g|J|N|W|V|A|Hz|K|mol|L|mL|cm|km|mm|eV|C|Pa|atm|°C|ohm|Ω)\b")
QUESTION_WORDS = ("what", "which", "why", "how", "who", "when", "where")
OPTION_NEGATIONS = frozenset({"not", "no", "never", "cannot"})
PASSAGE_CHARACTERS = 600
SHORT_QUESTION_CHARACTERS = 200


def question_form(text: str) -> list[float]:
    """29 features of the question's form (options, stem, cues), in a fixed order."""
    options = [match.group(2) for match in OPTION.finditer(text)]
    first = OPTION.search(text)
    stem = (text[: first.start()] if first else text).removesuffix("\n")
    lowered_stem = stem.lower()
    lengths = [len(option) for option in options] or [0]
    mean = sum(lengths) / len(lengths)
    spread = math.sqrt(sum((length - mean) ** 2 for length in lengths) / len(lengths))
    words = [set(WORD.findall(option.lower())) for option in options]
    overlaps = [len(a & b) / len(a | b) for a, b in itertools.combinations(words, 2) if a | b]
    lowered_options = " ".join(options).lower()
    sentences = [sentence for sentence in SENTENCE_BREAK.split(stem.strip()) if sentence]
    last = sentences[-1] if sentences else ""
    opening = last.lower()[:40]
    return [
        math.log1p(mean),
        spread / mean if mean else 0.0,
        math.log((max(lengths) + 1) / (min(lengths) + 1)),
        sum(overlaps) / len(overlaps) if overlaps else 0.0,
        float(any(phrase in lowered_options for phrase in ALL_OR_NONE)),
        float(bool(UNITS.search(lowered_options))),
        math.log1p(len(stem)),
        math.log1p(len(stem)) - math.log1p(sum(lengths)),
        len(last) / max(len(stem), 1),
        float(stem.rstrip().endswith("?")),
        math.log1p(len(NUMBER.findall(stem))),
        math.log1p(len(ARITHMETIC.findall(text))),
        math.log1p(sum(lowered_stem.count(cue) for cue in MULTI_STEP)),
        float(bool(ROMAN_COMBINATION.search(text))),
        float(any(phrase in lowered_stem for phrase in JUDGEMENT)),
        float(bool(CODE.search(text))),
        float(bool(FORMULA.search(text))),
        float(bool(BLANK.search(text))),
        math.log1p(len(UNITS.findall(stem))),
        math.log1p(stem.count("\n")),
        *(float(lowered_stem.lstrip().startswith(word) or f" {word} " in opening) for word in QUESTION_WORDS),
        float(not OPTION_NEGATIONS.isdisjoint(lowered_options.split())),
        float(len(stem) > PASSAGE_CHARACTERS and len(last) < SHORT_QUESTION_CHARACTERS),
    ]
