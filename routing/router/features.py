"""What the router knows about a request, computed locally in microseconds.

Two kinds of features:
- text features of the prompt, the same offline (training on RouteLLM's data)
  and online (a request's messages): its terms, which feed the classifier's
  linear model and the similar-prompt clusters, and a few hand-made signals
  that carry across subjects (length, digits and operators, negated questions,
  numeric answer options, domain flags);
- request features the classifier never saw in training, used by the policy
  and the online learner: the requested output format and how strict its
  JSON schema is, and the tenant.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TOKEN_PATTERN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern
CHARACTERS_PER_TOKEN = 4
LONG_WORD_LENGTH = 9
OPTION_LINE = re.compile(r"^[A-J][.)] ", re.MULTILINE)
NUMERIC_OPTION = re.compile(r"^[A-J][.)] [-+\d\s.,/%$^*()e=<>]+$", re.MULTILINE)
DIGIT = re.compile(r"\d")
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
SENTENCE_END = re.compile(r"[.?!](?:\s|$)")
OPERATOR = re.compile(r"[-+*/^=<>()%$]")
NEGATIONS = frozenset({"NOT", "EXCEPT", "LEAST", "FALSE", "INCORRECT"})
CALCULATION_WORDS = frozenset({"calculate", "compute", "solve"})
CALCULATION_PHRASES = ("how many", "how much", "what is the value", "find the")

# Domain flags: any of these (lowercase) words in the prompt. Word sets, not
# regular expressions: a set lookup per word keeps a long prompt under 0.1 ms.
DOMAINS: dict[str, frozenset[str]] = {
    "math": frozenset(
        [
            "equation",
            "integer",
            "polynomial",
            "probability",
            "derivative",
            "integral",
            "matrix",
            "theorem",
            "prime",
            "sum",
            "product",
            "ratio",
            "fraction",
            "percent",
            "average",
            "remainder",
            "sqrt",
            "log",
        ]
    ),
    "code": frozenset(
        [
            "function",
            "algorithm",
            "program",
            "code",
            "compile",
            "python",
            "java",
            "variable",
            "array",
            "loop",
            "recursion",
            "binary",
            "bit",
            "byte",
            "pointer",
            "def",
        ]
    ),
    "law": frozenset(
        [
            "court",
            "statute",
            "plaintiff",
            "defendant",
            "contract",
            "constitution",
            "jurisdiction",
            "liable",
            "liability",
            "tort",
            "amendment",
            "appeal",
            "judge",
            "jury",
            "legal",
        ]
    ),
    "medicine": frozenset(
        [
            "patient",
            "diagnosis",
            "symptom",
            "disease",
            "clinical",
            "dose",
            "syndrome",
            "treatment",
            "infection",
            "therapy",
            "mg",
            "blood",
            "cell",
            "tissue",
        ]
    ),
    "finance": frozenset(
        [
            "interest",
            "revenue",
            "tax",
            "depreciation",
            "inflation",
            "gdp",
            "market",
            "price",
            "cost",
            "profit",
            "investment",
            "accounting",
            "asset",
            "liabilities",
        ]
    ),
    "science": frozenset(
        [
            "energy",
            "velocity",
            "mass",
            "force",
            "electron",
            "molecule",
            "reaction",
            "acid",
            "temperature",
            "wavelength",
            "gravity",
            "atom",
            "charge",
            "voltage",
        ]
    ),
}
HAND_FEATURES = (
    "log_characters",
    "log_tokens",
    "digit_share",
    "operator_share",
    "mean_word_length",
    "long_word_share",
    "negated_question",
    "two_statements",
    "answer_options",
    "numeric_option_share",
    "calculation",
    "log_lines",
    "log_numbers",
    "log_sentences",
    *(f"domain_{name}" for name in DOMAINS),
)


def terms(text: str) -> list[str]:
    """Unigrams and bigrams exactly as scikit-learn's TfidfVectorizer(ngram_range=(1, 2)) makes them."""
    return ngrams(TOKEN_PATTERN.findall(text.lower()))


def ngrams(words: list[str]) -> list[str]:
    return words + [f"{first} {second}" for first, second in itertools.pairwise(words)]


