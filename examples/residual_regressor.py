"""A method of your own, in one file: benchmark it beside RDDM, Resfusion and SR3.

    bench run synth-shadow --methods-from examples/residual_regressor.py \
        -m residual-regressor,rddm,resfusion,sr3

or, from an installed package, declare the entry point in its pyproject.toml:

    [project.entry-points."bench.methods"]
    residual-regressor = "residual_regressor"

The method predicts the residual I_in - I_0 in one forward pass, with no diffusion: the
simplest learned baseline a diffusion method should clear. Everything bench needs is here:
the class (bench's ``Method`` interface: ``networks``, ``example_inputs``, ``loss``,
``sample``), its settings per task, and the ``register`` line (docs/methods.md, "Your own
method").
"""

import torch
from torch import Tensor, nn

from baselines.base import Method, elementwise_loss
from baselines.registry import register


class ResidualRegressor(Method):
    """Three 3x3 convolutions from the degraded image (and mask) to the residual."""

    def __init__(
        self,
        *,
        image_channels: int = 3,
        mask_channels: int = 0,
        unet_dim: int = 32,
        unet_mults: tuple[int, ...] = (1,),
        loss: str = "l1",
    ):
        super().__init__(image_channels, mask_channels)
        width = unet_dim * unet_mults[-1]
        self.loss_type = loss
        self.nets = nn.ModuleDict(
            {
                "regressor": nn.Sequential(
                    nn.Conv2d(image_channels + mask_channels, width, 3, padding=1),
                    nn.SiLU(),
                    nn.Conv2d(width, width, 3, padding=1),
                    nn.SiLU(),
                    nn.Conv2d(width, image_channels, 3, padding=1),
                )
            }
        )

    def networks(self) -> dict[str, nn.Module]:
        return dict(self.nets.items())

    def example_inputs(self, network: str, batch: int, size: int) -> tuple:
        p = self._param()
        channels = self.image_channels + self.mask_channels
        return (torch.randn(batch, channels, size, size, device=p.device, dtype=p.dtype),)

    def _residual(self, condition: Tensor, mask: Tensor | None) -> Tensor:
        inputs = condition if mask is None else torch.cat([condition, mask], dim=1)
        return self.nets["regressor"](inputs)

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator | None = None):
        condition = batch["input"]
        mask = self._check_mask(batch.get("mask"), condition)
        value = elementwise_loss(
            self.loss_type, self._residual(condition, mask), condition - batch["target"]
        )
        return {"loss": value, "loss_res": value.detach()}

    @torch.no_grad()
    def sample(self, condition, *, mask=None, shape=None, steps, eta=0.0, generator, progress=None):
        condition = self._restoration_condition(condition)
        mask = self._check_mask(mask, condition)
        return (condition - self._residual(condition, mask)).clamp(-1, 1)

    @classmethod
    def check_steps(cls, steps: int, options: dict) -> None:
        if steps != 1:
            raise ValueError(f"residual-regressor samples in one step, got {steps}")


RESTORATION = ("shadow-removal", "low-light", "deraining", "deblurring")
register(
    "residual-regressor",
    ResidualRegressor,
    settings={task: {"steps": 1, "lr": 1e-3, "notes": ["no paper"]} for task in RESTORATION},
)
