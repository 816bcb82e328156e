import torch
import torch.nn.functional as F

from odetx.training.mixing import MixedTargets, mix_batch


def _batch(n=6):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 8, 8, generator=g), torch.arange(n) % 3


def test_mixup_is_a_convex_blend_with_a_permutation_of_the_batch():
    x, _ = _batch()
    y = torch.arange(len(x))  # distinct labels: each label names the row it belongs to
    torch.manual_seed(1)
    mixed, t = mix_batch(x, y, mixup=0.4, cutmix=0.0)
    assert 0.0 < t.lam < 1.0
    # The labels weigh the images they came from: lam on y_a's row, 1 - lam on y_b's.
    assert sorted(t.y_b.tolist()) == list(range(len(x)))  # a permutation of the batch
    assert t.y_b.tolist() != y.tolist()  # (this seed draws a real shuffle)
    for i in range(len(x)):
        a, b = int(t.y_a[i]), int(t.y_b[i])
        torch.testing.assert_close(mixed[i], t.lam * x[a] + (1 - t.lam) * x[b])


def test_cutmix_pastes_a_box_whose_area_sets_lambda():
    x, _ = _batch()
    x = x.abs() + 1.0  # distinct positive values: pasted pixels are told apart
    y = torch.arange(len(x))  # distinct labels reveal each row's partner
    boxes = 0
    for seed in range(20):
        torch.manual_seed(seed)
        mixed, t = mix_batch(x, y, mixup=0.0, cutmix=1.0)
        for i in range(len(x)):
            j = int(t.y_b[i])
            assert torch.equal(mixed[i] != x[i], (mixed[i] == x[j]) & (x[i] != x[j]))
            changed = (mixed[i] != x[i]).squeeze(0)  # (H, W)
            if j == i:
                assert not changed.any()
                continue
            area = int(changed.sum())
            assert t.lam == 1.0 - area / 64
            if area:
                rows, cols = changed.any(1).nonzero(), changed.any(0).nonzero()
                assert changed[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
                boxes += 1
    assert boxes > 0


def test_mixed_loss_and_hits_weigh_both_labels():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 3.0]])
    y_a, y_b = torch.tensor([0, 2]), torch.tensor([1, 1])
    t = MixedTargets(y_a, y_b, 0.7)
    expected = 0.7 * F.cross_entropy(logits, y_a) + 0.3 * F.cross_entropy(logits, y_b)
    assert torch.allclose(t.loss(logits, 0.0), expected)
    assert t.correct(logits) == 0.7 * 2 + 0.3 * 0  # predictions are 0 and 2


def test_nothing_mixes_when_both_are_off():
    x, y = _batch()
    state = torch.get_rng_state()
    mixed, t = mix_batch(x, y, 0.0, 0.0)
    assert mixed is x and t.lam == 1.0
    assert torch.equal(state, torch.get_rng_state())  # no draws: runs without mixing are unchanged
