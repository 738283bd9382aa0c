"""Each committed sample parsed into sections, and sections into chunks."""

from __future__ import annotations

import io
import zipfile

import pytest
from pytest_django import Settings

from ingestion.chunking import chunk, count_tokens
from ingestion.parsing import Kind, Parsed, ParseError, Section, parse
from ingestion.tests.factories import sample


def test_markdown_sections_keep_their_heading_path() -> None:
    parsed = parse(sample("recipes.md"), filename="recipes.md")

    assert (parsed.kind, parsed.title) == (Kind.MARKDOWN, "Sourdough baking notes")
    assert [s.heading for s in parsed.sections] == [
        "Sourdough baking notes",
        "Sourdough baking notes > Starter",
        "Sourdough baking notes > Starter > Storing the starter",
        "Sourdough baking notes > Dough",  # the `#` line in the code block is no heading
        "Sourdough baking notes > Baking",
    ]


def test_html_keeps_the_main_content_and_its_headings_without_boilerplate() -> None:
    parsed = parse(sample("guide.html"), content_type="text/html")

    text = "\n".join(s.text for s in parsed.sections)
    assert parsed.title == "Installing the garden irrigation kit"
    assert "Each dripper delivers two litres of water per hour." in text
    for boilerplate in ("Shop all products", "Sign in", "Copyright", "Privacy policy", "Cookie"):
        assert boilerplate not in text
    assert parsed.sections[-1].heading.endswith("Fitting the drippers > Adjusting the flow")


def test_a_pdf_has_a_section_per_page() -> None:
    parsed = parse(sample("manual.pdf"), content_type="application/octet-stream")

    assert (parsed.kind, parsed.title) == (Kind.PDF, "Solar manual")
    assert [s.page for s in parsed.sections] == [1, 2, 3]
    assert "red status light" in parsed.sections[1].text


def test_docx_headings_come_from_paragraph_styles() -> None:
    parsed = parse(sample("handbook.docx"), filename="handbook.docx")

    assert (parsed.kind, parsed.title) == (Kind.DOCX, "Employee handbook")
    assert [s.heading for s in parsed.sections] == [
        "Employee handbook",
        "Holidays",
        "Holidays > Requesting leave",
        "Expenses",
    ]
    assert "Hotel | 150 EUR per night" in parsed.sections[-1].text


@pytest.mark.parametrize(
    ("name", "content_type", "error"),
    [
        ("corrupt.pdf", "application/pdf", "the PDF cannot be read (corrupt or unsupported)"),
        ("image.bin", "", "unsupported file type: binary content"),
        ("recipes.md", "application/pdf", "the file is not a valid PDF"),
    ],
)
def test_unreadable_files_are_a_parse_error(name: str, content_type: str, error: str) -> None:
    with pytest.raises(ParseError, match=error.replace("(", r"\(").replace(")", r"\)")):
        parse(sample(name), content_type=content_type)


def test_limits_bound_the_work(settings: Settings) -> None:
    settings.INGESTION_MAX_PAGES = 2
    with pytest.raises(ParseError, match="the PDF has 3 pages, over the limit of 2"):
        parse(sample("manual.pdf"))
    settings.INGESTION_MAX_CHARACTERS = 100
    with pytest.raises(ParseError, match="over the limit of 100"):
        parse(sample("recipes.md"), filename="recipes.md")
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"\0" * 2_000_000)
    settings.INGESTION_MAX_UNPACKED_BYTES = 1_000_000
    with pytest.raises(ParseError, match="unpacks to 2000000 bytes"):
        parse(bomb.getvalue())


def test_chunks_fit_the_budget_overlap_and_stay_in_their_section() -> None:
    paragraphs = [
        f"Sentence {n} tells the reader one more fact about the topic of part {n}." for n in range(40)
    ]
    parsed = Parsed(
        Kind.MARKDOWN,
        [Section("# A\n\n" + "\n\n".join(paragraphs), "A"), Section("# B\n\nshort", "B", page=2)],
    )

    chunks = chunk(parsed, capacity=60, overlap=15)

    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert all(c.token_count <= 60 for c in chunks)
    assert all(c.token_count == count_tokens(c.text) for c in chunks)
    assert len(chunks) > 5
    assert (chunks[-1].heading, chunks[-1].page, chunks[-1].text) == ("B", 2, "# B\n\nshort")
    first, second = chunks[1].text, chunks[2].text
    assert any(word in first for word in second.split()[:3])  # consecutive chunks overlap
