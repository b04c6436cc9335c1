"""The append-only file: seq under the lock, torn tails, concurrent writers, checkpoints."""

from __future__ import annotations

import base64
import json
import multiprocessing

import pytest

from skyshard.ledger import Ledger, LedgerError
from skyshard.ledger.checkpoint import Checkpoint
from skyshard.ledger.log import REPAIRS_FILE, AppendOnlyLog
from skyshard.ledger.verify import verify_ledger

from .conftest import ORIGIN, fill, make_signer


def test_appends_get_consecutive_seqs_and_verify(ledger):
    fill(ledger, 3)
    more = ledger.append_many([("run_succeeded", "run-1", "broker", {})] * 2)
    assert [e.seq for e in more] == [3, 4]
    assert [e.seq for e in ledger.entries()] == list(range(5))
    assert [e.seq for e in ledger.entries("run_succeeded")] == [3, 4]
    result = ledger.verify()
    assert result.ok, result.reason
    assert result.entries == 5


def test_a_bad_record_in_a_batch_writes_nothing(ledger):
    fill(ledger, 1)
    with pytest.raises(ValueError, match=r"payload\.password"):
        ledger.append_many(
            [("run_started", "r", "a", {}), ("run_started", "r", "a", {"password": 1})]
        )
    assert [e.seq for e in ledger.entries()] == [0]


def test_torn_last_line_at_every_byte_offset(tmp_path, signer):
    source = Ledger.open(tmp_path / "source", signer)
    fill(source, 3)
    data = (source.directory / "log.jsonl").read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    last_line = data[last_start:]
    for cut in range(1, len(last_line)):
        folder = tmp_path / f"cut{cut}"
        folder.mkdir()
        for name in ("genesis.vkey", "active.vkey"):
            (folder / name).write_bytes((source.directory / name).read_bytes())
        torn_bytes = last_line[:cut]
        (folder / "log.jsonl").write_bytes(data[:last_start] + torn_bytes)
        result = verify_ledger(folder, signer.verifier())
        if cut == len(last_line) - 1:
            # Complete JSON but no newline: still torn, never accepted.
            assert result.torn_tail is not None
        assert result.ok, (cut, result.reason)
        assert result.entries == 2
        assert result.torn_tail is not None and result.torn_tail.data == torn_bytes
        appended = Ledger(folder, signer).append("run_failed", "run-x", "broker", {})
        assert appended.seq == 2
        repaired = verify_ledger(folder, signer.verifier())
        assert repaired.ok and repaired.entries == 3 and repaired.torn_tail is None
        repair = json.loads((folder / REPAIRS_FILE).read_text())
        assert base64.b64decode(repair["bytes_b64"]) == torn_bytes
        assert repair["offset"] == last_start


def test_garbage_last_line_with_newline_is_replaced_and_kept_in_repairs(ledger):
    fill(ledger, 2)
    with (ledger.directory / "log.jsonl").open("ab") as file:
        file.write(b"\x00\x00garbage\n")
    result = ledger.verify()
    assert not result.ok and result.first_bad_index == 2
    assert ledger.append("run_failed", "r", "broker", {}).seq == 2
    assert ledger.verify().ok
    repair = json.loads((ledger.directory / REPAIRS_FILE).read_text())
    assert base64.b64decode(repair["bytes_b64"]) == b"\x00\x00garbage\n"
    assert "not a valid entry" in repair["reason"]


def _append_worker(directory, seed_byte, worker, count):
    ledger = Ledger.open(directory, make_signer(seed_byte))
    for i in range(count):
        ledger.append("run_started", f"w{worker}-{i}", f"worker-{worker}", {"i": i})


def test_concurrent_appenders_produce_one_linear_history(tmp_path):
    directory = tmp_path / "ledger"
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_append_worker, args=(directory, 1, w, 200)) for w in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    entries = list(Ledger.open(directory, make_signer(1)).entries())
    assert [e.seq for e in entries] == list(range(800))
    assert len({e.run_id for e in entries}) == 800
    result = verify_ledger(directory, make_signer(1).verifier())
    assert result.ok, result.reason


def test_checkpoint_is_signed_once_per_size_and_stored(ledger):
    fill(ledger, 4)
    note = ledger.checkpoint()
    assert ledger.checkpoint() == note
    checkpoint = Checkpoint.from_note(note)
    assert (checkpoint.origin, checkpoint.size) == (ORIGIN, 4)
    assert (ledger.directory / "checkpoints" / "4.note").read_text() == note


def test_log_refuses_to_sign_a_checkpoint_inconsistent_with_the_last(ledger, signer):
    fill(ledger, 4)
    ledger.checkpoint()
    path = ledger.directory / "log.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    rewritten = [lines[0], lines[2], lines[1], lines[3]]
    path.write_bytes(b"".join(rewritten))
    with pytest.raises(LedgerError, match="entry 1: seq is 2, expected 1"):
        Ledger(ledger.directory, signer).checkpoint()
    path.write_bytes(b"".join(lines[:3]))
    with pytest.raises(LedgerError, match=r"entry 3: .* no longer holds entry 3"):
        Ledger(ledger.directory, signer).checkpoint()


def test_only_the_active_key_may_append(ledger):
    fill(ledger, 1)
    intruder = Ledger(ledger.directory, make_signer(9, ORIGIN))
    with pytest.raises(LedgerError, match="is not the ledger's active key"):
        intruder.append("run_started", "r", "a", {})


def test_refresh_ignores_a_torn_tail_until_repaired(ledger, signer):
    fill(ledger, 2)
    with (ledger.directory / "log.jsonl").open("ab") as file:
        file.write(b'{"actor":"bro')
    log = AppendOnlyLog(ledger.directory)
    assert log.refresh_tree().size == 2


def test_a_damaged_entry_covered_by_a_checkpoint_is_never_cut(ledger):
    fill(ledger, 3)
    ledger.checkpoint()
    path = ledger.directory / "log.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2]) + b"\x00" * (len(lines[2]) - 1) + b"\n")
    with pytest.raises(
        LedgerError, match="entry 2 was verified, appended or signed before but is damaged"
    ):
        ledger.append("run_failed", "r", "broker", {})
    assert path.read_bytes().endswith(b"\x00\n")
    assert not (ledger.directory / REPAIRS_FILE).exists()
