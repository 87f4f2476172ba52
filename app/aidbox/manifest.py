"""Loads the App's Aidbox-side definitions from `manifest/` (no definitions in Python).

`manifest/<role>.yaml` names the custom resources (FHIRSchema files in `manifest/resources/`),
the seeds created once (conditional create), the shipped anonymization profiles and access
policies (kept equal to their files, see bootstrap.py), and extra resources for the App
manifest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from app.anonymize import ProfileError, parse_profile
from app.errors import SyncError
from app.settings import Role

MANIFEST_DIR = Path(
    os.environ.get("SYNC_MANIFEST_DIR", Path(__file__).resolve().parents[2] / "manifest")
)

ResourceMap = dict[str, dict[str, dict[str, Any]]]


class ManifestError(SyncError):
    """A manifest file is missing or malformed (a packaging error, caught at start-up)."""


@dataclass(frozen=True)
class Manifest:
    """Everything the App declares to its Aidbox for one role."""

    schemas: list[dict[str, Any]]
    seeds: ResourceMap = field(default_factory=dict)
    resources: ResourceMap = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> resource body
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)  # AccessPolicy id -> body

    @property
    def custom_types(self) -> list[str]:
        """Resource types this manifest defines."""
        return [s["id"] for s in self.schemas]


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from None


def load_manifest(role: Role, directory: Path = MANIFEST_DIR) -> Manifest:
    """Read the manifest of `role` from `directory`."""
    spec = _read_yaml(directory / f"{role.value}.yaml") or {}
    schemas = []
    for name in spec.get("schemas", []):
        schema = _read_yaml(directory / "resources" / f"{name}.yaml")
        if not isinstance(schema, dict) or schema.get("id") != name:
            raise ManifestError(f"resources/{name}.yaml must define FHIRSchema id {name}")
        schemas.append(schema)
    profiles = {}
    for name in spec.get("profiles", []):
        try:
            profile = parse_profile(_read_yaml(directory / "profiles" / f"{name}.yaml"))
        except ProfileError as exc:
            raise ManifestError(f"profiles/{name}.yaml: {exc}") from None
        profiles[profile.id] = profile.to_resource()
    policies = {}
    for name in spec.get("policies", []):
        policy = _read_yaml(directory / "policies" / f"{name}.yaml")
        if not isinstance(policy, dict) or policy.get("id") != name:
            raise ManifestError(f"policies/{name}.yaml must define AccessPolicy id {name}")
        policies[name] = policy
    return Manifest(
        schemas=schemas,
        seeds=dict(spec.get("seeds") or {}),
        resources=spec.get("resources") or {},
        profiles=profiles,
        policies=policies,
    )
