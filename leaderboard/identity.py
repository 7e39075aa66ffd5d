"""Names of submitters and methods: what is refused, and the normal forms they are compared in.

A name is displayed as typed (leading and trailing white space removed), but compared in a
normal form, so that `ALICE`, `аlice` (Cyrillic а) and `ａｌｉｃｅ` (fullwidth) are one name:

- `check_text` refuses control, format and other invisible characters (NUL, the
  right-to-left override U+202E, zero-width spaces and joiners, the byte order mark, soft
  hyphens, variation selectors, Hangul fillers, private-use and unassigned code points):
  they make two names that look the same compare different, or reorder what is shown.
- `name_key`: Unicode NFKC (fullwidth forms, ligatures, mathematical letters), case folding,
  combining marks dropped (so `Rétrieval` is `Retrieval`), each character mapped to its
  Unicode TR39 confusables prototype (the "skeleton": Cyrillic `а` and Greek `α` become
  Latin `a`, `m` becomes `rn`, `0` becomes `o`; capitals are mapped before case folding,
  so Greek `Μ` is `M`), repeated until stable, with `i`, `l`, `I` and `1` as one letter;
  runs of white space become one space. Two names with the same key look alike.
- `quota_key` (per-submitter limits off a Space, where a name is not authenticated): the
  name key of the letters and digits only, with a plus-address tag (`alice+2@x.org` ->
  `alice@x.org`) and a trailing number (`alice2`, `alice-02`) removed. So the cheap variants
  of one name share one quota; a different name is still a different quota (the per-address
  limit of `leaderboard.ratelimit` covers that case).
- `method_core` (reserved method names): the letters and digits of the name key, without
  bracketed parts and without a trailing version or number (`Retrieval (v2)`, `Retrieval
  #2`, `Occupancy network v3` all reduce to the reserved name they imitate).
- `claims`: words that claim a status only maintainers give (verified, official, baseline,
  ...), found in the letters of the name key, so homoglyph spellings are found too.
- `clean_upload_name`: the name an archive was uploaded as, for display only: its last path
  component, with the characters `check_text` refuses removed (not refused: the upload is
  named by the user's file system, not typed), trimmed and bounded.

The TR39 prototypes come from the confusables table of the `confusable-homoglyphs` package
(Unicode's confusables.txt as JSON), read once on first use.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from importlib import resources

from leaderboard.errors import ServiceError

__all__ = [
    "check_text",
    "clean_name",
    "clean_upload_name",
    "name_key",
    "quota_key",
    "method_core",
    "claims",
    "skeleton",
    "CLAIM_WORDS",
    "UPLOAD_NAME_MAX",
]

# Invisible characters that are not in a "C*" category (letters or marks that render as
# nothing: Hangul fillers, the combining grapheme joiner, Khmer inherent vowels, Mongolian
# and generic variation selectors, the blank Braille pattern).
_INVISIBLE = frozenset(
    [0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0]
    + list(range(0x180B, 0x1810))
    + list(range(0xFE00, 0xFE10))
    + list(range(0xE0100, 0xE01F0))
)
_REFUSED_CATEGORIES = ("Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp")
_UNNAMED = {"Cc": "control character", "Co": "private use", "Cs": "surrogate"}
# Words that claim a status only a maintainer gives: refused anywhere in a method name
# (letters only, so "Un-official" and "v3rified" are found) ...
CLAIM_WORDS = ("verified", "official", "baseline", "certified", "endorsed")
# ... and these only as whole words ("preference" is fine, "reference" is not).
_CLAIM_WHOLE_WORDS = ("reference", "approved", "maintainer", "maintainers")
_WS = re.compile(r"\s+")
_BRACKETED = re.compile(r"\([^()]*\)|\[[^\[\]]*\]|\{[^{}]*\}")
_ALNUM_RUN = re.compile(r"[^\W_]+")
_PLUS_TAG = re.compile(r"\+[^@\s]*")
_TRAILING_NUMBER = re.compile(r"\d+\Z")
_TRAILING_VERSION = re.compile(r"(?:v|ver|version)?\d+\Z")
UPLOAD_NAME_MAX = 120


def check_text(text: str, field: str, multiline: bool = False) -> None:
    """Refuse (ServiceError) a text holding a control, format or invisible character.

    `multiline` allows newlines and tabs (descriptions). The message names the character
    and its position, so the user can remove it.
    """
    for position, char in enumerate(text, start=1):
        if multiline and char in "\n\t":
            continue
        code = ord(char)
        if _invisible(char):
            category = unicodedata.category(char)
            name = unicodedata.name(char, "") or _UNNAMED.get(category, "unassigned")
            raise ServiceError(
                f"the {field} contains an invisible or control character (U+{code:04X} "
                f"{name}) at position {position}; remove it (names are shown as typed, so "
                "such characters could make one name look like another)"
            )


def clean_name(text: str | None, field: str, max_length: int) -> str:
    """The name as it will be displayed: white space trimmed, checked with `check_text`,
    at most `max_length` characters, with at least one letter or digit in its key."""
    name = (text or "").strip()
    check_text(name, field)
    if len(name) > max_length:
        raise ServiceError(f"the {field} is longer than {max_length} characters")
    if name and not _ALNUM_RUN.search(name_key(name)):
        raise ServiceError(f"the {field} needs at least one letter or digit")
    return name


def _invisible(char: str) -> bool:
    """Whether `check_text` refuses `char` (control, format or another invisible one)."""
    return unicodedata.category(char) in _REFUSED_CATEGORIES or ord(char) in _INVISIBLE


def clean_upload_name(text: str | None, max_length: int = UPLOAD_NAME_MAX) -> str | None:
    """The file name an archive was uploaded as, fit to display: the part after the last `/`
    or `\\`, without the characters `check_text` refuses (NUL, U+202E RIGHT-TO-LEFT
    OVERRIDE, zero-width characters, ...), white space trimmed, at most `max_length`
    characters; None when nothing is left (or only `.` / `..`)."""
    base = re.split(r"[/\\]", text or "")[-1]
    name = "".join(c for c in base if not _invisible(c)).strip()
    name = name[:max_length].rstrip()
    return None if name in ("", ".", "..") else name


@functools.cache
def _prototypes() -> dict[str, str]:
    """TR39 confusables: character -> its prototype (one or more characters).

    The package's table lists, for each prototype, the characters confusable with it, and
    for each of those characters its prototype (a star around each prototype). A source is
    a key whose one entry is a prototype listing it back; when a prototype has a single
    source the pair lists each other, and the shorter, then the smaller, code is taken as
    the prototype (a multi-character prototype such as `rn` is always the target).
    """
    raw = resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    table: dict[str, list[str]] = {}
    for key, entries in json.loads(raw).items():
        # Right-to-left characters are wrapped in LEFT-TO-RIGHT MARKs for display.
        table[_strip_marks(key)] = [_strip_marks(e["c"]) for e in entries]
    mapping: dict[str, str] = {}
    for key, targets in table.items():
        if len(key) != 1 or len(targets) != 1 or targets[0] == key:
            continue
        target = targets[0]
        back = table.get(target)
        if back == [key] and (len(target), target) > (len(key), key):
            continue  # a pair: `key` is the prototype of `target`
        mapping[key] = target
    return mapping


def _strip_marks(text: str) -> str:
    return text.replace("\u200e", "").replace("\u200f", "")


def _capitals(text: str) -> str:
    """NFKC, then each non-ASCII capital letter replaced by its TR39 prototype."""
    prototypes = _prototypes()
    text = unicodedata.normalize("NFKC", text)
    return "".join(
        prototypes.get(c, c) if not c.isascii() and c != c.casefold() else c for c in text
    )


def _fold(text: str) -> str:
    """NFKC, case folding, combining marks dropped (via NFD), NFC."""
    text = unicodedata.normalize("NFKC", text).casefold()
    decomposed = unicodedata.normalize("NFD", text)
    kept = "".join(c for c in decomposed if unicodedata.category(c) not in ("Mn", "Me"))
    return unicodedata.normalize("NFC", kept)


def skeleton(text: str) -> str:
    """The comparison form of a text (see the module docstring).

    NFKC; then each non-ASCII capital letter is replaced by its TR39 prototype while still a
    capital (Greek `Μ` and Cyrillic `М` look like `M`, though `μ` and `м` do not look like
    `m`); then `_fold` and each character replaced by its prototype, repeated until nothing
    changes; `l` and `i` are one letter (a capital `I` looks like `l`, and case is ignored);
    white space collapsed to single spaces and trimmed.
    """
    prototypes = _prototypes()
    current = _fold(_capitals(text))
    for _ in range(8):
        decomposed = unicodedata.normalize("NFD", current)
        mapped = _fold("".join(prototypes.get(c, c) for c in decomposed)).replace("l", "i")
        if mapped == current:
            break
        current = mapped
    return _WS.sub(" ", current).strip()


def name_key(text: str) -> str:
    """The normal form two names are compared in (see the module docstring)."""
    return skeleton(text)


def _alnum(text: str) -> str:
    return "".join(_ALNUM_RUN.findall(text))


def quota_key(text: str) -> str:
    """The normal form per-submitter limits count by (see the module docstring)."""
    folded = _PLUS_TAG.sub("", _fold(_capitals(text)))
    letters = _alnum(folded)
    stripped = _TRAILING_NUMBER.sub("", letters) or letters
    return _alnum(skeleton(stripped)) or name_key(text)


def method_core(text: str) -> str:
    """What a method name is checked against reserved names in (see the module docstring)."""
    folded = _fold(_capitals(text))
    previous = None
    while previous != folded:  # nested brackets, innermost first
        previous, folded = folded, _BRACKETED.sub(" ", folded)
    letters = _alnum(folded)
    stripped = _TRAILING_VERSION.sub("", letters) or letters
    return _alnum(skeleton(stripped))


@functools.cache
def _claim_forms() -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    anywhere = tuple((w, _alnum(skeleton(w))) for w in CLAIM_WORDS)
    whole = tuple((w, _alnum(skeleton(w))) for w in _CLAIM_WHOLE_WORDS)
    return anywhere, whole


def claims(text: str) -> list[str]:
    """The status words (`CLAIM_WORDS` and a few whole words) a method name claims."""
    key = skeleton(text)
    letters = _alnum(key)
    words = {_alnum(w) for w in _ALNUM_RUN.findall(key)}
    anywhere, whole = _claim_forms()
    found = [word for word, form in anywhere if form in letters]
    found += [word for word, form in whole if form in words]
    return found
