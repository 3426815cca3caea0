"""Per-task paper settings (docs/methods.md §1.7, §2, §3, §6 / Table 4).

``paper_settings(name, task)`` returns the sampling steps, training iterations, learning rate
and the ``build_method`` options the papers used. A value the sources do not state is left
out (with the reason under "notes"); a task a method was never run on raises ValueError.
"""

from typing import Any

TASKS = (
    "shadow-removal",
    "low-light",
    "deraining",
    "deblurring",
    "generation",
    "inpainting",
    "translation",
)

# Table 4 and §6: beta_bar_T^2, steps, loss, objective, iterations
_RDDM: dict[str, dict[str, Any]] = {
    "shadow-removal": {"sum_scale": 0.01, "steps": 5, "objective": "res_noise", "it": 80_000},
    "low-light": {"sum_scale": 1.0, "steps": 2, "objective": "res", "it": 80_000},
    "deblurring": {"sum_scale": 0.01, "steps": 2, "objective": "res_noise", "it": 400_000},
    "deraining": {"sum_scale": 1.0, "steps": 5, "objective": "res_noise", "it": 120_000},
    "generation": {"sum_scale": 1.0, "steps": 10, "objective": "noise", "it": 100_000},
    "inpainting": {"sum_scale": 1.0, "steps": 10, "objective": "res_noise", "it": 100_000},
    "translation": {"sum_scale": 1.0, "steps": 10, "objective": "res_noise", "it": 100_000},
}

# registry name -> the options that name fixes (paper_settings leaves them out)
_RDDM_FIXED_KEYS = {
    "rddm": {"network"},
    "rddm-sm-res": {"objective"},
    "rddm-sm-n": {"objective"},
    "rddm-1net": {"objective", "network"},
    "rddm-shared-encoder": {"objective", "network"},
    "rddm-aosa": {"objective"},
}


def _rddm(name: str, task: str) -> dict[str, Any]:
    row = _RDDM[task]
    restoration = task in ("shadow-removal", "low-light", "deraining", "deblurring")
    options: dict[str, Any] = {"sum_scale": row["sum_scale"], "objective": row["objective"]}
    if restoration:
        options["loss"] = "l1"
        lr = 8e-5  # Adam, both UNets jointly, effective batch 2 in the template
        notes = ["restoration: Adam(8e-5, betas (0.9, 0.99)), batch 1 x 2 accumulation, 256^2"]
    else:
        options["loss"] = "l2"
        options["kind"] = "generation" if task == "generation" else "restoration"
        lr = 2e-4  # RAdam, one optimizer per UNet
        notes = ["RAdam(2e-4), one optimizer per UNet"]
        if task in ("generation", "translation"):
            options["schedule"] = "ddim-linear"  # eq. 17
        if task in ("inpainting", "translation"):
            options["condition"] = "none"  # exps 4/5 feed x_t only
    for key in _RDDM_FIXED_KEYS[name]:
        options.pop(key, None)
    if name == "rddm-aosa":
        notes.append("AOSA iterations are the objective-selection phase plus the paper's budget")
    return {
        "steps": row["steps"],
        "iterations": row["it"],
        "lr": lr,
        "options": options,
        "notes": notes,
    }


def _resfusion(task: str) -> dict[str, Any]:
    # lr = 8.8e-4 x effective batch / 256; ISTD 4x8, LOL 16x2, Raindrop 4x8 -> 32 each
    table = {"shadow-removal": 32, "low-light": 32, "deraining": 32}
    if task == "generation":  # CIFAR-10: T = 273 -> T' = 100, DDPM CIFAR UNet, x^_0 = 0
        return {
            "steps": 100,
            "lr": 4e-4,
            "epochs": 3000,
            "options": {"timesteps": 273, "network": "ddpm-cifar", "kind": "generation"},
            "notes": [
                "iterations not stated (3000 epochs, batch 128)",
                "the official script scales its base lr 4e-4 by batch/256 (128/256 -> 2e-4, "
                "equal to its min_lr); the 4e-4 here is the base value",
                "the DDPM CIFAR UNet is 2 x unet_dim wide (128 at the paper profile's 64) "
                "with mults (1, 2, 2, 2); the profile's unet_mults do not apply to it",
            ],
        }
    if task not in table:
        raise ValueError(f"the Resfusion paper reports no {task} experiment")
    return {
        "steps": 5,
        "lr": 8.8e-4 * table[task] / 256,
        "epochs": 5000,
        "options": {"timesteps": 12, "loss": "l2"},
        "notes": ["iterations not stated: 5000 epochs, AdamW (amsgrad), cosine decay to 3e-5"],
    }


def _sr3(task: str) -> dict[str, Any]:
    if task not in ("shadow-removal", "low-light", "deraining", "deblurring"):
        raise ValueError(f"SR3 is RDDM's restoration baseline; the sources give no {task} run")
    return {
        "steps": 100,
        "lr": 1e-4,
        "options": {"loss": "l1"},
        "notes": ["iterations not stated: the sources do not confirm Table 11's 80k/500k/1000k"],
    }


def paper_settings(name: str, task: str) -> dict[str, Any]:
    """Keys: "steps", "iterations" (when stated), "lr", "options", "notes"."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    if name in _RDDM_FIXED_KEYS:
        return _rddm(name, task)
    if name == "resfusion":
        return _resfusion(task)
    if name == "sr3":
        return _sr3(task)
    if name == "ddim":
        if task != "generation":
            raise ValueError("ddim is an unconditional generator; only task 'generation' applies")
        return {
            "steps": 10,
            "options": {"spacing": "leading"},
            "notes": [
                "Table 3(a) uses a pretrained google/ddpm-celebahq-256 at 5-100 steps; "
                "training iterations and lr are not stated"
            ],
        }
    return _declared(name, task)


def _declared(name: str, task: str) -> dict[str, Any]:
    """The settings a third-party method registered with (baselines.registry.register)."""
    from baselines.registry import declared_settings

    declared = declared_settings(name)
    if declared is None:
        raise KeyError(f"no settings for {name!r}: register it with settings={{task: {{...}}}}")
    if task not in declared:
        raise ValueError(f"{name} declares settings for {', '.join(sorted(declared))}, not {task}")
    settings = dict(declared[task])
    if "steps" not in settings:
        raise ValueError(f"{name}'s settings for {task} give no 'steps'")
    return {"options": {}, "notes": [], **settings}
