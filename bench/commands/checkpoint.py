"""`bench checkpoint`: recognise a checkpoint (bench's or the official code's) and say what
it holds: format, method, configuration inferred from its tensors, weight sets, notes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench import console
from bench.options import ConfigOption, JsonOption, QuietOption, examples, setup

app = typer.Typer(
    help="Checkpoints from bench or the official RDDM, Resfusion and SR3 code.",
    no_args_is_help=True,
)

EXAMPLE = examples(
    "bench checkpoint inspect results/model-80.pt",
    "bench checkpoint inspect epoch=4999.ckpt --json",
    "bench run istd --methods rddm --checkpoint results/model-80.pt   # then run it",
)


@app.command(epilog=EXAMPLE)
def inspect(
    path: Annotated[Path, typer.Argument(help="A .pt, .pth or .ckpt file.", dir_okay=False)],
    trust_checkpoint: Annotated[
        bool,
        typer.Option(
            "--trust-checkpoint",
            help="Unpickle PATH fully, for a file from a source you trust that holds more "
            "than weights (unpickling can run any code the file names); without it the file "
            "is read weights-only.",
        ),
    ] = False,
    config_path: ConfigOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Recognise PATH by its keys and shapes; print the method and configuration it fits.
    PATH is read weights-only: nothing in it runs."""
    from bench.checkpoints import read_checkpoint

    setup(config_path, quiet, as_json)
    record = read_checkpoint(path, trust_checkpoint).describe()
    rows = [
        ("format", record["format"]),
        ("method", record["method"] or f"one of {', '.join(record['candidates'])}"),
        ("weight sets", ", ".join(record["weight_sets"])),
        *((f"trained {k}", v) for k, v in record["stored"].items()),
        *((f"option {k}", v) for k, v in record["options"].items()),
        *(
            (f"network {slot}", f"{net['params'] / 1e6:.3f}M params, {net['tensors']} tensors")
            for slot, net in record["networks"].items()
        ),
        *(("note", note) for note in record["notes"]),
    ]
    console.emit(record, console.table(str(path), ["item", "value"], rows))
