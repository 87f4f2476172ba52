"""One rule of a profile bound to its method and parameters, ready for the rule tree."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date
from typing import Any, Literal

from app.anonymize import methods
from app.anonymize.profile import MethodSpec
from app.anonymize.pseudonym import PseudonymKey
from app.anonymize.tree import CompiledRule, Leaf

LAST = sys.maxsize  # the index of default actions: any rule wins over them


def _unchanged(value: Any, key: PseudonymKey, today: date) -> Any:
    """``methods.keep`` with the leaf signature; also the leaf of whole-element methods."""
    return methods.keep(value)


def _listed(spec: MethodSpec) -> frozenset[str]:
    """A rule's ``values``, casefolded: the states or countries a clinic adds to the lists."""
    return frozenset(value.casefold() for value in spec.values or ())


def _bind(spec: MethodSpec) -> tuple[Leaf, Callable[[Any], Any] | None]:
    """The per-primitive function and the whole-element function of a method."""
    values = frozenset(spec.values) if spec.values is not None else None
    extra = _listed(spec)
    match spec.method:
        case "keep" if values is None:
            return _unchanged, None
        case "keep":
            return lambda value, key, today: methods.keep(value, values), None
        case "redact":
            return _unchanged, methods.redact
        case "replace":
            constant = spec.value or ""
            return _unchanged, lambda value: methods.replace(value, constant)
        case "pseudonymize":
            return lambda value, key, today: methods.pseudonymize(value, key), None
        case "generalize-date":
            return lambda value, key, today: methods.generalize_date(value, today), None
        case "zip3":
            return lambda value, key, today: methods.zip3(value), None
        case "age":
            cap = spec.age_cap
            return lambda value, key, today: methods.age(value, cap, today), None
        case "state":
            return lambda value, key, today: methods.state(value, extra), None
        case "country":
            return lambda value, key, today: methods.country(value, extra), None
    raise AssertionError(spec.method)  # pragma: no cover - MethodName is a closed Literal


def compile_rule(spec: MethodSpec, index: int, label: str) -> CompiledRule:
    """Bind one rule's method and parameters."""
    leaf, whole = _bind(spec)
    keep = spec.method == "keep" and spec.values is None
    return CompiledRule(
        index=index,
        label=label,
        method=spec.method,
        leaf=leaf,
        whole=whole,
        rewrites_references=spec.method in ("keep", "pseudonymize"),
        takes_quantity=spec.method == "age",
        removes=spec.method == "redact",
        is_keep=keep,
        values=_listed(spec),
    )


def default_rule(action: Literal["keep", "redact"], resource_type: str) -> CompiledRule:
    """The action for elements no rule selects. A default keep does not keep absolute URLs."""
    return CompiledRule(
        index=LAST,
        label=f"{resource_type}.default",
        method=f"default {action}",
        leaf=_unchanged,
        whole=methods.redact if action == "redact" else None,
        rewrites_references=action == "keep",
        removes=action == "redact",
        is_keep=action == "keep",
    )
