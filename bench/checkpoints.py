"""Checkpoints written by bench or by the official code, recognised by their keys and shapes.

Four formats are known (docs/checkpoints.md lists their keys):

* ``bench``: what ``bench run`` writes (``model``/``ema`` state dicts of the method).
* ``rddm-trainer``: nachifur/RDDM ``Trainer.save`` files: ``model`` (the ``ResidualDiffusion``
  state dict) and ``ema`` (ema-pytorch, ``ema_model.*`` and ``online_model.*``); the UNets
  are ``model.unet0``/``model.unet1`` (two networks, or one), or the shared-encoder ``UnetRes``.
* ``resfusion-lightning``: nkicsl/Resfusion Lightning checkpoints (``state_dict`` with
  ``denoising_module.*``, ``hyper_parameters`` with T, schedule and mode).
* ``sr3-generator``: Janspiry's SR3 ``*_gen.pth`` (``denoise_fn.*`` and the schedule buffers).

:func:`read_checkpoint` recognises a file and infers what its tensors say (input channels,
width, multipliers, mask channels, schedule buffers); :func:`load_weights` loads it into a
built method, strictly (every tensor lands, shapes checked with the tensor named);
:func:`load_method` does both. Official parameter names are translated to bench's by the
rules below; docs/official-code.md says why the networks are then the same functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bench.errors import UsageError
from bench.torch_files import UntrustedFileError, load_torch_file

FORMATS = ("bench", "rddm-trainer", "resfusion-lightning", "sr3-generator")
#: the weight sets a checkpoint may hold (--weight-set): the EMA copy and the raw one
WEIGHT_SETS = ("ema", "online")
IMAGE_CHANNELS = 3

# official RDDM/Resfusion UNet names -> bench.baselines.unet names, applied in order
_UNET_RULES = [
    (r"^init_conv\.", "stem."),
    (r"^downs\.(\d+)\.", r"encoder.\1."),
    (r"^ups_no_skip\.(\d+)\.", r"residual_decoder.levels.\1."),
    (r"^ups\.(\d+)\.", r"decoder.levels.\1."),
    (r"^final_res_block_1\.", "residual_decoder.final_block."),
    (r"^final_conv_1\.", "residual_decoder.final_conv."),
    (r"^final_res_block(_2)?\.", "decoder.final_block."),
    (r"^final_conv(_2)?\.", "decoder.final_conv."),
    (r"\.mlp\.1\.", ".time_mlp.1."),
    (r"\.block1\.proj\.", ".conv1."),
    (r"\.block1\.norm\.", ".norm1."),
    (r"\.block2\.proj\.", ".conv2."),
    (r"\.block2\.norm\.", ".norm2."),
    (r"\.res_conv\.", ".skip."),
    (r"\.fn\.norm\.g$", ".norm.gain"),  # Residual(PreNorm(fn)) -> PreNormResidual(norm, fn)
    (r"\.fn\.fn\.", ".fn."),
    (r"\.to_out\.1\.g$", ".to_out.1.gain"),
]

# official SR3 UNet names -> baselines.sr3_unet names
_SR3_RULES = [
    (r"^noise_level_mlp\.", "noise_mlp."),
    (r"\.res_block\.noise_func\.noise_func\.0\.", ".noise_proj."),
    (r"\.res_block\.block(\d)\.block\.", r".block\1."),
    (r"\.res_block\.res_conv\.", ".skip."),
    (r"^downs\.(\d+)\.conv\.", r"downs.\1."),  # Downsample(conv) -> the conv itself
    (r"^ups\.(\d+)\.conv\.", r"ups.\1.1."),  # Upsample(up, conv) -> Sequential(up, conv)
    (r"^final_conv\.block\.", "final."),
]

_RDDM_BUFFERS = ("alphas_cumsum", "betas2_cumsum")


class CheckpointError(UsageError):
    """A checkpoint that cannot be read as asked; the message names the file and the fix."""


def _translate(state: dict[str, Tensor], rules) -> dict[str, Tensor]:
    out = {}
    for key, value in state.items():
        for pattern, replacement in rules:
            key = re.sub(pattern, replacement, key)
        out[key] = value
    return out


def _strip(state: dict[str, Any], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


@dataclass(frozen=True)
class Checkpoint:
    """A recognised checkpoint: per weight set ("ema", "online"), per slot, bench-named tensors.

    Slots are the networks as the file stores them ("unet0", "unet1", "shared" for the RDDM
    trainer, "denoiser" for Resfusion and SR3, bench's own network names for bench files).
    """

    path: Path
    format: str
    candidates: tuple[str, ...]
    options: dict[str, Any]
    notes: tuple[str, ...]
    states: dict[str, dict[str, dict[str, Tensor]]] = field(repr=False)
    extras: dict[str, dict[str, Tensor]] = field(default_factory=dict, repr=False)
    #: what a bench checkpoint says of its training (iteration, dataset, seed, profile, ...)
    stored: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str | None:
        """The registry name the file fits, or None when its tensors leave it open."""
        return self.candidates[0] if len(self.candidates) == 1 else None

    @property
    def weight_sets(self) -> tuple[str, ...]:
        return tuple(w for w in WEIGHT_SETS if w in self.states)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (what ``bench checkpoint inspect`` prints)."""
        any_weights = self.states[self.weight_sets[0]]
        return {
            "path": str(self.path),
            "format": self.format,
            "method": self.method,
            "candidates": list(self.candidates),
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()},
            "weight_sets": list(self.weight_sets),
            "networks": {
                slot: {
                    "tensors": len(tensors),
                    "params": sum(t.numel() for t in tensors.values() if t.is_floating_point()),
                }
                for slot, tensors in any_weights.items()
            },
            "stored": self.stored,
            "notes": list(self.notes),
        }


