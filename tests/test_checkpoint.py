import pickle

import pytest
import torch

from odetx.artefacts import checkpoint as ck
from odetx.artefacts.checkpoint import load_checkpoint, save_checkpoint
from odetx.errors import CheckpointError
from tests.test_fuzz_readers import flip_in_member

PAYLOAD = {"config": {"a": 1}, "data_info": {"kind": "image"}, "model": {"w": torch.ones(3)}}


def test_round_trip(tmp_path):
    save_checkpoint(tmp_path / "c.pt", PAYLOAD)
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(loaded["model"]["w"], torch.ones(3)) and loaded["config"] == {"a": 1}


def test_checkpoints_get_the_mode_of_any_other_run_file(tmp_path):
    save_checkpoint(tmp_path / "c.pt", PAYLOAD)
    (tmp_path / "plain.txt").write_text("x")  # what open() makes under this umask
    mode = (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert (tmp_path / "c.pt").stat().st_mode & 0o777 == mode  # not mkstemp's private 0600


def test_crash_mid_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, PAYLOAD)

    def dying_save(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(ck.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {**PAYLOAD, "model": {"w": torch.zeros(3)}})
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_truncated_and_corrupt_files_are_refused(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, PAYLOAD)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    for p in (truncated, garbage):
        with pytest.raises(CheckpointError, match="corrupt or truncated"):
            load_checkpoint(p)


class Exploit:
    marker = None

    def __reduce__(self):
        return (open, (str(Exploit.marker), "w"))


def test_pickled_objects_are_refused_never_executed(tmp_path):
    Exploit.marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({**PAYLOAD, "format": ck.FORMAT, "version": 1, "extra": Exploit()}, evil)
    assert not Exploit.marker.exists()
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(evil)
    assert not Exploit.marker.exists()


def test_other_files_are_not_odetx_checkpoints(tmp_path):
    p = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.ones(1)}}, p)
    with pytest.raises(CheckpointError, match="not an odetx checkpoint"):
        load_checkpoint(p)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_pickle_module_error_type_is_what_torch_raises(tmp_path):
    # Guards the except clause: torch signals weights_only refusals as UnpicklingError.
    p = tmp_path / "x.pt"
    torch.save({"x": Exploit.__new__(Exploit)}, p)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(p, weights_only=True)


def test_a_flipped_bit_in_a_weight_is_refused_not_loaded(tmp_path):
    # torch's reader checks no checksums: this flip loads, with a changed weight.
    path = tmp_path / "c.pt"
    save_checkpoint(path, {**PAYLOAD, "model": {"w": torch.arange(64.0)}})
    member, blob = flip_in_member(path.read_bytes(), lambda n: "/data/" in n)
    path.write_bytes(blob)
    with pytest.raises(CheckpointError, match=f"{member} fails its checksum"):
        load_checkpoint(path)
