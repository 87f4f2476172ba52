"""Headquarters' own resources, which a pushed reference may name as they are.

A clinic pulls some types from headquarters (docs/pull.md): a reference to one of those
resources keeps its id, so that headquarters can group its statistics by it. The clinic may
hold resources of the same types of its own, though, and their ids are the clinic's words (a
home visit's Location named after the patient's street): only an id headquarters itself
issued, and offers to this clinic, is sent. The engine reads which ones through ``Shared``;
who learns them (the App asks headquarters, app/sync/shared_ids.py) is not its business.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Shared:
    """The pulled types, and per type the ids of headquarters' own resources (a live view:
    the mapping may grow and shrink between two walks)."""

    types: frozenset[str] = frozenset()
    ids: Mapping[str, Set[str]] = field(default_factory=dict)

    def holds(self, resource_type: str, resource_id: object) -> bool:
        """Whether ``resource_type/resource_id`` is one of headquarters' own resources."""
        return type(resource_id) is str and resource_id in self.ids.get(resource_type, ())


NONE_SHARED = Shared()