def _load_file(path: Path, trust: bool) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return load_torch_file(path, trust=trust)
    except UntrustedFileError:
        raise
    except Exception as error:
        raise CheckpointError(
            f"{path} is not a torch checkpoint bench can read ({type(error).__name__}: {error})"
        ) from error


def read_checkpoint(path: str | Path, trust: bool = False) -> Checkpoint:
    """Recognise ``path`` and infer what its tensors say; one clear error otherwise.

    The file is read by the weights-only unpickler (``bench.torch_files``); ``trust`` unpickles
    it fully, for a file from a source you trust that holds more than weights."""
    path = Path(path)
    state = _load_file(path, trust)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict")
    keys = set(state)
    if {"model", "iteration"} <= keys and _has_prefix(state["model"], "nets."):
        return _read_bench(path, state)
    if keys & {"model", "ema"} and (
        _has_prefix(state.get("model", {}), "model.")
        or _has_prefix(state.get("ema", {}), "ema_model.model.")
    ):
        return _read_rddm(path, state)
    if "state_dict" in keys and _has_prefix(state["state_dict"], "denoising_module."):
        return _read_resfusion(path, state)
    if _has_prefix(state, "denoise_fn."):
        return _read_sr3(path, state)
    raise CheckpointError(_unrecognised(path, state))


def _has_prefix(state: Any, prefix: str) -> bool:
    return isinstance(state, dict) and any(str(k).startswith(prefix) for k in state)


def _unrecognised(path: Path, state: dict) -> str:
    """Name the closest known format and what it would need."""
    keys = [str(k) for k in state]
    expectations = {
        "bench": ["model (with nets.*)", "iteration"],
        "rddm-trainer": ["model (with model.unet0.* or model.init_conv.*)", "ema"],
        "resfusion-lightning": ["state_dict (with denoising_module.*)", "hyper_parameters"],
        "sr3-generator": ["denoise_fn.* tensors"],
    }
    hints = {
        "bench": {"model", "iteration", "ema", "optimizer"},
        "rddm-trainer": {"model", "ema", "step", "opt"},
        "resfusion-lightning": {"state_dict", "hyper_parameters", "epoch", "global_step"},
        "sr3-generator": {"betas", "alphas_cumprod"},
    }
    closest = max(hints, key=lambda fmt: len(hints[fmt] & set(keys)))
    shown = ", ".join(keys[:8]) + (f" (+{len(keys) - 8} more)" if len(keys) > 8 else "")
    return (
        f"{path} matches no known checkpoint format ({', '.join(FORMATS)}); closest is "
        f"{closest}, which needs {'; '.join(expectations[closest])}; the file has: {shown}"
    )


# -- per format -----------------------------------------------------------------------------


def _group_nets(state: dict[str, Tensor]) -> tuple[dict[str, dict[str, Tensor]], dict]:
    nets: dict[str, dict[str, Tensor]] = {}
    extras = {}
    for key, value in state.items():
        if key.startswith("nets."):
            name, rest = key[5:].split(".", 1)
            nets.setdefault(name, {})[rest] = value
        else:
            extras[key] = value
    return nets, extras


