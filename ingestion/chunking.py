"""Sections to chunks of at most the collection's token budget, with its overlap
(semantic-text-splitter, docs/decisions/0018).

The splitter cuts at the largest structural unit that fits: Markdown sections,
then paragraphs, sentences and words; plain text by paragraphs, sentences and
words. Tokens are counted with the local embedding model's tokenizer (shipped
in the wordllama wheel), whatever model the collection embeds with: a
budget close to most subword tokenizers', read from a file, never a download.
A chunk never spans two sections, so it keeps its section's heading and page.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from semantic_text_splitter import MarkdownSplitter, TextSplitter
from tokenizers import Tokenizer

from ingestion.parsing import Parsed

TOKENIZER_FILE = ("tokenizers", "l2_supercat_tokenizer_config.json")


@dataclass(frozen=True, slots=True)
class ChunkText:
    position: int
    text: str
    heading: str
    page: int | None
    token_count: int


@cache
def tokenizer() -> Tokenizer:
    path = files("wordllama").joinpath(*TOKENIZER_FILE)
    loaded = Tokenizer.from_file(str(path))
    loaded.no_truncation()
    loaded.no_padding()
    return loaded


@cache
def splitter(markdown: bool, capacity: int, overlap: int) -> MarkdownSplitter | TextSplitter:
    kind = MarkdownSplitter if markdown else TextSplitter
    return kind.from_huggingface_tokenizer(tokenizer(), capacity, overlap)


def count_tokens(text: str) -> int:
    return len(tokenizer().encode(text, add_special_tokens=False).ids)


def chunk(parsed: Parsed, *, capacity: int, overlap: int) -> list[ChunkText]:
    """The document's chunks in order, positions from 0."""
    split = splitter(parsed.is_markdown, capacity, overlap)
    chunks: list[ChunkText] = []
    for section in parsed.sections:
        for text in split.chunks(section.text):
            if text.strip():
                chunks.append(ChunkText(len(chunks), text, section.heading, section.page, count_tokens(text)))
    return chunks
