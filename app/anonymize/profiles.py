"""Load the shipped profiles (``manifest/profiles/*.yaml``) or a profile file."""

from __future__ import annotations

from pathlib import Path

import yaml

from app.anonymize.profile import Profile, ProfileError, parse_profile

PROFILES_DIR = Path(__file__).resolve().parents[2] / "manifest" / "profiles"
DEFAULT_PROFILE = "safe-harbor"


def shipped_profiles() -> list[str]:
    """Names of the profiles shipped in ``manifest/profiles``."""
    return sorted(path.stem for path in PROFILES_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | Path = DEFAULT_PROFILE) -> Profile:
    """A shipped profile by name (``safe-harbor``, ``minimal``) or a YAML/JSON file by path.

    Raises ProfileError when the profile is invalid, FileNotFoundError when it does not exist.
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml", ".json"):
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ProfileError([{"expression": str(path), "diagnostics": "not a mapping"}])
    return parse_profile(data)
