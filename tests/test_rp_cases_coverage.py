"""Every case of the RP-CASES catalogue has a test marked with its id.

The catalogue lives in the workplace's shared/RP-CASES.md; its ids are listed here too so the
check runs without it, and compared with the file, which CI puts beside the checkout.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Case group -> number of cases (RP-CASES.md "Count": 90 in all).
GROUPS = {
    "CFG": 7,
    "AZQ": 4,
    "AZR": 9,
    "TOK": 5,
    "IDT": 15,
    "KEY": 6,
    "UI": 4,
    "ACC": 8,
    "RED": 3,
    "LGO": 10,
    "RT": 2,
    "OA1": 3,
    "RS": 14,
}
CATALOGUE_PLACES = [ROOT.parent / "shared" / "RP-CASES.md", ROOT / "shared" / "RP-CASES.md"]


def catalogue_ids() -> set[str]:
    return {f"{group}-{n:02d}" for group, count in GROUPS.items() for n in range(1, count + 1)}


def marked_ids() -> set[str]:
    text = "".join(path.read_text() for path in (ROOT / "tests").rglob("test_*.py"))
    return set(re.findall(r'case\("([A-Z0-9]+-\d\d)"\)', text))


def test_every_case_has_a_marked_test():
    assert len(catalogue_ids()) == 90
    assert sorted(catalogue_ids() - marked_ids()) == []


def test_the_listed_ids_match_the_catalogue():
    place = next((p for p in CATALOGUE_PLACES if p.exists()), None)
    assert place is not None, "shared/RP-CASES.md is not beside the checkout"
    found = set(re.findall(r"^\| ([A-Z0-9]+-\d\d) \|", place.read_text(), re.M))
    assert found == catalogue_ids()
