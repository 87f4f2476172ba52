"""README.md's shell examples as tests run them: every ```sh block that calls curl, split into
commands with the answer the README shows for each, and run by real bash and curl with every
call checked (tests/integration/test_readme_commands.py).

A command is a line at column 0 that is no comment, with the indented lines after it (the
README indents continuations, also those inside a quoted jq filter). An annotation is a
comment right after a command that starts with `# ->` (a 200 answer) or `# <status>`, followed
by the answer as the README shows it, with `...` where it leaves things out; it may go on over
the next comment lines.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[2] / "README.md"

_ANNOTATION = re.compile(r"#\s*(->|[1-5]\d\d)\s*(.*)")
# A JSON string (and the colon after it, if it is a key), or a bracket.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"\s*:?|[{}\[\]]')


@dataclass(frozen=True)
class Command:
    """One command of a block: where it is in the README, and what the README says it answers."""

    line: int  # README line of its first line
    text: str
    status: int | None  # stated by its annotation, if it has one
    answer_keys: tuple[str, ...]  # the top-level keys of the answer the annotation shows

    @property
    def calls_curl(self) -> bool:
        """Whether it runs curl (the block's assignments of variables do not)."""
        return re.search(r"\bcurl\b", self.text) is not None

    @property
    def lines(self) -> range:
        """Its README lines."""
        return range(self.line, self.line + self.text.count("\n") + 1)


@dataclass(frozen=True)
class Block:
    """A ```sh block: the README line of its first line, its text, its commands."""

    line: int
    text: str
    commands: tuple[Command, ...]

    def command_at(self, readme_line: int) -> Command:
        """The command a README line of this block belongs to."""
        return next(c for c in self.commands if readme_line in c.lines)


def _depth(text: str) -> int:
    """Open brackets minus closed ones, outside JSON strings."""
    return sum({"{": 1, "[": 1, "}": -1, "]": -1}.get(m.group(), 0) for m in _TOKEN.finditer(text))


def top_level_keys(shown: str) -> tuple[str, ...]:
    """The keys of the outermost object of an answer as the README shows it (not JSON: it
    leaves things out with `...`)."""
    keys, depth = [], 0
    for match in _TOKEN.finditer(shown):
        token = match.group()
        if token in ("{", "["):
            depth += 1
        elif token in ("}", "]"):
            depth -= 1
        elif token.endswith(":") and depth == 1:
            keys.append(json.loads(token[:-1].rstrip()))
    return tuple(keys)


def _commands(lines: list[tuple[int, str]]) -> tuple[Command, ...]:
    commands: list[Command] = []
    i = 0
    while i < len(lines):
        number, text = lines[i]
        i += 1
        if not text.strip() or text.startswith(("#", " ", "\t")):
            continue
        body = [text]
        while i < len(lines) and lines[i][1][:1] in (" ", "\t"):
            body.append(lines[i][1])
            i += 1
        status, keys = None, ()
        if i < len(lines) and (annotation := _ANNOTATION.match(lines[i][1])):
            shown = annotation.group(2)
            i += 1
            while _depth(shown) > 0 and i < len(lines) and lines[i][1].startswith("#"):
                shown += " " + lines[i][1][1:].strip()
                i += 1
            said = annotation.group(1)
            status, keys = (200 if said == "->" else int(said)), top_level_keys(shown)
        commands.append(Command(number, "\n".join(body), status, keys))
    return tuple(commands)


def curl_blocks(path: Path = README) -> list[Block]:
    """Every ```sh block of the README that calls curl, in the README's order."""
    blocks: list[Block] = []
    block: list[tuple[int, str]] | None = None
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if block is None:
            if text.strip() == "```sh":
                block = []
        elif text.strip() == "```":
            if block and any(re.search(r"\bcurl\b", t) for _, t in block):
                whole = "\n".join(t for _, t in block) + "\n"
                blocks.append(Block(block[0][0], whole, _commands(block)))
            block = None
        else:
            block.append((number, text))
    return blocks


# Every curl of a block goes through this function. It fails the block (set -e) unless the
# answer has the status the README states for its command, or any 2xx where it states none,
# and it records each call's line (BASH_LINENO: where the simple command starts, also within a
# pipeline or a continued line), status and answer for the test to check and to quote.
# `-q` first: no ~/.curlrc changes what the README's commands send.
_PREAMBLE = r"""set -euo pipefail
README_EXPECT=(%s)
curl() {
  local line=$((BASH_LINENO[0] - README_PREAMBLE_LINES)) answer status
  answer=$(mktemp "$README_CALLS/answer.XXXXXX")
  status=$(command curl -q -sS -o "$answer" -w '%%{http_code}' "$@") || true
  printf '%%s %%s %%s\n' "$line" "$status" "$answer" >>"$README_CALLS/calls"
  cat "$answer"
  local want=${README_EXPECT[$line]:-2[0-9][0-9]}
  if [[ $status =~ ^($want)$ ]]; then return 0; fi
  printf 'HTTP %%s, expected %%s\n' "$status" "$want" >&2
  return 22
}
"""


@dataclass(frozen=True)
class Call:
    """One curl call of a command: its HTTP status (0: no answer) and answer."""

    command: Command
    status: int
    body: bytes

    def json(self) -> Any:
        """The answer as JSON (None if it is not)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass(frozen=True)
class BlockRun:
    """What bash did with a block: its exit status, stderr, and the calls in order."""

    block: Block
    returncode: int
    stderr: str
    calls: tuple[Call, ...]

    def explain(self) -> str:
        """The failing command, its answer and bash's stderr, for an assertion message."""
        if not self.calls:
            return f"README line {self.block.line}: no curl ran\n{self.stderr}"
        last = self.calls[-1]
        return (
            f"README line {last.command.line}:\n{last.command.text}\n"
            f"answered {last.status}: {last.body.decode(errors='replace')}\n"
            f"stderr: {self.stderr}"
        )


def _script(block: Block, hosts: dict[str, str], calls_dir: Path) -> tuple[Path, int]:
    """The block as a bash script after the preamble, and the preamble's length in lines."""
    text = block.text
    for written, real in hosts.items():
        text = text.replace(written, real)
    # The lines of the commands whose status the README states, counted in the block.
    expect = " ".join(
        f"[{n - block.line + 1}]={c.status}"
        for c in block.commands
        if c.status is not None
        for n in c.lines
    )
    preamble = _PREAMBLE % expect
    calls_dir.mkdir()
    script = calls_dir / "block.sh"
    script.write_text(preamble + text)
    return script, preamble.count("\n")


def _calls(block: Block, calls_dir: Path) -> tuple[Call, ...]:
    """The calls the curl function recorded, in order."""
    log = calls_dir / "calls"
    calls = []
    for record in log.read_text().splitlines() if log.exists() else []:
        line, status, answer = record.split(" ", 2)
        command = block.command_at(block.line + int(line) - 1)
        calls.append(Call(command, int(status), Path(answer).read_bytes()))
    return tuple(calls)


async def run_block(
    block: Block, env: dict[str, str], hosts: dict[str, str], workdir: Path
) -> BlockRun:
    """Run a block with bash, as a reader pasting it would, but for `hosts`: the README's
    URLs replaced by where the test's servers listen (line for line, so lines still match).
    Awaited, never run blocking: in the tests, the Apps it calls run on this event loop."""
    calls_dir = workdir / f"readme-line-{block.line}"
    script, preamble_lines = _script(block, hosts, calls_dir)
    proc = await asyncio.create_subprocess_exec(
        "bash",
        str(script),
        env={**env, "README_CALLS": str(calls_dir), "README_PREAMBLE_LINES": str(preamble_lines)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await proc.communicate()
    assert proc.returncode is not None
    return BlockRun(
        block, proc.returncode, stderr.decode(errors="replace"), _calls(block, calls_dir)
    )