def _read_bench(path: Path, state: dict) -> Checkpoint:
    states, extras = {}, {}
    for weights, key in (("ema", "ema"), ("online", "model")):
        if key in state:
            states[weights], extras[weights] = _group_nets(state[key])
    nets = states.get("ema", states.get("online"))
    names = set(nets)
    if names == {"res", "noise"}:
        candidates = ("rddm",)
    elif names == {"joint"}:
        shared = any(k.startswith("residual_decoder.") for k in nets["joint"])
        candidates = ("rddm-shared-encoder",) if shared else ("rddm-1net",)
    elif names == {"denoiser"}:
        keys = nets["denoiser"]
        candidates = ("sr3",) if "noise_mlp.1.weight" in keys else ("resfusion",)
    else:
        single = {"res": "rddm-sm-res", "noise": "rddm-sm-n", "aosa": "rddm-aosa", "eps": "ddim"}
        candidates = tuple(single[n] for n in sorted(names) if n in single)
    first = next(iter(nets.values()))
    if candidates == ("sr3",):
        options = _infer_sr3(first)
    elif "stem.weight" in first:
        options = _infer_unet(first)[0]
    else:
        options = {}
    return Checkpoint(
        path, "bench", candidates, options, (), states, extras, _bench_training(state)
    )


#: a bench checkpoint's training settings that `bench checkpoint inspect` shows, in order
_STORED = ("dataset", "method", "seed", "profile", "iterations", "lr", "batch_size",
           "image_size", "options", "dataset_fingerprint", "bench_version")  # fmt: skip


def _bench_training(state: dict) -> dict[str, Any]:
    """The iteration reached and the settings the weights were trained under."""
    settings = state.get("settings") if isinstance(state.get("settings"), dict) else {}
    stored = {"iteration": state.get("iteration")}
    stored |= {key: settings[key] for key in _STORED if key in settings}
    return {key: value for key, value in stored.items() if value is not None}


def _read_rddm(path: Path, state: dict) -> Checkpoint:
    states, extras = {}, {}
    for weights, diffusion in _rddm_weight_sets(state).items():
        unet = _strip(diffusion, "model.")
        if any(k.startswith("unet0.") for k in unet):
            slots = {s: _strip(unet, f"{s}.") for s in ("unet0", "unet1") if f"{s}.init_conv.weight" in unet}  # fmt: skip
        else:
            slots = {"shared": unet}
        states[weights] = {s: _translate(t, _UNET_RULES) for s, t in slots.items()}
        extras[weights] = {k: v for k, v in diffusion.items() if not k.startswith("model.")}
    any_state = next(iter(states.values()))
    any_extra = next(iter(extras.values()))
    options, in_channels, out_channels = _infer_unet(next(iter(any_state.values())))
    candidates, notes = _rddm_variant(set(any_state), out_channels, any_extra)
    # RDDM reads the mask as an RGB image: 3 more channels
    options |= _conditioning(in_channels, 3 * IMAGE_CHANNELS)
    if in_channels == IMAGE_CHANNELS:
        notes.append(
            "the network sees x_t alone: built as generation (I_in = 0); for the inpainting or "
            "translation experiments pass -o kind=restoration -o condition=none"
        )
    options |= _rddm_schedule_options(any_extra, notes)
    notes.append(
        "time conditioning is not stored in the file: bench feeds the integer t (the template); "
        "experiment 0's checkpoints need -o time_condition=coefficients"
    )
    return Checkpoint(path, "rddm-trainer", candidates, options, tuple(notes), states, extras)


def _rddm_weight_sets(state: dict) -> dict[str, dict]:
    """The trainer file's diffusion state dicts: "ema" and, where stored, "online"."""
    sources = {}
    if "ema" in state and _has_prefix(state["ema"], "ema_model."):
        sources["ema"] = _strip(state["ema"], "ema_model.")
    if "model" in state and _has_prefix(state["model"], "model."):
        sources["online"] = state["model"]
    elif "ema" in state and _has_prefix(state["ema"], "online_model."):
        sources["online"] = _strip(state["ema"], "online_model.")
    return sources


