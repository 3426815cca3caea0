"""The training loop's mechanics on a toy method: resume equality, NaN, EMA, batch order."""

import dataclasses

import pytest
import torch
from torch import nn

from bench.runner.cells import Cell
from bench.runner.ema import EMA
from bench.runner.train import BatchOrder, NonFiniteLoss, train


class ToyMethod(nn.Module):
    """Predicts target from a noised input; draws noise from the given generator."""

    kind = "restoration"

    def __init__(self, poison_at: int | None = None):
        super().__init__()
        self.net = nn.Conv2d(3, 3, 3, padding=1)
        self.poison_at = poison_at
        self.calls = 0

    def networks(self):
        return {"net": self.net}

    def loss(self, batch, generator=None):
        self.calls += 1
        noise = torch.randn(batch["input"].shape, generator=generator)
        loss = (self.net(batch["input"] + 0.1 * noise) - batch["target"]).abs().mean()
        if self.poison_at is not None and self.calls >= self.poison_at:
            loss = loss * float("nan")
        return {"loss": loss}

    def training_step_hook(self, iteration):
        pass


class ToyData(torch.utils.data.Dataset):
    def __init__(self, n=10):
        g = torch.Generator().manual_seed(123)
        self.x = torch.rand(n, 3, 8, 8, generator=g) * 2 - 1
        self.y = self.x * 0.5

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"input": self.x[i], "target": self.y[i], "name": f"{i:03d}"}


CELL = Cell(
    dataset="toy",
    method="toy",
    seed=3,
    profile="test",
    task="shadow-removal",
    protocol="rgb",
    image_size=8,
    batch_size=3,
    grad_accumulation=2,
    iterations=12,
    steps=1,
    lr=1e-2,
    unet_dim=8,
    unet_mults=(1,),
    ema_decay=0.9,
    ema_every=2,
    ema_start=4,
    checkpoint_every=5,
    eval_images=0,
    eval_batch_size=4,
)


def fresh(seed=0, **kwargs):
    torch.manual_seed(seed)  # same initial weights every time
    return ToyMethod(**kwargs)


def test_training_lowers_the_loss():
    result, _ = train(
        fresh(), ToyData(), dataclasses.replace(CELL, iterations=60), torch.device("cpu")
    )
    first, last = result.losses[0][1]["loss"], result.losses[-1][1]["loss"]
    assert last < 0.5 * first


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path):
    full = fresh()
    train(full, ToyData(), CELL, torch.device("cpu"), checkpoint=tmp_path / "full.pt")

    part = fresh()

    def interrupt(iteration, _parts):
        if iteration == 7:  # after a periodic checkpoint at 5, mid-way to the next
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(part, ToyData(), CELL, torch.device("cpu"), tmp_path / "part.pt", on_step=interrupt)
    assert torch.load(tmp_path / "part.pt", weights_only=False)["iteration"] == 7

    resumed = fresh(seed=99)  # different initial weights: everything must come from the checkpoint
    result, ema = train(
        resumed, ToyData(), CELL, torch.device("cpu"), tmp_path / "part.pt", resume=True
    )
    assert result.resumed_from == 7
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    saved_full = torch.load(tmp_path / "full.pt", weights_only=False)
    for key, value in saved_full["ema"].items():
        assert torch.equal(value, ema.state_dict()[key])
    assert saved_full["losses"] == result.losses


def test_same_seed_same_weights_different_seed_different():
    a, b, c = fresh(), fresh(), fresh()
    train(a, ToyData(), CELL, torch.device("cpu"))
    train(b, ToyData(), CELL, torch.device("cpu"))
    train(c, ToyData(), dataclasses.replace(CELL, seed=4), torch.device("cpu"))
    assert torch.equal(a.net.weight, b.net.weight)
    assert not torch.equal(a.net.weight, c.net.weight)


def test_nan_loss_stops_with_a_clear_error():
    with pytest.raises(NonFiniteLoss, match="loss became nan at iteration 3"):
        train(fresh(poison_at=5), ToyData(), CELL, torch.device("cpu"))


def test_batch_order_is_a_permutation_per_epoch_and_pure():
    order = BatchOrder(size=7, batch_size=3, seed=1)
    drawn = [i for b in range(7) for i in order.indices(b)]  # 21 samples = 3 epochs
    for epoch in range(3):
        assert sorted(drawn[7 * epoch : 7 * epoch + 7]) == list(range(7))
    assert BatchOrder(7, 3, 1).indices(5) == order.indices(5)  # no hidden state
    assert drawn[:7] != drawn[7:14]


def test_ema_copies_until_start_then_follows_the_warmup_formula():
    model = nn.Linear(2, 2, bias=False)
    ema = EMA(model, decay=0.995, every=1, start=3)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.step(3)  # at start: copy
    assert torch.equal(ema.model.weight, model.weight)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.step(6)  # k = 6 - 3 - 1 = 2: decay 1 - 3^(-2/3)
    decay = 1 - 3 ** (-2 / 3)
    expected = decay * 1.0 + (1 - decay) * 3.0
    assert torch.allclose(ema.model.weight, torch.full((2, 2), expected))
    assert ema.decay_at(10**6) == 0.995


def test_ema_copies_buffers_and_survives_a_state_dict_load():
    model = nn.BatchNorm1d(3)
    ema = EMA(model, decay=0.5, every=1, start=0)
    model(torch.randn(8, 3))  # running statistics move
    ema.step(2)
    assert torch.equal(ema.model.running_mean, model.running_mean)
    ema.load_state_dict({k: torch.zeros_like(v) for k, v in model.state_dict().items()})
    with torch.no_grad():
        model.weight.fill_(4.0)
    ema.step(3)  # k = 2: decay 0.5 (capped), from the loaded zeros toward 4
    assert torch.equal(ema.model.weight, torch.full((3,), 2.0))
