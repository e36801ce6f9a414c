"""The project's Dockerfile read into plain data (with ``dockerfile-parse``), so tests can
check its shape and run what it would run without Docker.

:func:`read_dockerfile` gives its stages (base image, ``ARG`` defaults, ``ENV``, ``RUN``
commands with the build arguments substituted and BuildKit's ``--mount`` flags removed), and
the final image's ``USER``, ``EXPOSE``, ``WORKDIR``, ``CMD`` and ``HEALTHCHECK``.
:func:`on_host` rewrites a command's container paths (``/wheels``, ``/opt/venv`` ...) to
directories of a test.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dockerfile_parse import DockerfileParser

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def substitute(text: str, values: Mapping[str, str]) -> str:
    """``$NAME`` and ``${NAME}`` replaced by ``values`` (others left as they are, as the
    shell that runs the command will see them)."""
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return _VARIABLE.sub(one, text)


@dataclass
class Stage:
    """One ``FROM`` ... up to the next."""

    name: str | None
    base: str
    args: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    copies: list[list[str]] = field(default_factory=list)
    """Each ``COPY``'s words, flags included (``--from=builder``)."""
    runs: list[str] = field(default_factory=list)
    """Each ``RUN``'s shell command, build arguments substituted, leading flags removed."""
    run_flags: list[list[str]] = field(default_factory=list)
    """Each ``RUN``'s leading flags (``--mount=...``), in the order of :attr:`runs`."""
    workdir: str = "/"
    user: str | None = None
    expose: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    cmd: list[str] | None = None
    healthcheck: list[str] | None = None
    """``CMD`` words of the ``HEALTHCHECK`` (exec form)."""
    healthcheck_options: dict[str, str] = field(default_factory=dict)


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        return next(stage for stage in self.stages if stage.name == name)


def _exec_form(value: str, where: str) -> list[str]:
    words = json.loads(value)
    if not (isinstance(words, list) and all(isinstance(w, str) for w in words)):
        raise ValueError(f"{where} must be in exec form (a JSON list of strings): {value}")
    return words


def read_dockerfile(path: Path = DOCKERFILE,
                    build_args: Mapping[str, str] | None = None) -> Dockerfile:
    """The Dockerfile at ``path`` as data; ``build_args`` as ``docker build --build-arg``."""
    overrides = dict(build_args or {})
    parsed = DockerfileParser(path=str(path))
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in parsed.structure:
        name, value = instruction["instruction"], instruction["value"]
        stage = stages[-1] if stages else None
        if name == "COMMENT":
            continue
        if name == "ARG":
            key, _, default = value.partition("=")
            resolved = overrides.get(key, default)
            (stage.args if stage else global_args)[key] = resolved
        elif name == "FROM":
            words = value.split()
            base = substitute(words[0], global_args)
            label = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(name=label, base=base))
        elif stage is None:
            raise ValueError(f"{name} before the first FROM in {path}")
        elif name == "ENV":
            for word in shlex.split(value):
                key, _, setting = word.partition("=")
                stage.env[key] = setting
        elif name == "COPY":
            stage.copies.append(value.split())
        elif name == "RUN":
            flags = []
            command = value
            while match := re.match(r"\s*(--\S+)\s+", command):
                flags.append(match.group(1))
                command = command[match.end():]
            stage.run_flags.append(flags)
            stage.runs.append(substitute(command, {**global_args, **stage.args}))
        elif name == "WORKDIR":
            stage.workdir = value
        elif name == "USER":
            stage.user = value
        elif name == "EXPOSE":
            stage.expose.extend(value.split())
        elif name == "VOLUME":
            stage.volumes.extend(value.split())
        elif name == "CMD":
            stage.cmd = _exec_form(value, "CMD")
        elif name == "HEALTHCHECK":
            options, _, command = value.partition(" CMD ")
            stage.healthcheck = _exec_form(command.strip(), "HEALTHCHECK CMD")
            stage.healthcheck_options = dict(re.findall(r"--([\w-]+)=(\S+)", options))
        else:
            raise ValueError(f"{path}: {name} is not read by tests/support/dockerfile.py")
    return Dockerfile(global_args=global_args, stages=stages)


def on_host(text: str, paths: Mapping[str, Path]) -> str:
    """``text`` with each container path of ``paths`` (and anything below it) replaced by its
    directory on this machine, in one pass (a replacement is never rewritten again); a path is
    replaced only as whole path components."""
    if not paths:
        return text
    alternatives = "|".join(re.escape(c) for c in sorted(paths, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w.-])(?:{alternatives})(?![\w.-])")
    return pattern.sub(lambda match: str(paths[match.group(0)]), text)