def _rddm_variant(
    slots: set[str], out_channels: int, buffers: dict[str, Tensor]
) -> tuple[tuple[str, ...], list[str]]:
    """Which RDDM variants the file's networks fit, and what the file cannot say."""
    if slots == {"unet0", "unet1"}:
        return ("rddm",), []
    if slots == {"shared"}:
        return ("rddm-shared-encoder",), []
    if out_channels == 2 * IMAGE_CHANNELS:
        return ("rddm-1net",), []
    if "alpha_res" in buffers:
        lam = float(buffers["alpha_res"].flatten()[0])
        return ("rddm-aosa",), [f"AOSA lambda (alpha_res) = {lam:.4f}"]
    return ("rddm-sm-res", "rddm-sm-n"), [
        "one network: the file does not say whether it predicts residuals or noise; "
        "choose --methods rddm-sm-res or rddm-sm-n"
    ]


def _rddm_schedule_options(buffers: dict[str, Tensor], notes: list[str]) -> dict[str, Any]:
    """timesteps, sum_scale and the schedule from the ResidualDiffusion buffers, when stored."""
    from baselines.schedules import rddm_schedule

    if not all(name in buffers for name in _RDDM_BUFFERS):
        notes.append("no schedule buffers: the schedule comes from the method's defaults")
        return {}
    alpha_bar = buffers["alphas_cumsum"].double()
    beta2_bar = buffers["betas2_cumsum"].double()
    timesteps = alpha_bar.numel()
    candidates = {
        "power": {"sum_scale": round(float(beta2_bar[-1]), 6)},
        "power (linspace)": {
            "sum_scale": round(float(beta2_bar[-1]), 6),
            "discretisation": "linspace",
        },
        "ddim-linear": {"schedule": "ddim-linear"},
    }
    for label, options in candidates.items():
        try:
            built = rddm_schedule(timesteps, **options)
        except ValueError:
            continue
        close = torch.allclose(built.alpha_bar, alpha_bar, atol=1e-5) and torch.allclose(
            built.beta2_bar, beta2_bar, atol=1e-5
        )
        if close:
            notes.append(f"schedule buffers match bench's {label} schedule (T={timesteps})")
            return {"timesteps": timesteps, **options}
    notes.append(
        f"schedule buffers (T={timesteps}) match no bench schedule: pass the schedule options"
    )
    return {"timesteps": timesteps}


_RESFUSION_SCHEDULES = {"LinearPro": "linear", "CosinePro": "cosine"}
_RESFUSION_LOSSES = {"L2": "l2", "L1": "smooth-l1"}


def _read_resfusion(path: Path, state: dict) -> Checkpoint:
    unet = _strip(state["state_dict"], "denoising_module.")
    if "init_conv.weight" not in unet:
        raise CheckpointError(
            f"{path} is a Resfusion checkpoint whose denoising module is not the RDDM UNet "
            "(DiT and the DDIM UNet are not supported); bench loads RDDM_Unet checkpoints"
        )
    tensors = _translate(unet, _UNET_RULES)
    options, in_channels, _ = _infer_unet(tensors)
    notes = ["Lightning saves one weight set: with the EMA callback, the -EMA.ckpt file holds the EMA"]  # fmt: skip
    # Resfusion feeds the mask as a two-channel one-hot
    options |= _conditioning(in_channels, 2 * IMAGE_CHANNELS + 2)
    hparams = state.get("hyper_parameters") or {}
    if "T" in hparams:
        options["timesteps"] = int(hparams["T"])
    if hparams.get("noise_schedule") in _RESFUSION_SCHEDULES:
        options["schedule"] = _RESFUSION_SCHEDULES[hparams["noise_schedule"]]
    if hparams.get("mode") in ("epsilon", "sample", "residual"):
        options["prediction"] = hparams["mode"]
    if hparams.get("loss_type") in _RESFUSION_LOSSES:
        options["loss"] = _RESFUSION_LOSSES[hparams["loss_type"]]
    if not hparams:
        notes.append("no hyper_parameters: T, schedule and mode come from the method's defaults")
    states = {"online": {"denoiser": tensors}}
    return Checkpoint(path, "resfusion-lightning", ("resfusion",), options, tuple(notes), states)


#: Janspiry's released SR3 configurations (config/sr_sr3_*.json), by what the weights show:
#: (channel multipliers, res blocks per level, attention levels) -> (config, norm_groups).
#: GroupNorm's group count leaves no trace in the weights; these configs state it (or leave
#: the code's default, 32).
_SR3_CONFIGS = {
    ((1, 2, 4, 8, 8), 2, (3,)): ("sr_sr3_16_128", 32),
    ((1, 2, 4, 8, 16), 1, ()): ("sr_sr3_64_512", 16),
}


