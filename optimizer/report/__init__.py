"""Reports: markdown a steward can paste into a forum post, PNG figures, a reproducibility manifest.

The layer sits above the use cases (simulation, comparison, proposal analysis, search) and below the
CLI: it renders the JSON a result produces (``result.to_json()``), never simulates. Modules:

* :mod:`.markdown` -- ``report.md`` from a result's JSON (tables iterate the metric declarations);
* :mod:`.figures` -- matplotlib (Agg) figures from the same JSON, saved as deterministic PNGs;
* :mod:`.manifest` -- package version, git commit, command line, input hashes, seed, paths, engine;
* :mod:`.writer` -- the report folder written atomically;
* :mod:`.terminal` -- the short summary the CLI prints.
"""

from .bundle import build_files, write_report

__all__ = ["build_files", "write_report"]
