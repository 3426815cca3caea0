"""Scoring for the protocol audit: the paper's protocol and one protocol per convention of
its task (bench/conventions.py), evaluated on the same images; bench/audit.py turns their
summaries into the audit's rows (docs/protocols.md, "The protocol audit")."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench.audit import AuditRow, audit_rows, auditable
from bench.conventions import HEADLINES, base_of, conventions_for
from bench.errors import UsageError, choices
from bench.metrics.result import MetricResult
from bench.protocols.base import Protocol, get_protocol


def audit_protocols(
    base: str, weights_dir: Path, device: str = "cpu", options: Mapping[str, Any] | None = None
) -> dict[str, Protocol]:
    """Protocol name -> protocol: the paper's (``base``) and every convention that scores
    differently (the others read values of the paper's result); ``options`` set them all as
    the data sets them (a super-resolution scale)."""
    if not auditable(base):
        raise UsageError(f"protocol '{base}' has no audit; audited protocols: {choices(HEADLINES)}")
    options = dict(options or {})
    protocols = {base: get_protocol(base, weights_dir, device, **options)}
    for convention in conventions_for(base):
        if convention.is_protocol:
            protocol = get_protocol(convention.name, weights_dir, device, **options)
            if convention.recomputes:  # the rest is the paper's result (audit_rows)
                protocol.groups = frozenset(convention.recomputes)
            protocols[convention.name] = protocol
    return protocols


def audit_summaries(
    protocol: str,
    evaluate: Callable[[Protocol], MetricResult],
    weights_dir: Path,
    device: str = "cpu",
    known: MetricResult | None = None,
    options: Mapping[str, Any] | None = None,
) -> tuple[dict[str, dict[str, float]], str]:
    """Each audited protocol's summary of one set of images (``evaluate(p)`` scores them
    under protocol ``p``; ``known``: the result of ``protocol`` itself, reused), and the
    paper table of the task's protocol."""
    base = base_of(protocol)
    protocols = audit_protocols(base, weights_dir, device, options)
    summaries = {
        name: (known if known is not None and name == protocol else evaluate(candidate)).summary
        for name, candidate in protocols.items()
    }
    return summaries, protocols[base].table


def audit_images(
    protocol: str,
    evaluate: Callable[[Protocol], MetricResult],
    weights_dir: Path,
    device: str = "cpu",
    known: MetricResult | None = None,
) -> list[AuditRow]:
    """The audit of one set of images under ``protocol``'s task (:func:`audit_summaries`)."""
    summaries, table = audit_summaries(protocol, evaluate, weights_dir, device, known)
    return audit_rows(base_of(protocol), summaries, table)
