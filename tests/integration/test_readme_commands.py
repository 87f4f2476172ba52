"""Every curl command of README.md, run in the README's order by real bash, curl and jq against
a fleet as the README sets one up: the global Aidbox with the App in global role, and clinic-a
with its App in local role, registered by the README's own command. So the README cannot
drift from the product: a command that stops working, or an answer that loses a key the
README shows, fails here.

How the README's shell meets the test's servers (tests/support/readme.py runs the blocks):

- The README's variables are in the environment of bash: `G` and `ROOT` (the README sets them
  in a sentence), `A` and `AUTH`, and the secrets they are built from, `GLOBAL_ROOT_SECRET` and
  `CLINIC_A_ROOT_SECRET`. The block that assigns `A` and `AUTH` runs as written.
- The README's addresses are docker-compose's (`http://localhost:8080` the global,
  `http://localhost:8081` clinic A); the emulators listen on free ports, so those two URLs,
  and nothing else, are replaced in the blocks' text before bash runs them.
- Each block is one bash script (`set -euo pipefail`), as a reader pasting it; every curl in
  it goes through a function that fails the block unless the answer has the status the
  README's annotation states (`# 201 {...}`; `# -> {...}` is a 200), or any 2xx where it
  states none. An annotated answer must also have the top-level keys the README shows.

What the README takes for granted is done as an operator would: the secret a registration or
rotation answers is handed to the clinic's App (README, "Running it against real Aidboxes"),
which starts before the first command addressed to the clinic; docker-compose's second clinic,
clinic-b, which the README removes, is registered; the clinic holds the Patient `pt-1` the
README previews, and an Observation headquarters refuses (it references a Device, a type the
clinic does not push, README "Known limits"), so that the quarantine commands have a record.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from aidbox_emulator import Emulator
from app.aidbox.client import AidboxClient
from tests.support.apps import running_app
from tests.support.clinic import observation, patient
from tests.support.headquarters import CLINIC, Headquarters
from tests.support.readme import BlockRun, curl_blocks, run_block

# The root clients' secret of the emulators (`root`/`secret`).
ROOT_SECRET = "secret"

# The README's commands need what a reader's shell has; `make test` needs none of them.
_MISSING = [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]
pytestmark = pytest.mark.skipif(bool(_MISSING), reason=f"README commands need {_MISSING}")


@pytest.fixture
async def bare_headquarters(
    global_aidbox: Emulator, global_root: AidboxClient
) -> AsyncIterator[Headquarters]:
    """The App in global role with no clinic registered: the README registers clinic-a."""
    async with running_app(global_aidbox.url, role="global") as app:
        yield Headquarters(app, global_root, {})


async def _seed_clinic(local_root: AidboxClient) -> None:
    await local_root.call("PUT", "/Patient/pt-1", json=patient("pt-1"))
    monitor = {"resourceType": "Device", "id": "bp-monitor-1", "status": "active"}
    await local_root.call("PUT", "/Device/bp-monitor-1", json=monitor)
    refused = observation("obs-1", "pt-1") | {
        "device": {"resourceType": "Device", "id": "bp-monitor-1"}
    }
    await local_root.call("PUT", "/Observation/obs-1", json=refused)


def _check_answers(run: BlockRun) -> None:
    """Every curl command ran, and an annotated one answered the keys the README shows."""
    for command in run.block.commands:
        calls = [c for c in run.calls if c.command == command]
        assert calls or not command.calls_curl, f"README line {command.line} ran no curl"
        if command.answer_keys:
            answer = calls[-1].json()
            assert isinstance(answer, dict), (command.text, calls[-1].body)
            missing = [k for k in command.answer_keys if k not in answer]
            assert not missing, f"README line {command.line}: no {missing} in {answer}"


def _hand_over_secrets(run: BlockRun, hq: Headquarters) -> None:
    """A registration or rotation answers a clinic's secret once: the clinic's .env gets it."""
    for call in run.calls:
        answer = call.json()
        client = answer.get("client") if isinstance(answer, dict) else None
        if isinstance(client, dict) and "secret" in client:
            hq.secrets[client["id"]] = client["secret"]


async def test_every_curl_command_of_the_readme_answers_as_the_readme_shows(
    global_aidbox: Emulator,
    local_aidbox: Emulator,
    local_root: AidboxClient,
    bare_headquarters: Headquarters,
    tmp_path: Path,
) -> None:
    hq = bare_headquarters
    # docker-compose's second clinic: the README's example of a removal removes it
    await hq.register("clinic-b", name="Clinic B", country="DE")
    env = {
        # Only PATH from the test's own environment: no proxy settings or the like.
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GLOBAL_ROOT_SECRET": ROOT_SECRET,
        "CLINIC_A_ROOT_SECRET": ROOT_SECRET,
        "G": global_aidbox.url,
        "ROOT": f"root:{ROOT_SECRET}",
        "A": local_aidbox.url,
        "AUTH": f"root:{ROOT_SECRET}",
    }
    hosts = {"http://localhost:8080": global_aidbox.url, "http://localhost:8081": local_aidbox.url}
    blocks = curl_blocks()
    assert blocks, "the README's curl examples were not found"
    async with AsyncExitStack() as clinic:
        started = False
        for block in blocks:
            # The clinic's service is started once registered, as the README's compose steps
            # do, with the latest secret an answer of the README's commands gave.
            if "$AUTH" in block.text and not started:
                assert CLINIC in hq.secrets, "the README addresses clinic-a before registering it"
                await _seed_clinic(local_root)
                await clinic.enter_async_context(
                    hq.clinic_app(local_aidbox.url, CLINIC, SYNC_RUNNER_ENABLED="false")
                )
                started = True
            # The clinic's .env holds the secret its registration (or rotation) answered last.
            env["CLINIC_A_GLOBAL_SECRET"] = hq.secrets.get(CLINIC, "")
            run = await run_block(block, env, hosts, tmp_path)
            assert run.returncode == 0, run.explain()
            _check_answers(run)
            _hand_over_secrets(run, hq)
        assert started, "no README command addresses the clinic"
        # The README's customized profile is valid, and in force: no configuration refused.
        config = (await local_root.call("GET", "/SyncConfig/default")).body
        assert config["profile"] == "our-profile"
        synced = await local_root.request("POST", "/$sync")
        assert synced.status == 200 and "configuration" not in synced.body, synced.body
