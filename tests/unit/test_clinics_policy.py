"""The clinics' AccessPolicy as shipped (manifest/policies/aidbox-sync-clinics.yaml): facts of
its text that no emulated request can show."""

from __future__ import annotations

from app.aidbox.manifest import load_manifest
from app.settings import Role


def _query() -> str:
    return load_manifest(Role.GLOBAL).policies["aidbox-sync-clinics"]["sql"]["query"]


def test_the_query_holds_no_question_mark() -> None:
    # Aidbox binds {{...}} with JDBC placeholders (tutorials/security-access-control-tutorials/
    # debug-access-control.md shows `?` for each bound value): a `?` of the query's own, a
    # jsonb operator or a regex, would be taken for one. The emulator binds $n and cannot tell.
    assert "?" not in _query()
