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

# ISO 3166-2 subdivision types of a town's size (pycountry's ``type``).
_TOWNS = frozenset(
    {
        "Municipality", "Urban municipality", "Special municipality", "Local council",
        "Parish", "City", "City with county rights", "Commune", "Quarter", "Town", "Borough",
        "Island council", "Administrative precinct",
    }
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
    # names it a town: where a country's first level is its municipalities (Slovenia,
    # Malta's local councils), each is a unit smaller than a state.
    subdivisions = sorted(
        subdivision.code
        for subdivision in pycountry.subdivisions
        if subdivision.parent_code is None
        and subdivision.country_code != "US"
        and subdivision.type not in _TOWNS
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
