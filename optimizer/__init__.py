"""cascade optimizer: scenarios, the liquidation-cascade simulator, the search, reports and the CLI."""

from .errors import InputError
from .snapshots import data_dir, load_adapter

__version__ = "0.1.0"
__all__ = ["InputError", "__version__", "data_dir", "load_adapter"]
