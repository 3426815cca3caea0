"""nox sessions: tests (default), lint, bench (pytest-benchmark suite), demo (embedded default).

Every session installs torch through constraints-cpu.txt, so a CPU machine never pulls
CUDA builds. On a GPU machine, install your torch build first and run pytest directly.
"""

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
