"""Reading torch files without running code from them.

A ``.pt``/``.ckpt`` file is a pickle, and a pickle can name any Python callable to run while
it is read. Checkpoints come from drive links and mirrors, and results folders on a cluster
are shared between users, so no file bench reads is trusted by default: every load goes
through torch's weights-only unpickler, which builds tensors, containers and primitive values
and refuses any other global.

What the official checkpoint formats hold beyond those is allow-listed below by name, each
entry with the format that needs it. An entry maps the name written in the file to a
stand-in defined here (or numpy's own function), so the package that wrote the name (Lightning,
numpy 1.x) need not be installed. Anything else refuses the file with one line naming the
first disallowed global and the trust switch, ``--trust-checkpoint`` (``trust=True``), which
unpickles fully after a warning.
"""

from __future__ import annotations

import _compat_pickle
import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import console
from bench.errors import UsageError

TRUST_OPTION = "--trust-checkpoint"


class UntrustedFileError(UsageError):
    """A file that the weights-only unpickler refuses; the message names the global and the
    trust switch."""


def _numpy_dtype_classes() -> list[tuple[Callable, str]]:
    """numpy's dtype classes (``numpy.dtypes.Float64DType``, ...): unpickling a dtype builds
    an instance of one, and the unpickler checks its type."""
    names = ("Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64")
    names += ("Float16", "Float32", "Float64")
    return [(getattr(np.dtypes, f"{n}DType"), f"numpy.dtypes.{n}DType") for n in names]


#: (what the file names, the stand-in it is read as); each group says which format needs it
ALLOWED_GLOBALS: list[tuple[Callable, str]] = [
    # Resfusion's Lightning checkpoints: ``hyper_parameters`` is an AttributeDict (a dict with
    # attribute access), named after the package that wrote it (pytorch_lightning 1.x,
    # lightning_fabric 2.x as Resfusion's environment pins, or the unified ``lightning``
    # package); read as the plain dict it is (torch fills only exact dicts)
    (dict, "pytorch_lightning.utilities.parsing.AttributeDict"),
    (dict, "lightning_fabric.utilities.data.AttributeDict"),
    (dict, "lightning.fabric.utilities.data.AttributeDict"),
    # numpy scalars and arrays: Lightning's callback and loop states and the official trainers'
    # bookkeeping may hold numpy values (a monitored score, a step count); bench files written
    # before this format stored numpy's random state. Both numpy 1.x (``numpy.core``) and 2.x
    # (``numpy._core``) names, read by the installed numpy's functions.
    (np._core.multiarray.scalar, "numpy.core.multiarray.scalar"),
    (np._core.multiarray.scalar, "numpy._core.multiarray.scalar"),
    (np._core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
    (np._core.multiarray._reconstruct, "numpy._core.multiarray._reconstruct"),
    (np.ndarray, "numpy.ndarray"),
    (np.dtype, "numpy.dtype"),
    *_numpy_dtype_classes(),
]
# Optimizer and AMP-scaler states (RDDM's ``opt``/``scaler``, Lightning's ``optimizer_states``),
# ema-pytorch's ``step``/``initted`` and Lightning's EMA callback state (``cur_step``,
# ``ema_weights``), version strings and bench's own checkpoints are tensors, containers and
# primitive values: torch's unpickler reads them with no entry here.

_GLOBAL = re.compile(r"GLOBAL ([\w.]+\w)")


def load_torch_file(path: Path, trust: bool = False, map_location: Any = "cpu") -> Any:
    """``torch.load`` of ``path`` through the weights-only unpickler and ``ALLOWED_GLOBALS``;
    with ``trust``, a full unpickle after a warning. A refused file raises
    :class:`UntrustedFileError` naming the first disallowed global and the trust switch."""
    if trust:
        console.warn(
            f"{path}: unpickling fully ({TRUST_OPTION}): this runs any code the file names; "
            "use it only for files from a source you trust"
        )
        return torch.load(path, map_location=map_location, weights_only=False)
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS), warnings.catch_warnings():
            # torch warns that files of pickle protocol > 2 may hold what it cannot read;
            # what it cannot read is refused below with its name
            warnings.filterwarnings("ignore", "Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # named from the file itself: torch's message may name the global otherwise
        found = _first_disallowed(path) or next(iter(_GLOBAL.findall(str(error))), None)
        raise UntrustedFileError(_refusal(path, found, str(error))) from None


def check_torch_file(path: Path, trust: bool = False) -> None:
    """Refuse ``path`` up front, before any work, when it names a global that
    :func:`load_torch_file` would refuse: a static scan of its pickle that runs nothing and
    reads no tensor. Files of torch's legacy (non-zip) format are left to the load itself."""
    if trust:
        return
    first = _first_disallowed(path)
    if first is not None:
        raise UntrustedFileError(_refusal(path, first))


def _first_disallowed(path: Path) -> str | None:
    """The first global, in file order, that the weights-only reader with ``ALLOWED_GLOBALS``
    would refuse; None when there is none or the file is not a zip-format torch file."""
    with torch.serialization.safe_globals(ALLOWED_GLOBALS):
        try:
            unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except Exception:  # the legacy format or not a torch file: the load says why
            return None
    if not unsafe:
        return None
    with zipfile.ZipFile(path) as archive:
        pickled = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        data = archive.read(pickled)
    strings: list[str] = []
    try:
        for opcode, argument, _ in pickletools.genops(data):
            if opcode.name == "GLOBAL":
                name = argument.replace(" ", ".")
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                name = ".".join(strings[-2:])
            else:
                if isinstance(argument, str):
                    strings.append(argument)
                continue
            if name in unsafe:
                return name
    except ValueError:  # a malformed stream: name any of them
        pass
    return sorted(unsafe)[0]


def _python3_name(name: str) -> str:
    """What Python 3 imports for a pickled name: protocol 2 writes Python 2 names for some
    modules (``subprocess.run`` as ``commands.run``), which unpickling maps back."""
    module, _, attribute = name.rpartition(".")
    if (module, attribute) in _compat_pickle.NAME_MAPPING:
        module, attribute = _compat_pickle.NAME_MAPPING[(module, attribute)]
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    python3 = f"{module}.{attribute}"
    return name if python3 == name else f"{python3} (written {name})"


def _refusal(path: Path, global_name: str | None, detail: str = "") -> str:
    if global_name is None:  # an opcode the unpickler does not allow: not a torch file of weights
        lines = [ln.strip() for ln in detail.splitlines() if "Unsupported" in ln]
        what = lines[0] if lines else "weights-only load failed"
        return (
            f"{path}: refused, it is not a torch file of weights ({what}); if you trust its "
            f"source, pass {TRUST_OPTION}"
        )
    return (
        f"{path}: refused, it needs the Python global {_python3_name(global_name)}, which a checkpoint of "
        f"weights does not need and which could run code when unpickled; if you trust the "
        f"file's source, pass {TRUST_OPTION}"
    )
