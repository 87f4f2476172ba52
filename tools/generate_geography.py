"""Generate ``app/anonymize/geography.json``: the coarse geography Safe Harbor lets through.

Source: the ISO 3166-1 country list and the ISO 3166-2 subdivisions as packaged by the
``pycountry`` PyPI package (a development tool only, not a dependency of the App):

    python -m venv /tmp/geo && /tmp/geo/bin/pip install pycountry==26.2.16
    /tmp/geo/bin/python tools/generate_geography.py > app/anonymize/geography.json

Used by the ``state`` and ``country`` methods (``app/anonymize/methods.py``): a value is kept
only when it is one of these codes or names, so that a street, a city or a ZIP code typed into
``Address.state`` or ``Address.country`` never leaves the clinic (45 CFR §164.514(b)(2)(i)(B)
allows the state, never a smaller subdivision).
"""

from __future__ import annotations

import json
import sys

import pycountry

# Words of the ISO 3166-2 subdivision types of a town's or a city's size (pycountry's
# ``type``: "Municipality", "State city", "Town council", "Capital city", ...). A city that is
# a first-level unit (Ulsan, Ventspils, Prague) is still a city, smaller than a state.
_TOWN_WORDS = (
    "city", "town", "capital", "municip", "council", "parish", "commune", "quarter",
    "borough", "precinct",
)  # fmt: skip


def main() -> None:
    """Print the table as JSON."""
    countries = sorted(
        {
            name
            for country in pycountry.countries
            for name in (
                country.alpha_2,
                country.alpha_3,
                country.name,
                getattr(country, "official_name", None),
                getattr(country, "common_name", None),
            )
            if name
        }
    )
    states = sorted(
        {
            name
            for subdivision in pycountry.subdivisions.get(country_code="US")
            for name in (subdivision.code.removeprefix("US-"), subdivision.code, subdivision.name)
        }
    )
    # Elsewhere, a state is a first-level subdivision (no parent in ISO 3166-2), unless ISO
    # names it a town or a city: where a country's first level is its municipalities
    # (Slovenia, Malta's local councils), each is a unit smaller than a state.
    subdivisions = sorted(
        subdivision.code
        for subdivision in pycountry.subdivisions
        if subdivision.parent_code is None
        and subdivision.country_code != "US"
        and not any(word in subdivision.type.casefold() for word in _TOWN_WORDS)
    )
    table = {
        "source": f"pycountry {pycountry.__version__} (ISO 3166-1 countries; ISO 3166-2:US"
        " states, district and outlying areas; other countries' first-level subdivisions)",
        "countries": countries,
        "usStates": states,
        "subdivisions": subdivisions,
    }
    json.dump(table, sys.stdout, ensure_ascii=False, indent=0)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
