"""Personal data with a shape: e-mail addresses, phone numbers, street addresses, and numbers
whose checksum proves them (IBAN by mod-97, card numbers by Luhn, US SSNs by their rules).

Each finder returns `PiiSpan`s over the raw text. A number that has the shape of an IBAN or a card
number but fails its checksum is not one, and is not reported as one: a product code or an order
number often looks like a card number. Phone numbers are found by Google's libphonenumber
(`phonenumbers`), which knows every country's numbering plan; a number written without a ``+``
country code is read in each of `PHONE_REGIONS` in turn.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

import phonenumbers
from stdnum import iban, luhn

# Regions a phone number without a +country code is read in (libphonenumber's region codes).
PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "AU")


class PiiSpan(NamedTuple):
    """One piece of personal data: characters ``start:end`` of the text, of ``type`` (EMAIL,
    PHONE, ...), found by ``source`` (the finder's name)."""

    start: int
    end: int
    type: str
    source: str


EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b"
)
# Two letters, two check digits, then 11-30 letters or digits, in groups of up to 4 or none.
IBAN_SHAPE = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{1,4}){3,8}\b")
# 13-19 digits, optionally in groups joined by single spaces or hyphens.
CARD_SHAPE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
SSN_SHAPE = re.compile(r"(?<![\d-])(\d{3})-(\d{2})-(\d{4})(?![\d-])")

_STREET_TYPES = (
    "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|"
    "Terrace|Close|Crescent|Square|Sq|Parkway|Pkwy|Highway|Hwy|Row|Gardens|Hill|Mews"
)
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}"
_US_STATE_ZIP = r"[A-Z]{2}\s+\d{5}(?:-\d{4})?"
_PLACE = r"[A-Z][a-z][a-zA-Z'-]*(?:\s[A-Z][a-z][a-zA-Z'-]*){0,2}"
# After a street: ", City", then a postcode ("SW1A 1AA", "IL 62704", "75001 Paris") if any.
_TAIL = (
    rf"(?:,?\s(?:{_UK_POSTCODE}|{_US_STATE_ZIP})\b)?"
    rf"(?:,\s(?:\d{{4,5}}\s)?{_PLACE})?"
    rf"(?:,?\s(?:{_UK_POSTCODE}|{_US_STATE_ZIP}|\d{{4,5}})\b)?"
)
ADDRESS_SHAPES = [
    # "221B Baker Street", "1600 Pennsylvania Ave NW", "12 O'Connell St."
    re.compile(
        rf"\b\d{{1,5}}[A-Za-z]?,?\s(?:[A-Z][a-zA-Z'-]+\.?\s){{1,3}}(?:{_STREET_TYPES})\b\.?"
        rf"(?:\s(?:NW|NE|SW|SE|N|S|E|W)\b)?(?:,?\s(?:Apt|Suite|Unit|Flat)\.?\s?\w+)?{_TAIL}"
    ),
    # "Hauptstraße 5", "Lindenweg 12a", "Kerkstraat 3" (German and Dutch)
    re.compile(
        r"\b[A-ZÄÖÜ][a-zäöüß]+(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|straat"
        rf"|laan|gracht|plein)\s\d{{1,4}}[a-z]?\b{_TAIL}"
    ),
    # "12 rue de la Paix", "5 avenue des Champs", "calle Mayor 3" (French, Spanish, Italian)
    re.compile(
        r"\b(?:\d{1,4}(?:\sbis|\ster)?,?\s"
        r"(?i:rue|avenue|av\.|boulevard|bd|place|chemin|impasse|allée)"
        r"\s(?:(?:de|du|des|la|le|l'|d')\s?){0,2}[A-ZÉ][\w'-]+(?:\s[A-ZÉ][\w'-]+){0,2}"
        r"|(?i:calle|avenida|via|viale|piazza|corso)\s(?:(?:de|del|la|di|della)\s){0,2}"
        r"[A-Z][\w'-]+(?:\s[A-Z][\w'-]+){0,2},?\s\d{1,4})"
        rf"{_TAIL}"
    ),
    # "P.O. Box 1234", "PO Box 55"
    re.compile(r"\bP\.?\s?O\.?\sBox\s\d{1,6}\b", re.IGNORECASE),
]


def find_emails(text: str) -> list[PiiSpan]:
    return [PiiSpan(m.start(), m.end(), "EMAIL", "email") for m in EMAIL.finditer(text)]


def find_ibans(text: str) -> list[PiiSpan]:
    """IBANs whose mod-97 check (and country length) holds; the longest valid run of groups."""
    found = []
    for m in IBAN_SHAPE.finditer(text):
        groups = m.group().split(" ")
        for n in range(len(groups), 0, -1):  # trailing groups may be the next word
            candidate = " ".join(groups[:n])
            if len(candidate.replace(" ", "")) >= 15 and iban.is_valid(candidate):
                found.append(PiiSpan(m.start(), m.start() + len(candidate), "IBAN", "iban"))
                break
    return found


def find_cards(text: str) -> list[PiiSpan]:
    """Payment card numbers: 13-19 digits starting 2-6 whose Luhn check holds."""
    found = []
    for m in CARD_SHAPE.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        if digits[0] in "23456" and luhn.is_valid(digits):
            found.append(PiiSpan(m.start(), m.end(), "CARD", "luhn"))
    return found


def find_ssns(text: str) -> list[PiiSpan]:
    """US social security numbers, ``AAA-GG-SSSS``, within the ranges the SSA issues (area not
    000, 666 or 9xx; group and serial not all zeros)."""
    found = []
    for m in SSN_SHAPE.finditer(text):
        area, group, serial = m.groups()
        if area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000":
            found.append(PiiSpan(m.start(), m.end(), "SSN", "ssn"))
    return found


def find_phones(text: str, regions: Iterable[str] = PHONE_REGIONS) -> list[PiiSpan]:
    """Phone numbers valid in the numbering plan of their country: written with a +code, or
    valid in one of ``regions``. Digits inside an IBAN-shaped word are not a phone number (an
    IBAN that fails its check is a mistyped IBAN, not a phone)."""
    found: dict[tuple[int, int], PiiSpan] = {}
    ibans = [m.span() for m in IBAN_SHAPE.finditer(text)]  # digits of a mistyped IBAN
    for region in regions:
        for match in phonenumbers.PhoneNumberMatcher(text, region, phonenumbers.Leniency.VALID):
            if not any(a <= match.start and match.end <= b for a, b in ibans):
                span = PiiSpan(match.start, match.end, "PHONE", "phone")
                found.setdefault((match.start, match.end), span)
    return list(found.values())


def find_addresses(text: str) -> list[PiiSpan]:
    """Street addresses (house number and street, then a town and postcode when they follow)
    in English, German, Dutch, French, Spanish and Italian forms, and post-office boxes."""
    return [
        PiiSpan(m.start(), m.end(), "ADDRESS", "address")
        for shape in ADDRESS_SHAPES
        for m in shape.finditer(text)
    ]


def find_patterns(text: str, regions: Iterable[str] = PHONE_REGIONS) -> list[PiiSpan]:
    """Every shaped piece of personal data in ``text`` (they may overlap; `nlp.anonymize`
    resolves that)."""
    return [
        *find_ibans(text),
        *find_cards(text),
        *find_ssns(text),
        *find_emails(text),
        *find_addresses(text),
        *find_phones(text, regions),
    ]
