"""Docs that cannot drift: every command line in README.md and docs/*.md against the real parsers, and
every documented output column, message field and module against the code.

A command line is a line of a fenced block or an inline code span that starts with ``samos``,
``monitor``, ``.venv/bin/samos``, ``python -m samos.train`` or ``torchrun ... -m samos.train``. Its
subcommands must exist and every ``--flag`` in it must be one the subcommand's parser accepts.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import io
import re
from pathlib import Path
from typing import Any

import pytest

from samos.bench.cli import BENCHES
from samos.cli import COMMANDS, build_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FLAG = re.compile(r"(?<![\w/.=-])--[a-z][a-z0-9-]*")
START = re.compile(r"(?:^|\s|`)(?:\$ )?(?:\.venv/bin/)?(samos|monitor)(?=\s|$|`)|-m samos\.train(?=\s|$|`)")


# ----------------------------------------------------------------------------------- extraction
def _code_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) of fenced-block lines (continuations joined; comment lines skipped) and of
    inline code spans."""
    out: list[tuple[int, str]] = []
    lines = text.splitlines()
    fenced, i = False, 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            fenced = not fenced
            i += 1
            continue
        if fenced and line.lstrip().startswith("#"):  # a comment or a program's output
            i += 1
            continue
        if fenced:
            start, joined = i + 1, line
            # a command continued with a trailing backslash or on indented lines below it
            while i + 1 < len(lines) and (
                joined.rstrip().endswith("\\")
                or (lines[i + 1].startswith((" ", "\t")) and not lines[i + 1].lstrip().startswith("```"))
            ):
                i += 1
                joined = joined.rstrip().rstrip("\\") + " " + lines[i].strip()
            out.append((start, joined))
        else:
            out += [(i + 1, m.group(1).replace("\\|", "|")) for m in re.finditer(r"`([^`]+)`", line)]
        i += 1
    return out


def _cut(cmd: str) -> str:
    """The command up to a shell pipe, redirection, ``&&``, ``;`` or comment outside [] and ()."""
    depth = 0
    for k, ch in enumerate(cmd):
        depth += ch in "[(" and 1 or 0
        depth -= ch in "])" and 1 or 0
        if depth == 0 and (ch in ";>#" and (k == 0 or cmd[k - 1] == " ") or cmd.startswith(("| ", "&&"), k)):
            return cmd[:k]
    return cmd


def commands(path: Path) -> list[tuple[str, list[str], list[str]]]:
    """``(where, words, flags)`` per documented command: ``words`` = the program and subcommands."""
    found = []
    for lineno, text in _code_lines(path.read_text(encoding="utf-8")):
        m = START.search(text)
        if not m:
            continue
        rest = _cut(text[m.end() :])
        prog = m.group(1) or "samos-train"
        words = [prog]
        if prog == "samos-train":
            words = ["samos", "train"]
        else:
            # subcommand words: plain tokens right after the program (``throughput / stream`` lists too)
            for tok in rest.split():
                if tok.startswith("-") or not re.fullmatch(r"[a-z][a-z0-9_]*|/", tok):
                    break
                if tok != "/":
                    words.append(tok)
        found.append((f"{path.name}:{lineno}", words, FLAG.findall(rest)))
    return found


# ------------------------------------------------------------------------------------ the parsers
def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            return dict(a.choices)
    return {}


def options(words: list[str]) -> tuple[set[str], dict[str, Any]]:
    """The option strings a documented command may use, and the parsers of its next words."""
    if words[0] == "monitor":
        from samos.monitor.cli import add_arguments

        p = argparse.ArgumentParser()
        add_arguments(p)
        return set(p._option_string_actions), {}
    if len(words) == 1:
        return set(build_parser([])._option_string_actions), {}
    name = words[1]
    assert name in COMMANDS, f"no subcommand 'samos {name}' (have: {', '.join(COMMANDS)})"
    p = _subparsers(build_parser([name]))[name]
    return set(p._option_string_actions), _subparsers(p)


def bench_options(name: str) -> set[str]:
    mod = importlib.import_module(BENCHES[name][0])
    p = argparse.ArgumentParser()
    mod.add_arguments(p)
    return set(p._option_string_actions)


ALL = [c for doc in DOCS for c in commands(doc)]


