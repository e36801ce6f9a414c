"""Every ``python`` block of README.md, docs/ and examples/ runs, in a subprocess per document.

A document's blocks run in order in one interpreter (one namespace, as in a notebook or a
reader's session), from a directory linking the checkout's top-level entries, with matplotlib's
non-interactive backend. A traceback names the document and the line of the block that failed
(each block is compiled at its own line of its own file). Nothing is stubbed: a name a block
uses must come from the document itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import docblocks
from tests.support.clock import PINNED_NOW

ROOT = docblocks.ROOT
DOCUMENTS = sorted({b.path for b in docblocks.blocks("python")})
TIMEOUT = 600.0

DRIVER = """
import json, sys
namespace = {"__name__": "__main__"}
for block in json.loads(sys.stdin.read()):
    # Blank lines first: the block's lines keep their numbers in the document.
    source = "\\n" * block["line"] + block["text"]
    exec(compile(source, block["path"], "exec"), namespace)
    print(f"ran {block['path']}:{block['line']}", file=sys.stderr)
"""


@pytest.mark.parametrize("document", DOCUMENTS)
def test_documented_python_runs(tmp_path: Path, document: str) -> None:
    blocks = [{"path": b.path, "line": b.line, "text": b.text}
              for b in docblocks.blocks("python") if b.path == document]
    docblocks.reader_checkout(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_JUDGE_")}
    env.update(MPLBACKEND="Agg", PYTHONPATH=str(ROOT),
               CANARY_JUDGE_PINNED_NOW=PINNED_NOW.isoformat())
    done = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps(blocks),
                          cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
    assert done.returncode == 0, f"{document}:\n{done.stderr[-6000:]}"
    assert done.stderr.count("\nran ") + done.stderr.startswith("ran ") == len(blocks)
    if document == "README.md":
        # The README's snippet prints the verdict, score and reason of the demo canary.
        assert done.stdout.split()[0] in ("pass", "marginal", "fail"), done.stdout
