"""The judges, each a strategy behind one protocol (:class:`~judge.judges.base.Judge`), chosen
by ``config.mode`` here and nowhere else.

Adding a judge: a module implementing the protocol, a value in
:class:`~judge.config.JudgeMode`, and one line in ``_JUDGES``. Nothing else changes: the
library's entry points (:mod:`judge.judging`, :mod:`judge.analysis`), the CLI and every door call
:func:`judge_for`.
"""

from __future__ import annotations

from judge.config import JudgeMode
from judge.judges.base import Judge
from judge.judges.default import DefaultJudge
from judge.judges.kayenta import KayentaJudge

__all__ = ["Judge", "judge_for"]

_JUDGES: dict[JudgeMode, Judge] = {
    JudgeMode.DEFAULT: DefaultJudge(),
    JudgeMode.KAYENTA: KayentaJudge(),
}


def judge_for(mode: JudgeMode) -> Judge:
    """The judge of ``mode``."""
    return _JUDGES[mode]
