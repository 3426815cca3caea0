"""The one interface the runner and the tests use: ``Method``, ``build_method``, the registry.

A method owns its networks as submodules, so ``state_dict()`` and ``.to(device)`` cover them.
All randomness (training t and noise, sampling start and per-step noise) comes from the
``torch.Generator`` passed in, so a seed gives bitwise identical results on CPU.
"""

import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.registry import resolve

Progress = Callable[[int, int], None]


def randn(shape, generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Standard normal draws from ``generator`` (on its own device), placed like ``like``."""
    device = generator.device if generator is not None else like.device
    z = torch.randn(shape, generator=generator, device=device, dtype=like.dtype)
    return z.to(like.device)


def randint(high: int, size: int, generator: torch.Generator | None, device) -> Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.randint(0, high, (size,), generator=generator, device=gen_device).to(device)


def rand(size: int, generator: torch.Generator | None, like: Tensor) -> Tensor:
    device = generator.device if generator is not None else like.device
    return torch.rand((size,), generator=generator, device=device, dtype=like.dtype).to(like.device)


def elementwise_loss(kind: str, prediction: Tensor, target: Tensor) -> Tensor:
    """Mean over all elements: ``l1``, ``l2`` (MSE) or ``smooth-l1`` (Resfusion's L1 option)."""
    if kind == "l1":
        return F.l1_loss(prediction, target)
    if kind == "l2":
        return F.mse_loss(prediction, target)
    if kind == "smooth-l1":
        return F.smooth_l1_loss(prediction, target)
    raise ValueError(f"unknown loss {kind!r}; valid: l1, l2, smooth-l1")


class Method(nn.Module):
    """A diffusion method: its networks, training loss and sampler.

    Subclasses set ``name`` and ``kind`` ("restoration" or "generation") and implement
    ``networks``, ``example_inputs``, ``loss`` and ``sample``.
    """

    name: str = ""
    kind: str = "restoration"

    def __init__(self, image_channels: int = 3, mask_channels: int = 0):
        super().__init__()
        if mask_channels not in (0, 1):
            raise ValueError(
                f"mask_channels is the number of channels of the mask the caller passes (0 or 1, "
                f"a binary (B,1,H,W) mask), got {mask_channels}"
            )
        self.image_channels = image_channels
        self.mask_channels = mask_channels
        # follows .to(device, dtype) like the networks, and works even with parameter-free nets
        self.register_buffer("_probe", torch.zeros(()), persistent=False)

    def networks(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def example_inputs(self, network: str, batch: int, size: int) -> tuple:
        raise NotImplementedError

    def loss(
        self, batch: dict[str, Tensor], generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        raise NotImplementedError

    def sample(
        self,
        condition: Tensor | None,
        *,
        mask: Tensor | None = None,
        shape: tuple | None = None,
        steps: int,
        eta: float = 0.0,
        generator: torch.Generator,
        progress: Progress | None = None,
    ) -> Tensor:
        raise NotImplementedError

    @classmethod
    def check_steps(cls, steps: int, options: dict[str, Any]) -> None:
        """Raise ValueError, saying what would work, when a method built with ``options``
        cannot sample in ``steps`` steps; called before any training."""
        timesteps = options.get("timesteps")
        if timesteps is None:
            timesteps = inspect.signature(cls).parameters["timesteps"].default
        if not 1 <= steps <= timesteps:
            raise ValueError(f"steps must be in 1..{timesteps} (T), got {steps}")

    def training_step_hook(self, iteration: int) -> None:
        """Called by the runner after each optimizer step; a no-op unless a method needs it."""

    # helpers shared by the subclasses -------------------------------------------------------

    def _param(self) -> Tensor:
        """A tensor on the method's device and dtype."""
        return self._probe

    def _check_mask(self, mask: Tensor | None, reference: Tensor) -> Tensor | None:
        if self.mask_channels == 0:
            if mask is not None:
                raise ValueError(f"{self.name} was built with mask_channels=0 but got a mask")
            return None
        if mask is None:
            raise ValueError(f"{self.name} was built with mask_channels=1 and needs a mask")
        if mask.shape[1] != 1 or mask.shape[-2:] != reference.shape[-2:]:
            raise ValueError(f"mask must be (B,1,H,W) like the image, got {tuple(mask.shape)}")
        return mask.to(reference)

    def _refuse_eta(self, eta: float) -> None:
        """For samplers whose reverse step is DDPM's ancestral one: eta has no meaning there,
        so asking for another value than 0 is an error rather than silently ignored."""
        if eta != 0:
            raise ValueError(
                f"{self.name or type(self).__name__} samples with DDPM's posterior variance; "
                f"eta does not apply (got eta={eta}); use rddm or ddim for eta"
            )

    def _restoration_condition(self, condition: Tensor | None) -> Tensor:
        if condition is None:
            raise ValueError(f"{self.name} is a restoration method and needs a condition image")
        return condition.to(self._param())

    def _generation_shape(self, shape: tuple | None) -> tuple:
        if shape is None:
            raise ValueError(f"{self.name} generates images and needs shape=(B, C, H, W)")
        return tuple(shape)


def build_method(
    name: str,
    *,
    image_channels: int = 3,
    mask_channels: int = 0,
    unet_dim: int = 64,
    unet_mults: tuple[int, ...] | None = None,
    image_size: int | None = None,
    **options: Any,
) -> Method:
    """Build a configured method by registry name.

    ``unet_mults=None`` takes the method's paper default ((1, 2, 4, 8) for the RDDM/Resfusion
    UNet, (1, 2, 4, 8, 16) for SR3). ``image_size`` reaches the methods whose networks depend
    on it (SR3 places attention at the resolutions in ``attn_res`` of that image size) and is
    ignored by the others. Options are the keyword arguments of the method's class;
    the variant names fix some of them (``rddm-sm-res`` fixes ``objective="res"``).
    """
    factory, fixed = check_options(name, options)
    accepted = set(inspect.signature(factory).parameters)
    common = {
        "image_channels": image_channels,
        "mask_channels": mask_channels,
        "unet_dim": unet_dim,
    }
    if unet_mults is not None:
        common["unet_mults"] = tuple(unet_mults)
    if image_size is not None and "image_size" in accepted:
        common["image_size"] = image_size
    method = factory(**common, **{**fixed, **options})
    method.name = name
    return method


def check_options(name: str, options: dict[str, Any]) -> tuple[Callable[..., Method], dict]:
    """The registry entry of ``name`` once ``options`` are known to it (KeyError for an
    unknown name, TypeError for an unknown or fixed option), without building anything."""
    factory, fixed = resolve(name)
    accepted = set(inspect.signature(factory).parameters)
    for key in options:
        if key not in accepted:
            raise TypeError(
                f"{name} has no option {key!r}; valid: {', '.join(sorted(accepted - _COMMON))}"
            )
        if key in fixed and options[key] != fixed[key]:
            raise TypeError(f"{name} fixes {key}={fixed[key]!r}; use another registry name")
    return factory, fixed


def check_settings(name: str, steps: int, options: dict[str, Any]) -> None:
    """Everything about a method's settings that can fail before it is built and trained:
    its options, and whether it samples in ``steps`` steps (ValueError/TypeError/KeyError)."""
    factory, fixed = check_options(name, options)
    factory.check_steps(steps, {**options, **fixed})


_COMMON = {"image_channels", "mask_channels", "unet_dim", "unet_mults", "image_size"}
