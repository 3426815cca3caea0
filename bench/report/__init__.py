"""Reports: the papers' published numbers as data (``bench.report.published``)."""
