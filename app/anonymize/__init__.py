"""Anonymization inside the clinic: profiles, compiled plans, pure methods, the walker.

Typical use::

    key = PseudonymKey(secret=secret_from_env, namespace=instance_id)
    plan = compile_profile(load_profile("safe-harbor"))   # once per profile
    out = anonymize(resource, plan, key)                  # pure; input untouched
"""

from app.anonymize.engine import Change, Explanation, anonymize, anonymize_with_targets, explain
from app.anonymize.plan import Plan, compile_profile
from app.anonymize.profile import Profile, ProfileError, parse_profile
from app.anonymize.profiles import load_profile, shipped_profiles
from app.anonymize.pseudonym import PseudonymKey
from app.anonymize.questions import shadowed_questions
from app.anonymize.shared import Shared

__all__ = [
    "Change",
    "Explanation",
    "Plan",
    "Profile",
    "ProfileError",
    "PseudonymKey",
    "Shared",
    "anonymize",
    "anonymize_with_targets",
    "compile_profile",
    "explain",
    "load_profile",
    "parse_profile",
    "shadowed_questions",
    "shipped_profiles",
]
