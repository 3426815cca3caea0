"""The runner: a grid of cells (dataset x method x seed), each trained or loaded,
sampled, scored, profiled and tracked. :func:`bench.runner.execute.run_cell` is the one
pure function an executor calls per cell.
"""
