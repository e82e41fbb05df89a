"""Rows to prompt-file lines, as `distillery submit` sends them.

Without a template, each row is a prompt line already ({"prompt": ...} or
{"messages": [...]}, with optional "id", "system", "metadata", "max_tokens",
"temperature"); the coordinator checks it. With a template (Jinja2, strict),
each row is a dataset row: the rendered template becomes the prompt, the
row's "id", "system", "max_tokens" and "temperature" apply to its prompt (over
the job's), and its other fields, those the template does not use, go to the
prompt's "metadata" (e.g. the reference "answer"). This is the rule of
`distillery submit --template` (common/dataset/row_template.h), whose
templates are plain {{field}} substitution.
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any, Iterable, Iterator, Mapping, Optional, Union

import jinja2
import jinja2.meta

# The fields a row carries into its prompt line as they are.
PROMPT_FIELDS = ("id", "system", "max_tokens", "temperature")

Rows = Union[str, "os.PathLike[str]", Iterable[Mapping[str, Any]], Any]


class RowError(ValueError):
    """A row that cannot become a prompt; `row` is its 1-based number."""

    def __init__(self, row: int, message: str):
        super().__init__(f"row {row}: {message}")
        self.row = row


def _json_default(value: Any) -> Any:
    # pandas and numpy hand out their own scalar types and timestamps.
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(value: Any) -> str:
    """Compact JSON, UTF-8 kept, numpy and pandas values as plain ones."""
    # allow_nan=False: NaN (pandas' empty cell) is not JSON; the caller
    # turns the ValueError into a RowError naming the row.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                      default=_json_default, allow_nan=False)


def iter_rows(rows: Rows) -> Iterator[Union[Mapping[str, Any], bytes]]:
    """The rows one by one: dicts, or a JSONL file's raw lines (bytes).

    `rows` may be a path to a JSONL file, a pandas DataFrame (its records), a
    Hugging Face Dataset or any iterable of dicts.
    """
    if isinstance(rows, (str, os.PathLike)):
        with open(rows, "rb") as f:
            for line in f:
                yield line.rstrip(b"\r\n")
        return
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # DataFrame
        rows = rows.to_dict("records")
    yield from rows


class Template:
    """A strict Jinja2 prompt template."""

    def __init__(self, text: str):
        env = jinja2.Environment(undefined=jinja2.StrictUndefined,
                                 keep_trailing_newline=True, autoescape=False)
        try:
            self._template = env.from_string(text)
            self.fields = sorted(
                jinja2.meta.find_undeclared_variables(env.parse(text)))
        except jinja2.TemplateSyntaxError as e:
            raise ValueError(f"template: line {e.lineno}: {e.message}") from e
        if not self.fields:
            raise ValueError(
                "template: it uses no field; every prompt would be the same")

    def line(self, row: Mapping[str, Any], number: int) -> str:
        """The prompt line for row `number` (1-based)."""
        for field in self.fields:
            if field not in row:
                have = ", ".join(map(str, row.keys())) or "no fields"
                raise RowError(number, f'the template uses field "{field}", '
                               f"which the row does not have (it has: {have})")
            if row[field] is None:
                raise RowError(number, f'field "{field}" is null')
        try:
            text = self._template.render(**row)
        except jinja2.TemplateError as e:
            raise RowError(number, f"the template failed: {e}") from e
        line: dict = {}
        metadata: dict = {}
        for key, value in row.items():
            if key in PROMPT_FIELDS:
                line[key] = value
            elif key not in self.fields:
                metadata[key] = value
        line["prompt"] = text
        if metadata:
            line["metadata"] = metadata
        return dumps(line)


def prompt_lines(rows: Rows, template: Optional[str]) -> Iterator[bytes]:
    """The prompt-file lines of `rows`, encoded, in order (line N is row N)."""
    tmpl = Template(template) if template is not None else None
    for number, row in enumerate(iter_rows(rows), start=1):
        if isinstance(row, bytes):
            if tmpl is None or not row.strip():
                yield row  # the coordinator parses and checks it
                continue
            try:
                row = json.loads(row)
            except (ValueError, UnicodeDecodeError) as e:
                raise RowError(number, f"not valid JSON ({e})") from e
        if not isinstance(row, Mapping):
            raise RowError(number,
                           f"expected a dict, got {type(row).__name__}")
        try:
            text = tmpl.line(row, number) if tmpl else dumps(dict(row))
        except (TypeError, ValueError) as e:
            raise RowError(number, f"cannot be sent as JSON ({e}): an "
                           "empty (NaN) or non-JSON value") from e
        yield text.encode("utf-8")