def analyse(text: str) -> tuple[list[str], list[float]]:
    """The prompt's terms and its HAND_FEATURES, in that order, from one tokenisation."""
    words = TOKEN_PATTERN.findall(text)
    lowered = TOKEN_PATTERN.findall(text.lower())  # as scikit-learn: lowercase, then tokenise
    vocabulary = set(lowered)
    characters, word_count = max(len(text), 1), max(len(words), 1)
    options = len(OPTION_LINE.findall(text))
    lowered_text = text.lower()
    features = [
        math.log1p(len(text)),
        math.log1p(len(text) / CHARACTERS_PER_TOKEN),
        len(DIGIT.findall(text)) / characters,
        len(OPERATOR.findall(text)) / characters,
        sum(map(len, words)) / word_count,
        sum(len(word) >= LONG_WORD_LENGTH for word in words) / word_count,
        float(not NEGATIONS.isdisjoint(words)),
        float("Statement 1" in text),
        float(options),
        len(NUMERIC_OPTION.findall(text)) / options if options else 0.0,
        float(
            not CALCULATION_WORDS.isdisjoint(vocabulary)
            or any(phrase in lowered_text for phrase in CALCULATION_PHRASES)
        ),
        math.log1p(text.count("\n")),
        math.log1p(len(NUMBER.findall(text))),
        math.log1p(len(SENTENCE_END.findall(text))),
        *(float(not keywords.isdisjoint(vocabulary)) for keywords in DOMAINS.values()),
    ]
    return ngrams(lowered), features


def hand_features(text: str) -> list[float]:
    return analyse(text)[1]


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """The requested output: "text", "json_object" or "json_schema", and how
    strict the schema is (required fields, nesting, enums and patterns, `strict`)."""

    kind: str = "text"
    strictness: int = 0

    @property
    def bucket(self) -> str:
        if self.kind != "json_schema":
            return self.kind
        return "schema_strict" if self.strictness >= 4 else "schema_loose"


PLAIN_TEXT = OutputFormat()


def output_format(response_format: Any) -> OutputFormat:
    if not isinstance(response_format, Mapping):
        return PLAIN_TEXT
    kind = response_format.get("type")
    if kind == "json_object":
        return OutputFormat("json_object")
    if kind != "json_schema":
        return PLAIN_TEXT
    json_schema = response_format.get("json_schema")
    if not isinstance(json_schema, Mapping):
        return OutputFormat("json_schema")
    strictness = schema_strictness(json_schema.get("schema"), depth=0) + 2 * bool(json_schema.get("strict"))
    return OutputFormat("json_schema", strictness)


def schema_strictness(schema: Any, depth: int) -> int:
    """Required properties, constrained values and nesting, counted over the schema (depth-bounded)."""
    if not isinstance(schema, Mapping) or depth > 8:
        return 0
    score = depth
    required = schema.get("required")
    if isinstance(required, list):
        score += len(required)
    score += sum(key in schema for key in ("enum", "const", "pattern", "format", "minimum", "maximum"))
    if schema.get("additionalProperties") is False:
        score += 1
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        score += sum(schema_strictness(child, depth + 1) for child in properties.values())
    score += schema_strictness(schema.get("items"), depth + 1)
    return score


# The router judges at most this much of a prompt, its head and its tail: features
# of a 2 MB prompt would take half a second on the event loop; of this, about 2 ms.
PROMPT_HEAD_CHARACTERS = 6_000
PROMPT_TAIL_CHARACTERS = 2_000


def bounded(text: str) -> str:
    """The text, or its head and tail when longer than the router judges."""
    if len(text) <= PROMPT_HEAD_CHARACTERS + PROMPT_TAIL_CHARACTERS:
        return text
    return f"{text[:PROMPT_HEAD_CHARACTERS]}\n{text[-PROMPT_TAIL_CHARACTERS:]}"


def prompt_of(messages: Any) -> str:
    """The text the router judges: the contents of the conversation's user messages
    (their head and tail when long, so the work is bounded)."""
    if not isinstance(messages, list):
        return ""
    parts: list[str] = []
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(
                part["text"]
                for part in content
                if isinstance(part, Mapping) and isinstance(part.get("text"), str)
            )
    return bounded("\n".join(parts))
