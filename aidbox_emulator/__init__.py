"""Aidbox emulator: the subset of Aidbox's HTTP API that aidbox-sync uses, on real PostgreSQL.

Test and demo infrastructure; the product code (`app/`) never imports it.
"""

from .faults import Faults, Hold
from .server import Emulator

__all__ = ["Emulator", "Faults", "Hold"]
