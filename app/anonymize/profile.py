"""The anonymization profile: a pydantic model that is also the body of an Aidbox resource.

A profile is stored in the clinic's Aidbox as a custom resource ``AnonymizationProfile`` and
edited in the console, so the model is flat JSON with camelCase keys. Validation refuses
anything the engine could misread, naming the resource type, rule index and path.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from app.anonymize.paths import PathError, format_path, parse_path
from app.anonymize.safe_harbor import MAX_REPORTABLE_AGE

MethodName = Literal["keep", "redact", "pseudonymize", "generalize-date", "zip3", "age", "replace"]
DefaultAction = Literal["keep", "redact"]

# Elements the engine itself owns: ``resourceType`` and ``id`` are always sent (the id
# pseudonymized), ``meta.security`` carries the profile's label, and contained resources are
# anonymized by their own type's rules (a rule may only remove them).
_STRUCTURAL = frozenset({"resourceType", "id"})
# QuestionnaireResponse items nest (item.item, item.answer.item); a path starting with ``item``
# already matches items at every depth, so a second ``item`` segment would never match.
RECURSIVE_ELEMENTS: dict[str, str] = {"QuestionnaireResponse": "item", "Questionnaire": "item"}
ANY_TYPE = "*"


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class MethodSpec(_Model):
    """A method and its parameters (``value`` for replace, ``maxAge`` for age)."""

    method: MethodName
    value: str | None = None
    max_age: int | None = Field(default=None, ge=0, le=150)

    @model_validator(mode="after")
    def _check_params(self) -> Self:
        if (self.method == "replace") != (self.value is not None):
            raise ValueError("'value' is required by method replace and allowed only there")
        if self.max_age is not None and self.method != "age":
            raise ValueError("'maxAge' is allowed only with method age")
        return self

    @property
    def age_cap(self) -> int:
        """The age above which ``age`` aggregates (89 unless the rule says otherwise)."""
        return MAX_REPORTABLE_AGE if self.max_age is None else self.max_age


class Rule(MethodSpec):
    """``path → method``: the method applies to every element the path selects."""

    path: str


class ResourceRules(_Model):
    """Rules of one resource type (``*`` = any type without its own entry), in order."""

    type: str = Field(min_length=1)
    default: DefaultAction | None = None
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_paths(self) -> Self:
        seen: dict[str, int] = {}
        recursive = RECURSIVE_ELEMENTS.get(self.type)
        for index, rule in enumerate(self.rules):

            def refuse(reason: str, index: int = index, rule: Rule = rule) -> ValueError:
                return ValueError(f"{self.type} rule {index} (path {rule.path!r}): {reason}")

            try:
                segments = parse_path(rule.path)
            except PathError as exc:
                raise refuse(str(exc)) from None
            head = segments[0].name
            if head in _STRUCTURAL:
                raise refuse(f"{head} is set by the engine and cannot be a rule path")
            if head == "contained" and (len(segments) > 1 or rule.method != "redact"):
                raise refuse("contained resources follow their own type's rules; only redact")
            if head == "meta" and len(segments) > 1 and segments[1].name == "security":
                raise refuse("meta.security is set from the profile's securityLabel")
            if recursive and head == recursive and any(s.name == recursive for s in segments[1:]):
                raise refuse(f"'{recursive}' paths match every depth; drop the inner '{recursive}'")
            canonical = format_path(segments)
            if canonical in seen:
                raise refuse(f"same path as rule {seen[canonical]}, which always wins")
            seen[canonical] = index
        return self


class QuestionRule(MethodSpec):
    """Answers of the questions whose ``linkId`` is listed, or whose text matches (any case)."""

    link_id: list[str] = Field(default_factory=list)
    text: list[str] = Field(default_factory=list)
    match: Literal["exact", "contains"] = "exact"

    @model_validator(mode="after")
    def _check_selector(self) -> Self:
        if not self.link_id and not self.text:
            raise ValueError("a question rule needs 'linkId' or 'text'")
        if any(not normalize_question(text) for text in self.text):
            raise ValueError("question texts must not be blank")
        return self


class QuestionnaireRules(_Model):
    """QuestionnaireResponse answers selected by question, at any nesting depth."""

    questions: list[QuestionRule] = Field(default_factory=list)


class SecurityLabel(_Model):
    """The ``meta.security`` coding added to every anonymized resource."""

    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    display: str | None = None


class Profile(_Model):
    """An anonymization profile; its JSON form is the ``AnonymizationProfile`` resource body."""

    resource_type: Literal["AnonymizationProfile"] = "AnonymizationProfile"
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-.]+$")
    name: str = Field(min_length=1)
    description: str = ""
    default: DefaultAction = "redact"
    security_label: SecurityLabel | None = None
    questionnaire: QuestionnaireRules = Field(default_factory=QuestionnaireRules)
    resources: list[ResourceRules] = Field(default_factory=list)
    # Aidbox adds meta to stored resources; it is accepted and sent back untouched.
    meta: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check_types(self) -> Self:
        seen: set[str] = set()
        for entry in self.resources:
            if entry.type in seen:
                raise ValueError(f"resource type {entry.type} has two entries")
            seen.add(entry.type)
        return self

    def to_resource(self) -> dict[str, Any]:
        """The JSON body to store as an ``AnonymizationProfile`` resource."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def normalize_question(text: str) -> str:
    """Question text as compared: case-folded, single-spaced, without trailing ``: ? *``."""
    return " ".join(text.casefold().split()).rstrip(":?* ")


class ProfileError(ValueError):
    """A refused profile, with one issue per problem, ready to become an OperationOutcome."""

    def __init__(self, issues: list[dict[str, str]]) -> None:
        self.issues = issues
        super().__init__("; ".join(f"{i['expression']}: {i['diagnostics']}" for i in issues))

    @classmethod
    def from_validation_error(cls, exc: ValidationError) -> ProfileError:
        """Translate pydantic's errors (location + message) into issues."""
        issues = [
            {
                "expression": ".".join(str(part) for part in error["loc"])
                or "AnonymizationProfile",
                "diagnostics": error["msg"].removeprefix("Value error, "),
            }
            for error in exc.errors(include_url=False)
        ]
        return cls(issues)

    def to_operation_outcome(self) -> dict[str, Any]:
        """A FHIR OperationOutcome naming each refused rule."""
        return {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": "invalid",
                    "expression": [issue["expression"]],
                    "diagnostics": issue["diagnostics"],
                }
                for issue in self.issues
            ],
        }


def parse_profile(data: dict[str, Any]) -> Profile:
    """Validate a profile body (as stored in Aidbox or read from YAML); raise ProfileError."""
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError.from_validation_error(exc) from None