def _read_sr3(path: Path, state: dict) -> Checkpoint:
    tensors = _translate(_strip(state, "denoise_fn."), _SR3_RULES)
    options = _infer_sr3(tensors)
    structure = (options["unet_mults"], options["res_blocks"], options["attn_levels"])
    if structure in _SR3_CONFIGS:
        config, options["norm_groups"] = _SR3_CONFIGS[structure]
        groups = (
            f"the weights have the structure of the official {config} configuration "
            f"(multipliers {','.join(map(str, structure[0]))}, {structure[1]} res block(s) per "
            f"level, attention at levels {list(structure[2])}): norm_groups = "
            f"{options['norm_groups']}, as that configuration sets"
        )
    else:
        options["norm_groups"] = 32
        groups = (
            "norm_groups is not stored in the weights and the structure is no released "
            "configuration's: 32, the official default (pass -o norm_groups=N if your config "
            "set another)"
        )
    notes = [groups, "attention levels come from the weights; attn_res is stated for --size"]
    betas = state.get("betas")
    if betas is not None:
        betas = betas.double()
        linear = torch.linspace(float(betas[0]), float(betas[-1]), betas.numel(), dtype=torch.float64)  # fmt: skip
        if torch.allclose(betas, linear, rtol=1e-5, atol=1e-9):
            options |= {
                "timesteps": betas.numel(),
                "beta_start": float(betas[0]),
                "beta_end": float(betas[-1]),
            }
        else:
            notes.append("the stored betas are not a linear schedule: pass the schedule options")
    states = {"online": {"denoiser": tensors}}
    return Checkpoint(path, "sr3-generator", ("sr3",), options, tuple(notes), states)


