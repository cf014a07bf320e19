"""The memory of normal codes: nearest-item recall, weights and artifacts with and without it."""

import base64
import json

import numpy as np
import pytest
import torch

from streamae import artifact
from streamae.detectors.autoencoder import ARCHITECTURES, AutoencoderDetector, Scaler
from streamae.detectors.memory import CHUNK, SensorMemory, recall
from streamae.exceptions import ModelError


def test_recall_returns_the_nearest_item_whatever_the_batch():
    memory = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 5.0]])
    codes = torch.tensor([[0.9, 0.2], [0.1, 4.0], [-1.0, -1.0]])
    assert recall(codes, memory).tolist() == [[1.0, 0.0], [0.0, 5.0], [0.0, 0.0]]
    assert recall(codes[1:2], memory).tolist() == [[0.0, 5.0]]


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_a_module_with_a_memory_decodes_the_nearest_remembered_code(arch):
    torch.manual_seed(0)
    module = ARCHITECTURES[arch](channels=2, window=8, hidden=8, latent=3).eval()
    assert module.memory is None and "memory" not in module.state_dict()
    x = torch.randn(4, 8, 2)
    codes = torch.randn(5, 3)
    module.set_memory(codes)
    assert module.hparams["memory"] == 5
    assert torch.equal(module.state_dict()["memory"], codes)
    with torch.no_grad():
        expected = module.decode(recall(module.encode(x), codes))
        assert torch.equal(module(x), expected)
    with pytest.raises(ValueError, match="memory codes"):
        module.set_memory(torch.empty(0, 3))


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_artifact_round_trip_keeps_the_memory_and_the_scores(arch, tmp_path):
    torch.manual_seed(1)
    module = ARCHITECTURES[arch](channels=1, window=6, hidden=4, latent=2)
    module.set_memory(torch.randn(7, 2))
    detector = AutoencoderDetector(
        module, arch, ("v",), Scaler(np.zeros(1), np.ones(1)), np.linspace(0, 1, 20), device="cpu"
    )
    artifact.save(detector, tmp_path / "model")
    loaded = artifact.load(tmp_path / "model", device="cpu")
    assert loaded.hyperparameters["memory"] == 7
    assert loaded.version == detector.version
    windows = np.random.default_rng(2).normal(size=(9, 6, 1))
    np.testing.assert_array_equal(loaded.score(windows)[0], detector.score(windows)[0])


def test_artifact_round_trip_keeps_the_score_tail(tmp_path):
    torch.manual_seed(1)
    module = ARCHITECTURES["conv"](channels=1, window=6, hidden=4, latent=2, tail=2)
    detector = AutoencoderDetector(
        module, "conv", ("v",), Scaler(np.zeros(1), np.ones(1)), np.linspace(0, 1, 20), device="cpu"
    )
    artifact.save(detector, tmp_path / "model")
    loaded = artifact.load(tmp_path / "model", device="cpu")
    assert loaded.score_tail == 2
    windows = np.random.default_rng(2).normal(size=(9, 6, 1))
    np.testing.assert_array_equal(loaded.score(windows)[0], detector.score(windows)[0])


def _items(memory: SensorMemory) -> list[float]:
    items = memory.items()
    return [] if items is None else sorted(items[:, 0].tolist())


def test_a_sensor_memory_learns_normal_codes_a_block_later_and_keeps_the_newest():
    memory = SensorMemory(size=3, block=2, latent=1)
    seen = []
    for i in range(10):
        seen.append(_items(memory))  # what window i may rebuild from
        memory.add(torch.tensor([float(i)]), normal=i != 3)  # window 3 was flagged
    # Window i joins at the first block end at least a block (here 2) after it.
    assert seen[:2] == [[], []]
    assert seen[2] == seen[3] == [0.0]
    assert seen[4] == seen[5] == [0.0, 1.0, 2.0]
    assert seen[6] == seen[7] == [1.0, 2.0, 4.0]  # 3 was flagged: never learned
    assert seen[8] == seen[9] == [4.0, 5.0, 6.0]  # at most 3: the oldest make room
    assert memory.scored == 10
    with pytest.raises(ValueError, match=">= 1"):
        SensorMemory(size=0, block=2, latent=1)