def test_the_docs_have_command_lines() -> None:
    names = {tuple(w[:2]) for _, w, _ in ALL}
    for sub in ("train", "eval", "export", "score", "bench", "data", "serve", "monitor"):
        assert ("samos", sub) in names or sub == "monitor", sub
    assert any(w == ["monitor"] for _, w, _ in ALL)
    assert len(ALL) > 60, len(ALL)


@pytest.mark.parametrize(("where", "words", "flags"), ALL, ids=[f"{w}:{' '.join(x)}" for w, x, _ in ALL])
def test_documented_command_line_matches_the_parser(where: str, words: list[str], flags: list[str]) -> None:
    opts, subs = options(words)
    rest = words[2:] if words[0] == "samos" else words[1:]
    if words[0] == "samos" and len(words) > 1 and words[1] == "bench":
        for b in rest:  # none: `samos bench --help` and the like
            assert b in BENCHES, f"{where}: no benchmark {b!r} (have: {', '.join(BENCHES)})"
        opts = set().union(*(bench_options(b) for b in rest)) | opts
    elif subs and rest:
        assert rest[0] in subs, f"{where}: no `{' '.join(words[:2])} {rest[0]}` (have: {', '.join(subs)})"
        opts |= set(subs[rest[0]]._option_string_actions)
    for f in flags:
        assert f in opts, f"{where}: `{' '.join(words)}` has no {f} (it has {', '.join(sorted(opts))})"


def test_samos_help_lists_every_subcommand_and_bench_help_every_benchmark() -> None:
    text = build_parser([]).format_help()
    assert all(name in text for name in COMMANDS)
    bench = _subparsers(build_parser(["bench"]))["bench"].format_help()
    assert all(re.search(rf"^\s+{name}\s", bench, re.M) for name in BENCHES), bench
    # the bench entry of `samos --help`, with its wrapped continuation lines
    entry = re.search(r"^\s+bench\s.*?(?=^\s{4}\S)", text, re.M | re.S)
    assert entry is not None, text
    assert all(name in " ".join(entry.group(0).split()) for name in BENCHES), entry.group(0)


def test_monitor_flag_table_matches_the_cli_and_the_config() -> None:
    """docs/MONITOR.md's table of flags and config keys: each flag exists, each key is a config field."""
    from dataclasses import fields

    from samos.monitor.config import MonitorConfig

    opts, _ = options(["monitor"])
    text = (REPO / "docs" / "MONITOR.md").read_text()
    table = text[text.index("| flag | config key |") :].split("\n\n")[0]
    rows = [r for r in table.splitlines()[2:] if r.startswith("|")]
    assert len(rows) > 8
    for row in rows:
        flag_cell, key_cell = row.split("|")[1:3]
        for f in FLAG.findall(flag_cell):
            assert f in opts, row
        for key in re.findall(r"`([a-z_.]+)`", key_cell):
            obj: Any = MonitorConfig
            for part in key.split("."):
                names = {f.name: f for f in fields(obj)}
                assert part in names, f"{key}: no config field {part!r} ({row})"
                obj = names[part].type if isinstance(names[part].type, type) else _field_class(obj, part)


def _field_class(cls: Any, name: str) -> Any:
    import typing

    hints = typing.get_type_hints(cls)
    return hints[name]


# ---------------------------------------------------------------------------------- output columns
def _documented(doc: str, anchor: str) -> list[str]:
    text = (REPO / "docs" / doc).read_text()
    i = text.index(anchor)
    span = re.search(r"`([a-z_0-9]+(?:, [a-z_0-9]+)+)`", text[i:])
    assert span, anchor
    return span.group(1).split(", ")


def test_samos_score_columns_are_the_documented_ones() -> None:
    from samos.runtime.score_cli import _Writer

    buf = io.StringIO()
    _Writer(buf, "csv", windows=False)
    assert next(csv.reader(io.StringIO(buf.getvalue()))) == _documented("RUNTIME.md", "one row per input")
    buf = io.StringIO()
    _Writer(buf, "csv", windows=True)
    header = next(csv.reader(io.StringIO(buf.getvalue())))
    extra = _documented("RUNTIME.md", "`--windows` adds")
    assert [c for c in header if c in extra] == extra and set(header) - set(extra) == set(
        _documented("RUNTIME.md", "one row per input")
    )


