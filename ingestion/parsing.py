"""A source's bytes to text in sections (docs/decisions/0018): plain text, Markdown,
HTML (main content by trafilatura, headings kept), PDF (pypdf, a section per page)
and DOCX (python-docx, headings from paragraph styles).

A section is text under one heading path, or one page: chunks never span two,
so each keeps its heading and page. The kind is read from the bytes first
(magic numbers), then the declared content type and the file name's extension.

Every failure is a ParseError whose message is what the document's `error`
says: a file that is unsupported, corrupt, or over the limits
(settings.INGESTION_MAX_PAGES, INGESTION_MAX_CHARACTERS) fails its document
and nothing else.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from enum import StrEnum

from django.conf import settings

PDF_MAGIC = b"%PDF-"
ZIP_MAGIC = b"PK\x03\x04"
DOCX_MAIN_PART = "word/document.xml"
HEADING_LINE = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
FENCE_LINE = re.compile(r"^[ \t]{0,3}(```|~~~)")
HEADING_STYLE = re.compile(r"^Heading ([1-9])$")
SNIFF_BYTES = 4096


class ParseError(Exception):
    """The source cannot be ingested; the message says why, for the document's `error`."""


class Kind(StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"
    HTML = "html"
    PDF = "pdf"
    DOCX = "docx"


CONTENT_TYPES = {
    "text/plain": Kind.TEXT,
    "text/markdown": Kind.MARKDOWN,
    "text/x-markdown": Kind.MARKDOWN,
    "text/html": Kind.HTML,
    "application/xhtml+xml": Kind.HTML,
    "application/pdf": Kind.PDF,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": Kind.DOCX,
}
EXTENSIONS = {
    "txt": Kind.TEXT,
    "text": Kind.TEXT,
    "md": Kind.MARKDOWN,
    "markdown": Kind.MARKDOWN,
    "html": Kind.HTML,
    "htm": Kind.HTML,
    "pdf": Kind.PDF,
    "docx": Kind.DOCX,
}


@dataclass(frozen=True, slots=True)
class Section:
    text: str
    heading: str = ""
    page: int | None = None


@dataclass(frozen=True, slots=True)
class Parsed:
    kind: Kind
    sections: list[Section]
    title: str = ""

    @property
    def is_markdown(self) -> bool:
        """Whether the sections' text is Markdown (split on its structure)."""
        return self.kind in (Kind.MARKDOWN, Kind.HTML, Kind.DOCX)


def detect_kind(data: bytes, content_type: str = "", filename: str = "") -> Kind:
    """The kind of `data`: its magic bytes decide, else its declared type or
    extension, else a sniff (HTML or text). A binary of another kind, or bytes
    that contradict a declared PDF or DOCX, is a ParseError."""
    declared = CONTENT_TYPES.get(content_type.split(";", 1)[0].strip().lower())
    extension = EXTENSIONS.get(filename.rsplit(".", 1)[-1].lower()) if "." in filename else None
    claimed = declared or extension
    if data.startswith(PDF_MAGIC):
        return Kind.PDF
    if data.startswith(ZIP_MAGIC):
        if is_docx(data):
            return Kind.DOCX
        raise ParseError("unsupported file type: a ZIP archive that is not a Word (DOCX) document")
    if claimed in (Kind.PDF, Kind.DOCX):
        raise ParseError(f"the file is not a valid {claimed.value.upper()} (its content does not match)")
    head = data[:SNIFF_BYTES]
    if b"\x00" in head or not is_text(head):
        raise ParseError("unsupported file type: binary content that is not PDF or DOCX")
    if claimed is not None:
        return claimed
    return Kind.HTML if re.match(rb"\s*(<!doctype html|<html)", head, re.IGNORECASE) else Kind.TEXT


def is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut by the sniff window is still text.
        return error.start >= len(head) - 3
    return True


def is_docx(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return DOCX_MAIN_PART in archive.namelist()
    except zipfile.BadZipFile:
        return False


def parse(data: bytes, *, content_type: str = "", filename: str = "") -> Parsed:
    """The sections of a source, or ParseError."""
    kind = detect_kind(data, content_type, filename)
    parsed = PARSERS[kind](data)
    # PostgreSQL text cannot hold NUL characters (PDF text extraction can yield them).
    sections = [Section(s.text.replace("\x00", ""), s.heading, s.page) for s in parsed.sections]
    parsed = Parsed(parsed.kind, sections, parsed.title)
    characters = sum(len(section.text) for section in parsed.sections)
    if characters > settings.INGESTION_MAX_CHARACTERS:
        raise ParseError(
            f"the document has {characters} characters of text, "
            f"over the limit of {settings.INGESTION_MAX_CHARACTERS}"
        )
    if characters == 0 or not any(section.text.strip() for section in parsed.sections):
        raise ParseError(f"no text found in the {kind.value} document")
    return parsed


def decode(data: bytes) -> str:
    return data.decode("utf-8-sig", errors="replace")


def parse_text(data: bytes) -> Parsed:
    return Parsed(Kind.TEXT, [Section(decode(data))])


def parse_markdown(data: bytes) -> Parsed:
    sections = markdown_sections(decode(data))
    return Parsed(Kind.MARKDOWN, sections, title=first_heading(sections))


def markdown_sections(text: str) -> list[Section]:
    """Text cut before each ATX heading (not inside code fences); each section keeps
    its heading line and the path of headings above it ("Guide > Install")."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    in_fence = False

    def close() -> None:
        body = "\n".join(lines).strip()
        if body:
            sections.append(Section(body, " > ".join(title for _, title in path)[:500]))
        lines.clear()

    for line in text.splitlines():
        if FENCE_LINE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else HEADING_LINE.match(line)
        if heading is not None:
            close()
            level = len(heading.group(1))
            path = [(lvl, title) for lvl, title in path if lvl < level]
            path.append((level, heading.group(2).strip()))
        lines.append(line)
    close()
    return sections


def first_heading(sections: list[Section]) -> str:
    return next((s.heading.split(" > ", 1)[0] for s in sections if s.heading), "")


def parse_html(data: bytes) -> Parsed:
    """The page's main content (navigation, footers and other boilerplate dropped) as
    Markdown, so its headings structure the sections."""
    import trafilatura

    html = decode(data)
    markdown = trafilatura.extract(
        html, output_format="markdown", include_comments=False, include_tables=True, include_links=False
    )
    if not markdown:
        raise ParseError("no main content found in the HTML page")
    document = trafilatura.bare_extraction(html, with_metadata=True, only_with_metadata=False)
    title = str(getattr(document, "title", "") or "")
    sections = markdown_sections(markdown)
    return Parsed(Kind.HTML, sections, title=title or first_heading(sections))


def parse_pdf(data: bytes) -> Parsed:
    """A section per page with text, numbered from 1; an encrypted PDF is read only
    when it opens with an empty password."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ParseError("the PDF is encrypted")
        pages = len(reader.pages)
        if pages > settings.INGESTION_MAX_PAGES:
            raise ParseError(f"the PDF has {pages} pages, over the limit of {settings.INGESTION_MAX_PAGES}")
        sections = [
            Section(text, page=number)
            for number, page in enumerate(reader.pages, start=1)
            if (text := (page.extract_text() or "").strip())
        ]
        title = str((reader.metadata or {}).get("/Title") or "")
    except ParseError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as error:
        raise ParseError(f"the PDF cannot be read (corrupt or unsupported): {error}") from None
    if not sections:
        raise ParseError("no text found in the PDF (a scanned PDF needs OCR, which is not supported)")
    return Parsed(Kind.PDF, sections, title=title)


def parse_docx(data: bytes) -> Parsed:
    """Paragraphs and tables in order, as Markdown: a paragraph in a `Heading N` (or
    `Title`) style is a heading of that level."""
    import docx
    from docx.table import Table

    check_unpacked_size(data)
    try:
        document = docx.Document(io.BytesIO(data))
        lines: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                lines.extend(" | ".join(cell.text.strip() for cell in row.cells) for row in block.rows)
                lines.append("")
                continue
            text = block.text.strip()
            if text:
                level = heading_level(block.style.name if block.style is not None else "")
                lines.extend([f"{'#' * level} {text}" if level else text, ""])
        title = document.core_properties.title or ""
    except (KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ParseError(f"the DOCX document cannot be read (corrupt or unsupported): {error}") from None
    sections = markdown_sections("\n".join(lines))
    return Parsed(Kind.DOCX, sections, title=title or first_heading(sections))


def heading_level(style_name: str | None) -> int:
    if style_name == "Title":
        return 1
    match = HEADING_STYLE.match(style_name or "")
    return min(int(match.group(1)), 6) if match else 0


def check_unpacked_size(data: bytes) -> None:
    """Refuse a ZIP that would unpack past the limit (a decompression bomb)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as error:
        raise ParseError(f"the DOCX document cannot be read (corrupt): {error}") from None
    if unpacked > settings.INGESTION_MAX_UNPACKED_BYTES:
        raise ParseError(
            f"the DOCX document unpacks to {unpacked} bytes, "
            f"over the limit of {settings.INGESTION_MAX_UNPACKED_BYTES}"
        )


PARSERS = {
    Kind.TEXT: parse_text,
    Kind.MARKDOWN: parse_markdown,
    Kind.HTML: parse_html,
    Kind.PDF: parse_pdf,
    Kind.DOCX: parse_docx,
}
