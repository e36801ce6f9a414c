"""The fenced blocks of the documentation, found the way a Markdown renderer finds them.

Every fenced block of README.md, docs/**/*.md (recipes included) and examples/**/*.md is a
:class:`Block`: its file, the line of its opening fence, its language and its text (list
indentation removed), and the marker on the line just before the fence, if any:

``<!-- not run: <reason> -->``
    the block cannot be run by a test; the reason is required.
``<!-- signature: <what> -->``
    an API signature listing: ``<what>`` is the dotted path of a Python callable (its
    parameters are compared with :func:`inspect.signature`) or ``canary-judge`` (each
    command's options are compared with its ``--help``).

Nothing else exempts a block. :func:`runner` says which test runs an unmarked block, by its
language and content; ``tests/unit/test_docs_blocks.py`` fails on a block no test runs.

Shell blocks follow one convention (applied in the docs, enforced by the test): the service
is addressed as ``localhost:8080`` (where ``canary-judge serve`` listens by default, and where
``kubectl port-forward`` puts a cluster's service), tokens are ``$TOKEN`` (a judge token) and
``$ADMIN_TOKEN`` (an admin token), an analysis id is ``$ID``. A comment line right after a
command that starts with ``# {``, ``# [`` or ``# http`` is the output the command prints
(``...`` elides); a command whose comment says ``exits N`` must exit with status N (else 0).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGUAGES = frozenset({"sh", "bash", "console", "shell"})
DATA_LANGUAGES = frozenset({"yaml", "json"})
MANIFEST_GROUPS = ("argoproj.io/", "flagger.app/")
"""apiVersion prefixes of the manifests tests/unit/test_manifests.py validates."""

_MARKER = re.compile(r"^\s*<!--\s*(not run|signature)\s*:(.*?)-->\s*$")
_MARKER_LIKE = re.compile(r"^\s*<!--\s*(not[ -]?run|signature)\b", re.IGNORECASE)


class MarkerError(ValueError):
    """A marker that does not follow the convention (e.g. ``not run`` without a reason)."""


@dataclass(frozen=True)
class Marker:
    kind: str  # "not run" or "signature"
    detail: str  # the reason, or what the signature describes


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repository root
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    marker: Marker | None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def documents(root: Path = ROOT) -> list[Path]:
    """README.md, every Markdown file under docs/ and examples/: new files are found."""
    found = [root / "README.md"]
    for folder in ("docs", "examples"):
        found.extend(sorted((root / folder).rglob("*.md")))
    return [path for path in found if path.is_file()]


def read_blocks(path: Path, root: Path = ROOT) -> list[Block]:
    """The fenced blocks of one Markdown file; a malformed marker is a :class:`MarkerError`
    naming file:line."""
    text = path.read_text()
    lines = text.splitlines()
    relative = str(path.relative_to(root))
    found = []
    for token in MarkdownIt("commonmark").parse(text):
        if token.type != "fence" or token.map is None:
            continue
        first = token.map[0]
        marker = _marker(lines[first - 1] if first > 0 else "", f"{relative}:{first}")
        language = token.info.strip().split(" ")[0] if token.info else ""
        found.append(Block(relative, first + 1, language, token.content, marker))
    return found


def _marker(line: str, where: str) -> Marker | None:
    match = _MARKER.match(line)
    if match:
        detail = match.group(2).strip()
        if not detail:
            raise MarkerError(f"{where}: `<!-- {match.group(1)}: ... -->` needs a reason")
        return Marker(match.group(1), detail)
    if _MARKER_LIKE.match(line):
        raise MarkerError(f"{where}: write `<!-- not run: <reason> -->` or "
                          f"`<!-- signature: <what> -->`, not {line.strip()!r}")
    return None


@cache
def all_blocks() -> tuple[Block, ...]:
    return tuple(block for path in documents() for block in read_blocks(path))


def blocks(language: set[str] | frozenset[str] | str | None = None) -> list[Block]:
    """Unmarked blocks (of these languages): the ones a test must run."""
    languages = {language} if isinstance(language, str) else language
    return [b for b in all_blocks()
            if b.marker is None and (languages is None or b.language in languages)]


def signature_blocks() -> list[Block]:
    return [b for b in all_blocks() if b.marker is not None and b.marker.kind == "signature"]


def reader_checkout(work: Path) -> Path:
    """``work`` made to look like the reader's checkout, where the docs' commands and snippets
    run: every top-level entry of the repository linked into it (examples/, deploy/, the
    .venv ...), so what they write (databases, reports) lands in ``work``, not the repository."""
    work.mkdir(parents=True, exist_ok=True)
    for entry in ROOT.iterdir():
        if entry.name in (".git", "canary-judge.db") or (work / entry.name).exists():
            continue
        (work / entry.name).symlink_to(entry)
    return work


# --- data blocks (yaml, json) -----------------------------------------------------------------

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def load_data(block: Block) -> list[Any]:
    """The documents of a ``yaml`` or ``json`` block. JSON may carry ``// comments`` and
    ``...`` where members or items are left out (the docs' abbreviated answers), and may be a
    bare ``"key": value`` member; YAML may be several documents and ``...`` lines for left-out
    lines. Unparseable text raises (yaml.YAMLError / json.JSONDecodeError)."""
    if block.language == "json":
        return [loads_abbreviated_json(block.text)]
    text = "\n".join(line for line in block.text.splitlines() if line.strip() != "...")
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def loads_abbreviated_json(text: str) -> Any:
    cleaned = _strip_comments_and_elisions(text).strip()
    if cleaned.startswith('"'):
        cleaned = "{" + cleaned + "}"  # a bare member, e.g. "judge": {...}
    # A member or item left out next to others leaves a doubled or dangling comma.
    cleaned = re.sub(r",(\s*,)+", ",", cleaned)
    cleaned = re.sub(r",(\s*[}\]])", r"\1", cleaned)
    cleaned = re.sub(r"([{\[]\s*),", r"\1", cleaned)
    return json.loads(cleaned)


def _strip_comments_and_elisions(text: str) -> str:
    """``// ...`` to the end of the line and ``...`` removed, outside strings only."""
    out = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == '"':
            match = _JSON_STRING.match(text, index)
            if match is None:
                raise json.JSONDecodeError("unterminated string", text, index)
            out.append(match.group(0))
            index = match.end()
        elif text.startswith("//", index):
            end = text.find("\n", index)
            index = len(text) if end < 0 else end
        elif text.startswith("...", index):
            index += 3
        else:
            out.append(char)
            index += 1
    return "".join(out)


def is_manifest(document: Any) -> bool:
    return isinstance(document, dict) and str(document.get("apiVersion", "")).startswith(
        MANIFEST_GROUPS)


def is_config(document: Any) -> bool:
    """A canary config (native): a mapping with ``metrics`` that is no answer (those carry a
    ``verdict``) and no controller's template (an Argo template's metrics have a ``provider``)."""
    if not isinstance(document, dict) or not isinstance(document.get("metrics"), list):
        return False
    if "verdict" in document or "status" in document:
        return False
    return not any(isinstance(m, dict) and "provider" in m for m in document["metrics"])


_TEMPLATE = ("argoproj.io/v1alpha1", "AnalysisTemplate")
_METRIC = ("spec", "metrics", "[]")
EXCERPT_KEYS: dict[str, tuple[tuple[str, str], tuple[str, ...]]] = {
    # a top-level key of an excerpt -> (apiVersion, kind) and where that key sits in the CRD
    "metrics": (_TEMPLATE, ("spec", "metrics")),
    "args": (_TEMPLATE, ("spec", "args")),
    "successCondition": (_TEMPLATE, (*_METRIC, "successCondition")),
    "failureCondition": (_TEMPLATE, (*_METRIC, "failureCondition")),
    "provider": (_TEMPLATE, (*_METRIC, "provider")),
    "webhooks": (("flagger.app/v1beta1", "Canary"), ("spec", "analysis", "webhooks")),
}
"""The docs' excerpts of controller manifests: each key is validated against its place in
the CRD (tests/unit/test_manifests.py)."""


def is_manifest_excerpt(document: Any) -> bool:
    """A mapping of only :data:`EXCERPT_KEYS` keys, one of them a controller's own (an answer
    or a config also has ``metrics``, but not a ``provider`` in them)."""
    if not isinstance(document, dict) or not document or is_manifest(document):
        return False
    if not set(document) <= set(EXCERPT_KEYS):
        return False
    metrics = document.get("metrics")
    return metrics is None or (isinstance(metrics, list) and all(
        isinstance(m, dict) and "provider" in m for m in metrics))


# --- shell blocks -----------------------------------------------------------------------------

SERVICE_ADDRESS = "localhost:8080"
"""How every shell block addresses the service (see the module doc)."""

_EXIT = re.compile(r"#.*\bexits (\d+)\b")


@dataclass(frozen=True)
class Command:
    text: str  # the command as bash reads it (continuation lines included)
    line: int  # 1-based line in the document
    expected_output: str | None  # the comment lines showing the output, without "# "
    expected_status: int


def commands(block: Block) -> Iterator[Command]:
    """The commands of a shell block, each with the output and exit status the doc shows.
    In a ``console`` block commands follow a ``$ `` prompt and the lines up to the next
    prompt are their output."""
    if block.language == "console":
        yield from _console_commands(block)
        return
    lines = block.text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.strip() or line.lstrip().startswith("#"):
            index += 1
            continue
        start = index
        while lines[index].rstrip().endswith("\\") and index + 1 < len(lines):
            index += 1
        text = "\n".join(lines[start:index + 1])
        index += 1
        shown = []
        while index < len(lines) and re.match(r"^\s*# ?[{\[]|^\s*# http", lines[index]):
            shown.append(re.sub(r"^\s*# ?", "", lines[index]))
            index += 1
        status = _EXIT.search(text)
        yield Command(text, block.line + 1 + start, "\n".join(shown) or None,
                      int(status.group(1)) if status else 0)


def _console_commands(block: Block) -> Iterator[Command]:
    lines = block.text.splitlines()
    index = 0
    while index < len(lines):
        if not lines[index].startswith("$ "):
            index += 1
            continue
        start = index
        while lines[index].rstrip().endswith("\\") and index + 1 < len(lines):
            index += 1
        text = "\n".join([lines[start][2:], *lines[start + 1:index + 1]])
        index += 1
        shown = []
        while index < len(lines) and not lines[index].startswith("$ "):
            shown.append(lines[index])
            index += 1
        output = "\n".join(shown).strip()
        status = _EXIT.search(text)
        yield Command(text, block.line + 1 + start, output or None,
                      int(status.group(1)) if status else 0)


def runner(block: Block) -> str | None:
    """The test that runs (or validates) an unmarked block; ``None``: no test does."""
    if block.marker is not None:
        return None
    if block.language in SHELL_LANGUAGES:
        return "tests/integration/test_docs_shell.py"
    if block.language == "python":
        return "tests/integration/test_docs_python.py"
    if block.language in DATA_LANGUAGES:
        try:
            documents = load_data(block)
        except (yaml.YAMLError, json.JSONDecodeError):
            return None
        if documents and all(is_manifest(d) or is_manifest_excerpt(d) for d in documents):
            return "tests/unit/test_manifests.py"
        return "tests/unit/test_docs_blocks.py"
    if block.language == "csv":
        return "tests/unit/test_docs_blocks.py"
    return None
