"""The anonymization profile: a pydantic model that is also the body of an Aidbox resource.

A profile is stored in the clinic's Aidbox as a custom resource ``AnonymizationProfile`` and
edited in the console, so the model is flat JSON with camelCase keys. Validation refuses
anything the engine could misread, naming the resource type (or datatype), rule index and path;
paths are checked against the FHIR R4 definitions (``fhir_types.py``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from app.anonymize.fhir_types import FhirType, datatype_names, fhir_type
from app.anonymize.paths import PathError, Segment, format_path, parse_path
from app.anonymize.question_text import normalize_question, question_words
from app.anonymize.safe_harbor import MAX_REPORTABLE_AGE
from app.errors import SyncError, validation_problems

MethodName = Literal[
    "keep", "redact", "pseudonymize", "generalize-date", "zip3", "age", "replace", "state",
    "country",
]  # fmt: skip
DefaultAction = Literal["keep", "redact"]
# Methods that take a list of ``values``: keep sends only those; state and country add them.
_WITH_VALUES = frozenset({"keep", "state", "country"})
# Datatypes the engine handles itself (references) or that no value ever has (abstract bases).
_NOT_CONFIGURABLE = frozenset({"Reference", "Element", "BackboneElement"})
UNKNOWN_DATATYPE = "*"

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


class _Parameters(_Model):
    """Parameters of a method: ``value`` (replace), ``maxAge`` (age), ``values`` (keep, state,
    country)."""

    value: str | None = None
    max_age: int | None = Field(default=None, ge=0, le=150)
    values: list[str] | None = Field(default=None, min_length=1)

    def _check_parameters(self, method: str | None) -> None:
        if (method == "replace") != (self.value is not None):
            raise ValueError("'value' is required by method replace and allowed only there")
        if self.max_age is not None and method != "age":
            raise ValueError("'maxAge' is allowed only with method age")
        if self.values is not None and method not in _WITH_VALUES:
            raise ValueError("'values' is allowed only with methods keep, state and country")

    @property
    def age_cap(self) -> int:
        """The age above which ``age`` aggregates (89 unless the rule says otherwise)."""
        return MAX_REPORTABLE_AGE if self.max_age is None else self.max_age


class MethodSpec(_Parameters):
    """A method and its parameters."""

    method: MethodName

    @model_validator(mode="after")
    def _check_params(self) -> Self:
        self._check_parameters(self.method)
        return self


class Rule(MethodSpec):
    """``path → method`` (every element the path selects), or ``datatype → method`` (every
    element of that FHIR datatype, at any depth)."""

    path: str | None = None
    datatype: str | None = None

    @model_validator(mode="after")
    def _check_selector(self) -> Self:
        if (self.path is None) == (self.datatype is None):
            raise ValueError("a rule needs either 'path' or 'datatype'")
        if self.datatype is not None and self.datatype not in datatype_names():
            raise ValueError(f"{self.datatype!r} is not a FHIR R4 datatype")
        return self

    @property
    def selector(self) -> str:
        """The path, or ``datatype <name>``, for messages."""
        return self.path if self.path is not None else f"datatype {self.datatype}"


def _unknown_element(owner: FhirType | None, segments: tuple[Segment, ...]) -> str | None:
    """Why a path names no element of ``owner`` (None when it does, or cannot be checked).

    A first segment that FHIR does not define is an Aidbox first-class attribute
    (``patientFirstName``): allowed. Below a FHIR element every name must be one of its own,
    but for the parts of a Reference in Aidbox format (``uri``, api/rest-api/other/
    aidbox-and-fhir-formats.md), the only one a rule may name.
    """
    for depth, segment in enumerate(segments):
        if owner is None:
            return None
        if owner.name == "Reference" and segment.name == "uri" and depth == len(segments) - 1:
            return None
        element = owner.elements.get(segment.name)
        if element is None:
            if depth == 0:
                return None
            if owner.kind == "choice":
                options = ", ".join(sorted(owner.elements))
                return f"{segment.name!r} is not a type of this choice ({options})"
            return f"{owner.name} has no element {segment.name!r}"
        owner = element.type
    return None


class ResourceRules(_Model):
    """Rules of one resource type (``*`` = any type without its own entry), in order."""

    type: str = Field(min_length=1)
    default: DefaultAction | None = None
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_paths(self) -> Self:
        seen: dict[str, int] = {}
        recursive = RECURSIVE_ELEMENTS.get(self.type)
        owner = fhir_type(self.type)
        for index, rule in enumerate(self.rules):

            def refuse(reason: str, index: int = index, rule: Rule = rule) -> ValueError:
                return ValueError(f"{self.type} rule {index} ({rule.selector!r}): {reason}")

            if rule.path is None:
                canonical = rule.selector
            else:
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
                if (
                    recursive
                    and head == recursive
                    and any(s.name == recursive for s in segments[1:])
                ):
                    raise refuse(
                        f"'{recursive}' paths match every depth; drop the inner '{recursive}'"
                    )
                unknown = _unknown_element(owner, segments)
                if unknown is not None:
                    raise refuse(unknown)
                canonical = format_path(segments)
            if canonical in seen:
                raise refuse(f"same selector as rule {seen[canonical]}, which always wins")
            seen[canonical] = index
        return self


class DatatypeRules(_Parameters):
    """How one FHIR datatype is sent wherever a kept element holds it and no rule names it.

    Either a ``method`` for the whole value (``Identifier: redact``, ``dateTime:
    generalize-date``), or ``rules`` for its elements (one name each) and a ``default`` for the
    elements they do not name. An entry also covers the types derived from its type (``Quantity``
    covers Age and Duration; ``string`` covers code, id and markdown) unless those have their own.
    ``*`` is the entry of elements FHIR does not define.
    """

    type: str = Field(min_length=1)
    method: MethodName | None = None
    default: DefaultAction | None = None
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_entry(self) -> Self:
        known = fhir_type(self.type) if self.type != UNKNOWN_DATATYPE else None
        if self.type != UNKNOWN_DATATYPE and self.type not in datatype_names():
            raise ValueError(f"{self.type!r} is not a FHIR R4 datatype")
        if self.type in _NOT_CONFIGURABLE:
            raise ValueError(f"{self.type} is handled by the engine and cannot have an entry")
        self._check_parameters(self.method)
        with_rules = bool(self.rules) or self.default is not None
        if (self.method is not None) == with_rules:
            raise ValueError(f"{self.type}: give either 'method', or 'rules' and 'default'")
        if with_rules and (known is None or known.is_primitive):
            raise ValueError(f"{self.type} has no elements: give a 'method'")
        names: set[str] = set()
        for index, rule in enumerate(self.rules):
            where = f"{self.type} rule {index} ({rule.selector!r})"
            if rule.path is None or "." in rule.path or "(" in rule.path:
                raise ValueError(f"{where}: a datatype rule names one of its elements")
            if known is not None and rule.path not in known.elements:
                raise ValueError(f"{where}: {self.type} has no element {rule.path!r}")
            if rule.path in names:
                raise ValueError(f"{where}: named twice")
            names.add(rule.path)
        return self

    def to_spec(self) -> MethodSpec | None:
        """The whole-value method as a MethodSpec (None for an entry with rules)."""
        if self.method is None:
            return None
        return MethodSpec(
            method=self.method, value=self.value, max_age=self.max_age, values=self.values
        )


class CodingRef(_Model):
    """A code of a code system."""

    system: str = Field(min_length=1)
    code: str = Field(min_length=1)


class QuestionRule(MethodSpec):
    """Answers of the questions whose ``linkId`` is listed, or whose text matches (any case)."""

    link_id: list[str] = Field(default_factory=list)
    text: list[str] = Field(default_factory=list)
    match: Literal["exact", "contains", "words"] = "exact"

    @model_validator(mode="after")
    def _check_selector(self) -> Self:
        if not self.link_id and not self.text:
            raise ValueError("a question rule needs 'linkId' or 'text'")
        if any(not normalize_question(text) for text in self.text):
            raise ValueError("question texts must not be blank")
        if self.match == "words" and any(not question_words(text).strip() for text in self.text):
            raise ValueError("a question text matched by words needs a word (a letter or digit)")
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
    datatypes: list[DatatypeRules] = Field(default_factory=list)
    # Codes of observations (and components) whose value is the patient's age: aggregated > 89.
    age_codes: list[CodingRef] = Field(default_factory=list)
    # Code systems whose codes are identifiers (B)-(R) themselves (FIPS 6-4 counties): every
    # Coding of one is removed, wherever it is.
    withheld_code_systems: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    # Aidbox adds meta to stored resources; it is accepted and sent back untouched.
    meta: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check_types(self) -> Self:
        seen: set[str] = set()
        for entry in self.resources:
            if entry.type in seen:
                raise ValueError(f"resource type {entry.type} has two entries")
            seen.add(entry.type)
        datatypes: set[str] = set()
        for datatype in self.datatypes:
            if datatype.type in datatypes:
                raise ValueError(f"datatype {datatype.type} has two entries")
            datatypes.add(datatype.type)
        return self

    def to_resource(self) -> dict[str, Any]:
        """The JSON body to store as an ``AnonymizationProfile`` resource."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ProfileError(SyncError, ValueError):
    """A refused profile, with one issue per problem, ready to become an OperationOutcome."""

    def __init__(self, issues: list[dict[str, str]]) -> None:
        self.issues = issues
        super().__init__("; ".join(f"{i['expression']}: {i['diagnostics']}" for i in issues))

    @classmethod
    def from_validation_error(cls, exc: ValidationError) -> ProfileError:
        """Translate pydantic's errors (location + message) into issues."""
        issues = [
            {"expression": where, "diagnostics": message}
            for where, message in validation_problems(exc, "AnonymizationProfile")
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