def test_a_sensor_memory_delay_holds_codes_back_that_many_windows():
    memory = SensorMemory(size=10, block=2, latent=1, delay=5)
    seen = []
    for i in range(9):
        seen.append(_items(memory))
        memory.add(torch.tensor([float(i)]), normal=True)
    assert seen[5] == [] and seen[6] == [0.0, 1.0] and seen[8] == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize(("block", "delay"), [(1, 63), (1, 127), (4, 200), (32, 2000)])
def test_a_sensor_memory_holds_the_newest_normal_codes_old_enough_as_its_queue_moves_and_grows(
    block, delay
):
    # The waiting codes are moved to the front of their arrays and the arrays grow as
    # codes come and go; the memory must stay what its definition says after every window.
    size = 50
    memory = SensorMemory(size=size, block=block, latent=1, delay=delay)
    normal = np.random.default_rng(block + delay).random(3 * delay + 500) > 0.1
    for i, is_normal in enumerate(normal):
        memory.add(torch.tensor([float(i)]), normal=bool(is_normal))  # code = window number
        last_block_end = (i + 1) // block * block
        old_enough = [j for j in range(last_block_end - delay + 1) if normal[j]]
        # The n-th code to join sits in slot n % size.
        ring = [0.0] * min(len(old_enough), size)
        for n in range(max(0, len(old_enough) - size), len(old_enough)):
            ring[n % size] = float(old_enough[n])
        items = memory.items()
        assert (items[:, 0].tolist() if items is not None else []) == ring, i
    assert memory.added == normal.sum()
    # Each code checkpoints with its own window number, the waiting ones too.
    chunks, _ = memory.changes()
    for chunk in chunks.values():
        codes = np.frombuffer(base64.b64decode(chunk["codes"]), np.float32)
        assert codes.tolist() == chunk["windows"]
    held = sum(len(chunk["windows"]) for chunk in chunks.values())
    assert held == memory.added - max(0, memory.joined - size)  # the ring's and the waiting


def _detector(memory: int = 7) -> AutoencoderDetector:
    torch.manual_seed(3)
    module = ARCHITECTURES["conv"](channels=1, window=6, hidden=4, latent=2)
    module.set_memory(torch.randn(memory, 2))
    return AutoencoderDetector(
        module, "conv", ("v",), Scaler(np.zeros(1), np.ones(1)), np.linspace(0, 1, 20), device="cpu"
    )


def test_scoring_with_a_sensor_memory_rebuilds_from_the_nearer_of_the_two_memories():
    detector = _detector()
    windows = np.random.default_rng(4).normal(size=(5, 6, 1))
    plain, plain_errors = detector.score(windows)
    scores, errors, codes = detector.score_remembering(windows, [None] * 5)
    np.testing.assert_array_equal(scores, plain)
    np.testing.assert_array_equal(errors, plain_errors)
    # A sensor that remembers windows 0 and 1's own codes rebuilds them from those
    # (at distance 0: nearer than any item of the model's memory).
    own = codes[:2].clone()
    with torch.no_grad():
        exact = detector.module.decode(own)
        x = torch.from_numpy(detector.scaler.transform(windows[:2]))
        expected = (exact - x).square().mean(dim=(1, 2)).double().numpy()
    remembering, _, _ = detector.score_remembering(windows, [own, own, None, None, None])
    np.testing.assert_allclose(remembering[:2], expected, rtol=1e-6)
    assert (remembering[:2] != plain[:2]).all()
    np.testing.assert_array_equal(remembering[2:], plain[2:])


