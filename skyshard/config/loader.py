"""Read `providers.yaml`, `workloads.yaml` and `policy.yaml` into validated models."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from skyshard.config.errors import ConfigError, ConfigProblem, yaml_path

Model = TypeVar("Model", bound=BaseModel)


def load_yaml_model(path: Path, model: type[Model], *, required: bool = True) -> Model:
    """Parse one YAML file into `model`, turning every problem into a ConfigProblem with a line."""
    if not path.exists():
        if required:
            raise ConfigError([ConfigProblem(path, "", None, "the file to exist")])
        return model()
    text = _read_text(path)
    try:
        document = yaml.safe_load(text)
        root_node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise ConfigError(
            [ConfigProblem(path, "", getattr(exc, "problem", str(exc)), "valid YAML", line)]
        ) from exc
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError([ConfigProblem(path, "", document, "a mapping at the top level", 1)])
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            problems.append(
                ConfigProblem(
                    file=path,
                    path=yaml_path(loc),
                    value=error.get("input"),
                    expected=_expected(error),
                    line=_line_of(root_node, loc),
                )
            )
        raise ConfigError(problems) from None


def _read_text(path: Path) -> str:
    """The file as text: UTF-8, with or without a byte-order mark (YAML allows one)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            [
                ConfigProblem(
                    path,
                    "",
                    data[exc.start : exc.start + 4],
                    f"UTF-8 text (invalid byte at offset {exc.start})",
                    line,
                )
            ]
        ) from None


def _expected(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return "no such key (unknown keys are rejected)"
    if error["type"] == "missing":
        return "this required key"
    message = error["msg"].removeprefix("Value error, ")
    return message.removeprefix("Input should be ").removeprefix("String should ")


def _line_of(node: yaml.Node | None, loc: tuple[str | int, ...]) -> int | None:
    """1-based line of the deepest YAML node that `loc` reaches."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == part), None)
            key = next((k for k, _ in node.value if k.value == part), None)
            if match is None:
                return line
            line = key.start_mark.line + 1
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
