"""nox sessions: tests (default), lint, bench (pytest-benchmark suite), demo (embedded default),
readme (the embedded default measured into README.md).

Every session installs torch through constraints-cpu.txt, so a CPU machine never pulls
CUDA builds. On a GPU machine, install your torch build first and run pytest directly.
"""

import datetime
import re
import tempfile
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = False

CONSTRAINTS = ("-c", "constraints-cpu.txt")


def _install(session: nox.Session, extras: str = "test") -> None:
    session.install(*CONSTRAINTS, "-e", f".[{extras}]")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (benchmarks are skipped; see the `bench` session)."""
    _install(session)
    session.run("pytest", "--benchmark-skip", *session.posargs)


@nox.session
def cluster(session: nox.Session) -> None:
    """The tests against a real single-node Slurm cluster and an MLflow server on PostgreSQL,
    both started by scripts/local-cluster (root; installs Debian packages if missing)."""
    _install(session, "test,cluster")
    session.run("pytest", "-m", "cluster", "tests/cluster", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """The pytest-benchmark suite: saves results and compares with the last saved run."""
    _install(session)
    args = ["pytest", "tests/benchmarks", "--benchmark-only", "--benchmark-autosave"]
    args += ["--benchmark-compare", "--benchmark-compare-fail=median:25%"]
    session.run(*args, *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The embedded default main job: `bench run` with no arguments, offline on CPU."""
    _install(session, extras="test")
    session.run("bench", "run", *session.posargs)


@nox.session(venv_backend="none")
def gpu(session: nox.Session) -> None:
    """The GPU check: RDDM, Resfusion and SR3 at 256x256, fp32 / bf16 / compiled, batch 1 and
    16, and RDDM's training rate (`bench profile --suite`). Runs in the current environment,
    whose CUDA torch you installed; prints one table and, with --json, one document."""
    session.run("bench", "profile", "--suite", "--device", "cuda", *session.posargs)


#: the README block `nox -s readme` rewrites
README_START = "<!-- embedded-default:start -->"
README_END = "<!-- embedded-default:end -->"

#: runs `bench run` in the current folder, then prints its peak memory (kB) as the last line
_MEASURE = (
    "import resource, subprocess, sys, time; started = time.monotonic(); "
    "done = subprocess.run(['bench', 'run'], capture_output=True, text=True); "
    "sys.stdout.write(done.stdout + done.stderr); "
    "print(f'exit {done.returncode} seconds {time.monotonic() - started:.0f} peak_kb '"
    "f'{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}')"
)


@nox.session
def readme(session: nox.Session) -> None:
    """Run the embedded default in an empty folder and write its table, the CPU, the date, the
    wall time and the peak memory into README.md's marked block: the figures there are
    measured, never edited by hand."""
    _install(session)
    cpu = session.run("python", "-c", "from bench.envinfo import cpu_model; print(cpu_model())",
                      silent=True).strip()  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-readme-") as folder, session.chdir(folder):
        output = session.run("python", "-c", _MEASURE, silent=True, env={"COLUMNS": "250"})
    summary = re.search(r"exit (\d+) seconds (\d+) peak_kb (\d+)\s*$", output)
    if summary is None or summary.group(1) != "0":
        session.error(f"bench run failed; its output:\n{output}")
    kept = [
        line
        for line in output.splitlines()
        if line.startswith(
            (
                "│",
                "synth-shadow, smoke profile",
                "wall time",
                "warning: sr3",
                "warning: rddm",
                "warning: resfusion",
            )
        )  # fmt: skip
    ]
    header = next(line for line in output.splitlines() if line.startswith("┃ method"))
    kept.insert(1, header.replace("┃", "│"))
    minutes, seconds = divmod(int(summary.group(2)), 60)
    block = "\n".join([
        README_START,
        f"Measured by `nox -s readme` on {datetime.date.today():%Y-%m-%d}: the first run in an "
        f"empty folder, on {cpu}, {minutes} min {seconds} s for the whole command, "
        f"{int(summary.group(3)) / 1e6:.2f} GB peak memory.",
        "",
        "```",
        *kept,
        "```",
        README_END,
    ])  # fmt: skip
    path = Path(__file__).parent / "README.md"
    text = path.read_text()
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    path.write_text(text[:start] + block + text[end:])
    session.log(f"README.md: the embedded default's block rewritten ({cpu})")
