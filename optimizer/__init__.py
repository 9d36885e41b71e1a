"""cascade optimizer: scenarios, the liquidation-cascade simulator, the search, reports and the CLI.

The package's top level imports nothing heavy (the names below load on first use), so the
``cascade`` entry point can set up its signal handling before numpy and the rest are imported.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["InputError", "__version__", "data_dir", "load_adapter"]


def __getattr__(name: str) -> Any:
    if name == "InputError":
        from .errors import InputError

        return InputError
    if name in ("data_dir", "load_adapter"):
        from . import snapshots

        return getattr(snapshots, name)
    raise AttributeError(f"module 'optimizer' has no attribute {name!r}")
