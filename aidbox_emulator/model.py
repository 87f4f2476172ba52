"""The emulator's own request/response values, shared by HTTP handlers and bundle entries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from multidict import MultiDict, MultiDictProxy


@dataclass(frozen=True)
class Req:
    """One interaction: an HTTP request or a bundle entry.

    `path` is relative to the API root (no leading `/fhir`); `fhir` tells which format the body
    and the answer use. Bodies are parsed JSON; `headers` has lower-case names.
    `wire_body` is the body as sent (before any FHIR → Aidbox conversion or `urn:uuid`
    resolution): what AccessPolicies see as `resource` and `body`.
    """

    method: str
    path: str
    query: MultiDictProxy[str] | MultiDict[str]
    body: Any
    headers: Mapping[str, str]
    fhir: bool = False
    query_string: str = ""
    scheme: str = "http"
    remote_addr: str | None = None
    wire_body: Any = None

    @property
    def segments(self) -> list[str]:
        """Non-empty path segments."""
        return [s for s in self.path.split("/") if s]

    def with_body(self, body: Any) -> Req:
        """A copy with another body."""
        return replace(self, body=body)


@dataclass
class Res:
    """An answer: status, JSON body (None = no body), extra headers; or a raw pass-through."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str | None = None