def test_only_a_model_with_a_memory_of_normal_codes_offers_a_sensor_memory():
    assert _detector().can_remember
    assert isinstance(_detector().sensor_memory(16, 4), SensorMemory)
    torch.manual_seed(3)
    bare = ARCHITECTURES["conv"](channels=1, window=6, hidden=4, latent=2)
    detector = AutoencoderDetector(
        bare, "conv", ("v",), Scaler(np.zeros(1), np.ones(1)), np.linspace(0, 1, 20), device="cpu"
    )
    assert not detector.can_remember
    with pytest.raises(ModelError, match="no memory of normal codes"):
        detector.sensor_memory(16, 4)
    with pytest.raises(ModelError, match="no memory of normal codes"):
        detector.score_remembering(np.zeros((1, 6, 1)), [None])


def test_a_window_rebuilds_from_the_same_item_whatever_shares_its_batch():
    # Two items at the same distance from the window's code (a rotation of one offset):
    # a near-tie that a one-row search can break differently from a batched one.
    latent = 16
    torch.manual_seed(3)
    module = ARCHITECTURES["conv"](channels=1, window=6, hidden=4, latent=latent)
    module.set_memory(torch.randn(7, latent) * 50)  # far away: the sensor memory wins
    detector = AutoencoderDetector(
        module, "conv", ("v",), Scaler(np.zeros(1), np.ones(1)), np.linspace(0, 1, 20), device="cpu"
    )
    rng = np.random.default_rng(0)
    window = rng.normal(size=(1, 6, 1))
    others = rng.normal(size=(7, 6, 1))
    code = detector.score_remembering(window, [None])[2][0]
    generator = torch.Generator().manual_seed(1)
    for _ in range(300):
        offset = torch.randn(latent, generator=generator) * 0.3
        rotation, _ = torch.linalg.qr(torch.randn(latent, latent, generator=generator))
        far = [code + torch.randn(latent, generator=generator) * 3 for _ in range(30)]
        items = torch.stack([code + offset, code + rotation @ offset, *far])
        # Alone in its sensor's group (the others have memories of their own) ...
        alone, _, _ = detector.score_remembering(
            np.concatenate([window, others]), [items] + [items.clone() for _ in range(7)]
        )
        # ... and as one of 8 windows sharing one memory.
        shared, _, _ = detector.score_remembering(np.repeat(window, 8, axis=0), [items] * 8)
        assert alone[0] == shared[0]


def _checkpoint(memory: SensorMemory, topic: dict[int, dict]) -> dict:
    """What a checkpoint leaves on a compacted topic: chunks written, dropped ones gone."""
    chunks, dropped = memory.changes()
    topic.update(json.loads(json.dumps(chunks, sort_keys=True)))  # the wire: JSON
    topic.update({str(k): None for k in dropped})
    return json.loads(json.dumps(memory.state()))


def _restored(state: dict, topic: dict, **settings) -> SensorMemory:
    memory = SensorMemory(**({"size": 300, "block": 4, "latent": 2, "delay": 40} | settings))
    chunks = {int(k): chunk for k, chunk in topic.items() if chunk is not None}
    memory.restore(state, chunks)
    return memory