def test_eval_predictions_columns_are_the_documented_ones(tmp_path: Path) -> None:
    import numpy as np

    from samos.data.manifest import Item, Manifest
    from samos.train.evaluate import Predictions, write_predictions

    m = Manifest([Item(path=tmp_path / "a.wav", mos=3.0)])
    p = Predictions(m, [0], np.array([3.1]), np.array([0.2]), m.skipped)
    write_predictions(tmp_path / "p.csv", p, ["g"])
    header = (tmp_path / "p.csv").read_text().splitlines()[0].split(",")
    assert header == _documented("TRAINING.md", "`--out DIR` writes `predictions.csv`")


def test_monitor_message_fields_are_documented() -> None:
    """Every field each message builder writes appears in docs/MONITOR.md's row for that type."""
    from samos.monitor.schema import StreamMessages, hello

    m = StreamMessages("s")
    built = {
        "hello": hello(["s"], "samos"),
        "stream_start": m.stream_start("file", 48_000, 4.0, 1.0, {}),
        "score": m.score(
            index=0,
            t_start=0.0,
            t_end=4.0,
            status="ok",
            mos=3.0,
            mos_std=0.3,
            rolling_mos=3.0,
            rolling_std=0.3,
            diagnostics={},
            t_capture=0.0,
            latency_ms=1.0,
        ),
        "alert": m.alert(event="raise", t=4.0, rolling_mos=2.0, threshold=2.5, duration_seconds=5.0),
        "stream_end": m.stream_end(reason="ended", windows=1, seconds=4.0, rolling_mos=3.0),
    }
    text = (REPO / "docs" / "MONITOR.md").read_text()
    common = {"schema", "type", "stream", "seq", "time"}
    for kind, msg in built.items():
        row = next((r for r in text.splitlines() if r.startswith(f"| `{kind}` |")), None)
        assert row is not None, f"docs/MONITOR.md has no row for {kind}"
        documented = set(re.findall(r"`([a-z_]+)`", row))
        missing = set(msg) - common - documented
        assert not missing, f"{kind}: fields {sorted(missing)} are not in docs/MONITOR.md"


def test_architecture_layout_lists_every_module() -> None:
    """docs/ARCHITECTURE.md's package tree names every module of samos/, and nothing that is gone."""
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    block = text[text.index("```\nsamos/") + 4 :].split("```")[0]
    listed: set[str] = set()
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        m = re.match(r"^( *)([A-Za-z0-9_.]+/?)(\s|$)", line)
        if not m or not (m.group(2).endswith(("/", ".py"))):
            continue
        indent, name = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = "/".join([s[1].rstrip("/") for s in stack] + [name.rstrip("/")])
        listed.add(path)
        if name.endswith("/"):
            stack.append((indent, name))
    actual = {
        str(p.relative_to(REPO))
        for p in (REPO / "samos").rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    }
    folders = [p for p in (REPO / "samos").rglob("*") if p.is_dir() and p.name != "__pycache__"]
    packages = {str(p.relative_to(REPO)) for p in folders}
    assert sorted(actual - listed) == [], "modules missing from docs/ARCHITECTURE.md"
    exists = actual | packages | {"samos", "samos/__init__.py"}
    gone = {p for p in listed if p.startswith("samos") and p not in exists}
    assert sorted(gone) == [], "docs/ARCHITECTURE.md names modules that do not exist"


def test_bench_output_keys_exist_in_the_code() -> None:
    """Each key docs/BENCH.md lists in a benchmark's output is a name the bench code writes."""
    text = (REPO / "docs" / "BENCH.md").read_text()
    code = "\n".join(p.read_text() for p in (REPO / "samos" / "bench").glob("*.py"))
    rows = [r for r in text.splitlines() if r.startswith("| `samos bench ")]
    assert {re.match(r"\| `samos bench (\w+)", r).group(1) for r in rows} == set(BENCHES)  # type: ignore[union-attr]
    for row in rows:
        output = row.rstrip().rstrip("|").rsplit(" | ", 1)[-1]
        keys = re.findall(r'"([A-Za-z_][A-Za-z_0-9]*)"', output)
        assert keys, row
        for k in keys:
            assert re.search(rf"\b{k}\b", code), f"docs/BENCH.md documents {k!r}; no bench module writes it"
