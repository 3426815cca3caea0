"""Datasets: manifests, fetch and verify, offline synthetic suites and torch loaders."""

from bench.registry import Registry

#: name -> dataset description; manifests in datasets/ and the synthetic suites register here.
DATASETS: Registry = Registry("dataset")