def test_a_sensor_memory_restored_from_its_checkpoint_goes_on_exactly_as_the_original():
    rng = np.random.default_rng(5)
    codes = torch.from_numpy(rng.normal(size=(2000, 2)).astype(np.float32))
    normal = rng.random(2000) > 0.2
    original = SensorMemory(size=300, block=4, latent=2, delay=40)
    topic: dict = {}
    restored_at = {}
    for i in range(2000):
        original.add(codes[i], bool(normal[i]))
        if i in (3, 700, 1300):  # a checkpoint, then a restart from it
            restored_at[i] = _restored(_checkpoint(original, topic), topic)
        elif i % 97 == 0:
            _checkpoint(original, topic)
        for start, memory in restored_at.items():
            if i > start:
                memory.add(codes[i], bool(normal[i]))
            # Slot for slot, after every window: the restored waiting codes join in turn.
            assert memory.state() == original.state(), start
            mine, theirs = memory.items(), original.items()
            assert (mine is None and theirs is None) or torch.equal(mine, theirs), start
    _checkpoint(original, topic)
    # Held: the 300 in the ring and the ~32 waiting; the older chunks were tombstoned.
    live = sorted(int(k) for k, chunk in topic.items() if chunk is not None)
    assert live == list(range((original.joined - 300) // CHUNK, -(-original.added // CHUNK)))
    assert len(live) < original.added // CHUNK


def test_a_sensor_memory_refuses_a_checkpoint_that_cannot_be_its_own():
    memory = SensorMemory(size=300, block=4, latent=2, delay=40)
    for i in range(600):
        memory.add(torch.tensor([float(i), 0.0]), normal=True)
    topic: dict = {}
    state = _checkpoint(memory, topic)
    assert torch.equal(_restored(state, topic).items(), memory.items())
    with pytest.raises(ValueError, match="other memory settings"):
        _restored(state, topic, size=200)
    live = [k for k, chunk in topic.items() if chunk is not None]
    assert len(live) == 599 // CHUNK - 261 // CHUNK + 1  # 261..599: the ring's 300, 39 waiting
    for k in live:
        with pytest.raises(ValueError, match=f"chunk {k} of its codes is missing"):
            _restored(state, {**topic, k: None})
        other = {**topic, k: {**topic[k], "generation": "another"}}
        with pytest.raises(ValueError, match=f"chunk {k} of its codes is missing"):
            _restored(state, other)
    last, first = max(live, key=int), min(live, key=int)
    short = {**topic, last: {**topic[last], "windows": topic[last]["windows"][:-1]}}
    with pytest.raises(ValueError, match=f"chunk {last} of its codes is short"):
        _restored(state, short)
    # A chunk from a later checkpoint, when the ring had moved past the codes needed here.
    later = {**topic, first: {**topic[first], "first": topic[first]["first"] + 1}}
    later[first]["windows"] = later[first]["windows"][1:]
    later[first]["codes"] = _drop_first_code(later[first]["codes"], latent=2)
    with pytest.raises(ValueError, match=f"chunk {first} of its codes is short"):
        _restored(state, later)
    huge = {**topic, last: {**topic[last], "windows": [2**65] * len(topic[last]["windows"])}}
    with pytest.raises(ValueError, match=f"chunk {last} has a window number out of range"):
        _restored(state, huge)
    with pytest.raises(ValueError, match="not a memory's state"):
        _restored([state], topic)
    failed = SensorMemory(size=300, block=4, latent=2, delay=40)
    with pytest.raises(ValueError):
        failed.restore(state, {})
    assert failed.items() is None and failed.scored == 0  # a refused checkpoint changes nothing


def _drop_first_code(encoded: str, latent: int) -> str:
    raw = np.frombuffer(base64.b64decode(encoded), np.float32)[latent:]
    return base64.b64encode(raw.tobytes()).decode()


def test_a_checkpoint_writes_only_chunks_that_got_codes_and_all_of_them_after_a_move():
    memory = SensorMemory(size=100, block=4, latent=2, delay=8)
    for i in range(150):
        memory.add(torch.tensor([float(i), 1.0]), normal=True)
    chunks, _ = memory.changes()
    # 141 joined by the last block end (148), 9 waiting: codes 41..149 are held.
    assert sorted(chunks) == [0, 1, 2]
    assert chunks[0]["first"] == 41 and chunks[2]["first"] == 2 * CHUNK
    for _ in range(3):
        memory.add(torch.tensor([0.0, 0.0]), normal=False)  # flagged: no new code
    assert memory.changes() == ({}, [])
    memory.add(torch.tensor([0.0, 0.0]), normal=True)
    assert list(memory.changes()[0]) == [2]  # the chunk the new code went to
    assert memory.moved() == range(0, 3)
    assert sorted(memory.changes()[0]) == [0, 1, 2]  # written again, all, where it moved
