"""`bench checkpoint`: recognise a checkpoint (bench's or the official code's) and say what
it holds: format, method, configuration inferred from its tensors, weight sets, notes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench import console
from bench.options import ConfigOption, JsonOption, QuietOption, setup

app = typer.Typer(
    help="Checkpoints from bench or the official RDDM, Resfusion and SR3 code.",
    no_args_is_help=True,
)

EXAMPLE = (
    "Examples: [bold]bench checkpoint inspect results/model-80.pt[/bold] · "
    "[bold]bench checkpoint inspect epoch=4999.ckpt --json[/bold] · then "
    "[bold]bench run istd --methods rddm --checkpoint results/model-80.pt[/bold]"
)


@app.command(epilog=EXAMPLE)
def inspect(
    path: Annotated[Path, typer.Argument(help="A .pt, .pth or .ckpt file.", dir_okay=False)],
    config_path: ConfigOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Recognise PATH by its keys and shapes; print the method and configuration it fits."""
    from bench.checkpoints import read_checkpoint

    setup(config_path, quiet, as_json)
    record = read_checkpoint(path).describe()
    rows = [
        ("format", record["format"]),
        ("method", record["method"] or f"one of {', '.join(record['candidates'])}"),
        ("weights", ", ".join(record["weights"])),
        *((f"option {k}", v) for k, v in record["options"].items()),
        *(
            (f"network {slot}", f"{net['params'] / 1e6:.3f}M params, {net['tensors']} tensors")
            for slot, net in record["networks"].items()
        ),
        *(("note", note) for note in record["notes"]),
    ]
    console.emit(record, console.table(str(path), ["item", "value"], rows))