def _infer_unet(tensors: dict[str, Tensor]) -> tuple[dict[str, Any], int, int | None]:
    """Width and multipliers of an RDDM UNet from bench-named tensors (build options), and
    its input and output channel counts."""
    stem = tensors["stem.weight"]
    dim = stem.shape[0]
    mults = []
    level = 0
    while f"encoder.{level}.3.weight" in tensors:
        mults.append(tensors[f"encoder.{level}.3.weight"].shape[0] // dim)
        level += 1
    final = tensors.get("decoder.final_conv.weight")
    options = {"unet_dim": dim, "unet_mults": tuple(mults)}
    return options, stem.shape[1], None if final is None else final.shape[0]


def _conditioning(in_channels: int, with_mask: int) -> dict[str, Any]:
    """What the input channels say: x_t alone (generation), or x_t and the degraded image,
    with a mask when there are ``with_mask`` channels."""
    if in_channels == IMAGE_CHANNELS:
        return {"kind": "generation"}
    return {"mask_channels": 1 if in_channels == with_mask else 0}


def _infer_sr3(tensors: dict[str, Tensor]) -> dict[str, Any]:
    """SR3 width, multipliers, blocks per level and attention levels from bench-named tensors."""
    inner = tensors["noise_mlp.1.weight"].shape[1]
    in_channels = tensors["downs.0.weight"].shape[1]
    levels: list[list[int]] = [[]]
    attn_levels = set()
    index = 1
    while True:
        if f"downs.{index}.noise_proj.weight" in tensors:
            levels[-1].append(tensors[f"downs.{index}.noise_proj.weight"].shape[0])
            if f"downs.{index}.attn.qkv.weight" in tensors:
                attn_levels.add(len(levels) - 1)
        elif f"downs.{index}.weight" in tensors:
            levels.append([])
        else:
            break
        index += 1
    return {
        "unet_dim": inner,
        "unet_mults": tuple(widths[0] // inner for widths in levels),
        "res_blocks": len(levels[0]),
        "mask_channels": in_channels - 2 * IMAGE_CHANNELS,
        "attn_levels": tuple(sorted(attn_levels)),
    }


# -- loading --------------------------------------------------------------------------------

#: registry name -> {bench network: slot} for the official RDDM trainer files
_RDDM_SLOTS = {
    "rddm": {"res": "unet0", "noise": "unet1"},
    "rddm-shared-encoder": {"joint": "shared"},
    "rddm-1net": {"joint": "unet0"},
    "rddm-sm-res": {"res": "unet0"},
    "rddm-sm-n": {"noise": "unet0"},
    "rddm-aosa": {"aosa": "unet0"},
}


def check_weight_set(weight_set: str) -> None:
    if weight_set not in WEIGHT_SETS:
        raise CheckpointError(
            f"--weight-set '{weight_set}' is not known; valid: {', '.join(WEIGHT_SETS)}"
        )


def check_method(checkpoint: Checkpoint, name: str) -> None:
    """Refuse a method the checkpoint's networks cannot be (before anything is built)."""
    if name not in checkpoint.candidates:
        raise CheckpointError(
            f"{checkpoint.path} is a {checkpoint.format} checkpoint of "
            f"{' or '.join(checkpoint.candidates)}, not {name}; run it with --methods "
            f"{checkpoint.candidates[0]}"
        )


def load_weights(method: nn.Module, checkpoint: Checkpoint, weight_set: str = "ema") -> str:
    """Load ``checkpoint`` into the built ``method`` strictly; return the weight set used.

    ``weight_set="ema"`` takes the EMA weights when the file has them (the papers sample with
    them) and says so when it has only one set; ``"online"`` takes the raw weights."""
    check_weight_set(weight_set)
    name = getattr(method, "name", "")
    check_method(checkpoint, name)
    if weight_set not in checkpoint.states:
        if weight_set == "online":
            raise CheckpointError(f"{checkpoint.path} holds no online (raw) weights; use --weight-set ema")  # fmt: skip
        weight_set = checkpoint.weight_sets[0]
    states = checkpoint.states[weight_set]
    extras = checkpoint.extras.get(weight_set, {})
    if checkpoint.format == "bench":  # the whole method, its own tensors (AOSA's lambda) too
        full = {f"nets.{n}.{k}": v for n, tensors in states.items() for k, v in tensors.items()}
        _check_and_load(method, full | extras, checkpoint.path, f"method {name}")
        return weight_set
    networks = method.networks()
    for network, slot in _RDDM_SLOTS.get(name, {"denoiser": "denoiser"}).items():
        _check_and_load(networks[network], states[slot], checkpoint.path, f"network {network!r}")
    if "alpha_res" in extras and hasattr(method, "aosa_lambda"):
        with torch.no_grad():
            method.aosa_lambda.fill_(float(extras["alpha_res"].flatten()[0]))
    return weight_set


def _check_and_load(module: nn.Module, state: dict[str, Tensor], path: Path, where: str) -> None:
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({', '.join(missing[:5])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:5])})")
        raise CheckpointError(
            f"{path}: {where} does not match the method as built: {'; '.join(parts)}; "
            "`bench checkpoint inspect` shows what the file holds"
        )
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{path}: tensor {key} of {where} has shape {tuple(state[key].shape)} in the "
                f"checkpoint but {tuple(tensor.shape)} in the method as built; build it with "
                "the checkpoint's configuration (`bench checkpoint inspect` shows it)"
            )
    module.load_state_dict(state, strict=True)


def build_options(checkpoint: Checkpoint, image_size: int | None = None) -> dict[str, Any]:
    """``build_method`` options for ``checkpoint``'s configuration."""
    options = dict(checkpoint.options)
    attn_levels = options.pop("attn_levels", None)
    if attn_levels is not None:  # SR3: attention wherever the weights have it, at this size
        size = image_size or 256
        options["attn_res"] = tuple(size >> level for level in attn_levels)
        options["image_size"] = size
    return options


def load_method(
    path: str | Path,
    method: str | None = None,
    weight_set: str = "ema",
    trust: bool = False,
    **options: Any,
) -> nn.Module:
    """Build the method ``path`` holds (its configuration inferred, ``options`` winning) and
    load its weights: ``bench.checkpoints.load_method("model-80.pt")``. ``trust=True`` reads a
    file that holds more than weights by unpickling it fully (it can run code)."""
    from baselines import build_method

    checkpoint = read_checkpoint(path, trust)
    name = method or checkpoint.method
    if name is None:
        raise CheckpointError(
            f"{checkpoint.path} could be {' or '.join(checkpoint.candidates)}; "
            f"pass method={checkpoint.candidates[0]!r} (or another) to choose"
        )
    check_method(checkpoint, name)
    built = build_method(name, **(build_options(checkpoint, options.get("image_size")) | options))
    load_weights(built, checkpoint, weight_set)
    return built.eval()
