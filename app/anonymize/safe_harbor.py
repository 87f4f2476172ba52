"""Facts from HIPAA Safe Harbor (45 CFR §164.514(b)(2)) and HL7 that the methods and profiles use.

Only constants live here, each with its source, so that a reviewer can check them in one place.
"""

from __future__ import annotations

from typing import Final

# §164.514(b)(2)(i)(B): the initial three digits of a ZIP code may be kept only if the area formed
# by all ZIP codes with those three digits holds more than 20,000 people; the others are changed
# to 000. These are the 17 prefixes HHS lists as 20,000 people or fewer under the 2000 Census
# (HHS OCR, "Guidance Regarding Methods for De-identification of Protected Health Information",
# 2012, Safe Harbor section, the question on ZIP codes). Update when HHS publishes a newer list.
RESTRICTED_ZIP3: Final[frozenset[str]] = frozenset(
    {
        "036", "059", "063", "102", "203", "556", "692", "790", "821",
        "823", "830", "831", "878", "879", "884", "890", "893",
    }
)  # fmt: skip
RESTRICTED_ZIP3_REPLACEMENT: Final = "000"

# §164.514(b)(2)(i)(C): "all ages over 89 and all elements of dates (including year) indicative of
# such age ... may be aggregated into a single category of age 90 or older".
MAX_REPORTABLE_AGE: Final = 89

# HL7 v3 ObservationValue (http://terminology.hl7.org/CodeSystem/v3-ObservationValue), concepts
# under _SECALTINTOBV "alteration integrity":
#   ANONYED "anonymized": "... strip portions of the resource that could allow the identification
#            of the source of the information or the information subject. No key to relink the
#            data is retained."
#   PSEUDED "pseudonymized": same, but "Custodian may retain a key to relink data necessary to
#            reidentify the information subject."
# The clinic keeps the HMAC key that produced every pseudonymous id, so what leaves it is, in
# HL7's words, pseudonymized; the shipped profiles therefore default to PSEUDED. A profile may
# name ANONYED instead (for instance when ids are not pseudonyms but random).
SECURITY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
PSEUDONYMIZED_CODE: Final = "PSEUDED"
ANONYMIZED_CODE: Final = "ANONYED"
