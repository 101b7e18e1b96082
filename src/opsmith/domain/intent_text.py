"""Screening and tokenising request text, and the character rules for names.

Everything here works character by character or with str methods: no regular expressions run
over user text, so no input can make the reader slow beyond linear time.
"""

from __future__ import annotations

import string
import unicodedata
from dataclasses import dataclass
from typing import Final

from opsmith.domain.errors import IntentError

MAX_REQUEST_LENGTH: Final[int] = 4096

# Characters that make a shell do something: never part of a request opsmith will act on.
SHELL_METACHARACTERS: Final[frozenset[str]] = frozenset(";|&`$<>")
# Control characters a person can type into a request; every other one is refused.
ALLOWED_CONTROL: Final[frozenset[str]] = frozenset("\t\n\r")
# Unicode categories refused: controls, invisible format characters (bidi overrides can make
# text read differently from what runs), and lone surrogates (not text at all).
REFUSED_CATEGORIES: Final[frozenset[str]] = frozenset({"Cc", "Cf", "Cs"})

NAME_CHARS: Final[frozenset[str]] = frozenset(string.ascii_letters + string.digits + "._-")
GROUP_CHARS: Final[frozenset[str]] = NAME_CHARS | {" "}
PATH_CHARS: Final[frozenset[str]] = NAME_CHARS | {"/", "\\"}
URL_CHARS: Final[frozenset[str]] = NAME_CHARS | frozenset(":/@%+=?#~")
IMAGE_CHARS: Final[frozenset[str]] = NAME_CHARS | frozenset(":/@")

# Quote pairs: an opening quote and the quotes that may close it.
QUOTES: Final[dict[str, tuple[str, ...]]] = {
    "'": ("'",),
    '"': ('"',),
    "‘": ("’", "'"),
    "“": ("”", '"'),
    "’": ("’",),
    "”": ("”",),
}
CLOSERS: Final[tuple[str, ...]] = ("'", '"', "’", "”")
# What may stand right after a closing quote, and right before an opening one.
AFTER_CLOSE: Final[frozenset[str]] = frozenset(",.:!?)]}")
BEFORE_OPEN: Final[frozenset[str]] = frozenset("([{,:")

LEADING_STRIP: Final[str] = "([{'\"‘“’”"
TRAILING_STRIP: Final[str] = ")]}'\"‘“’”"
# Punctuation at the end of a word that also ends a clause ("URGENT:", "prod.", "running?").
ENDING_PUNCT: Final[str] = ".:!?…"
DASHES: Final[frozenset[str]] = frozenset({"-", "--", "—", "–", "->", "=>"})
POSSESSIVES: Final[tuple[str, ...]] = ("'s", "’s")
SHOWN: Final[int] = 80  # how much of a user's text an error message repeats


@dataclass(frozen=True, slots=True)
class Token:
    """A word, a quoted phrase or a clause boundary, with its place in the request."""

    text: str
    start: int
    end: int
    quoted: bool = False
    group: bool = False  # a vocabulary group name matched as a phrase
    boundary: bool = False
    outer_end: int = -1  # where a quoted phrase's closing quote ends; -1 for other tokens

    @property
    def span_end(self) -> int:
        """The end of the token as written, closing quote included."""
        return self.outer_end if self.outer_end >= 0 else self.end

    @property
    def low(self) -> str:
        return self.text.lower()


def shorten(text: str) -> str:
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def screen(text: str) -> str:
    """The request stripped, or IntentError if it is empty, too long or holds what it must not."""
    if not isinstance(text, str):
        raise IntentError(
            f"a request must be text, not {type(text).__name__}", hint='e.g. "Deploy my-app to staging"'
        )
    if len(text) > MAX_REQUEST_LENGTH:
        raise IntentError(
            f"the request is {len(text)} characters long; the limit is {MAX_REQUEST_LENGTH}",
            hint="say what to do in one or two sentences, e.g. 'Deploy microservice-one to staging'",
        )
    # Before stripping: str.strip() would silently drop some control characters (U+001C..U+001F).
    _refuse_control(text)
    stripped = text.strip()
    if not stripped:
        raise IntentError(
            "the request is empty", hint="say what to do, e.g. 'Deploy microservice-one to staging'"
        )
    _refuse_metacharacters(stripped)
    return stripped


def _refuse_control(text: str) -> None:
    for index, char in enumerate(text):
        if char not in ALLOWED_CONTROL and unicodedata.category(char) in REFUSED_CATEGORIES:
            raise IntentError(
                f"the request contains the control character U+{ord(char):04X} at position {index}",
                hint="type the request as plain text; only spaces, tabs and newlines may separate words",
            )


def _refuse_metacharacters(text: str) -> None:
    for index, char in enumerate(text):
        if char not in SHELL_METACHARACTERS:
            continue
        if char == "&" and _standalone(text, index):
            continue  # "a & b" is English for "a and b"
        word = _word_around(text, index)
        context = shorten(text[max(0, index - 30) : index + 40].strip())
        hint = "opsmith never passes request text to a shell; name services, hosts and groups plainly"
        if char == ";" and text[index + 1 : index + 2].isspace():
            # Written as English punctuation between two parts of a request, still refused: the
            # same text would chain commands in a shell.
            hint = 'opsmith never passes request text to a shell; join two parts with ", then" or "and"'
        raise IntentError(
            f'refusing "{word}": {char} is a shell metacharacter and names may only contain letters, '
            f'digits, ".", "_" and "-" (in "{context}")',
            hint=hint,
        )


def _standalone(text: str, index: int) -> bool:
    before = text[index - 1] if index > 0 else " "
    after = text[index + 1] if index + 1 < len(text) else " "
    return before.isspace() and after.isspace()


def _word_around(text: str, index: int) -> str:
    start = index
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    end = index
    while end < len(text) and not text[end].isspace():
        end += 1
    return shorten(text[start:end])


def tokenize(text: str) -> list[Token]:
    """Split screened text into words, quoted phrases and clause boundaries, in order."""
    closing = _closing_positions(text)
    tokens: list[Token] = []
    index = 0
    size = len(text)
    while index < size:
        char = text[index]
        if char in "\n\r,":
            tokens.append(Token(char, index, index + 1, boundary=True))
            index += 1
        elif char.isspace():
            index += 1
        elif char in QUOTES and (index == 0 or text[index - 1].isspace() or text[index - 1] in BEFORE_OPEN):
            close = _close_of(char, index, closing)
            if close < 0:
                index += 1  # a stray quote is punctuation
                continue
            inner = text[index + 1 : close]
            content = inner.strip()
            if content:
                offset = index + 1 + (len(inner) - len(inner.lstrip()))
                tokens.append(Token(content, offset, offset + len(content), quoted=True, outer_end=close + 1))
            index = close + 1
        else:
            end = index
            while end < size and not text[end].isspace() and text[end] != ",":
                end += 1
            tokens.extend(_word_tokens(text[index:end], index))
            index = end
    return tokens


def _word_tokens(word: str, start: int) -> list[Token]:
    if word in DASHES:
        return [Token(word, start, start + len(word), boundary=True)]
    lead = len(word) - len(word.lstrip(LEADING_STRIP))
    core = word[lead:]
    ends_clause = False
    while core and core[-1] in TRAILING_STRIP + ENDING_PUNCT:
        ends_clause = ends_clause or core[-1] in ENDING_PUNCT
        core = core[:-1]
    if core.lower().endswith(POSSESSIVES) and len(core) > 2:
        core = core[:-2]
    tokens: list[Token] = []
    if core:
        tokens.append(Token(core, start + lead, start + lead + len(core)))
    if ends_clause:
        tokens.append(Token(".", start + len(word) - 1, start + len(word), boundary=True))
    return tokens


def _closing_positions(text: str) -> dict[str, list[int]]:
    """For each closing quote, the nearest valid closing position at or after every index.

    Precomputed right to left so finding every quote's partner stays linear in the text.
    """
    size = len(text)
    table: dict[str, list[int]] = {}
    for closer in CLOSERS:
        nearest = [-1] * (size + 1)
        following = -1
        for index in range(size - 1, -1, -1):
            if text[index] == closer and (
                index + 1 == size or text[index + 1].isspace() or text[index + 1] in AFTER_CLOSE
            ):
                following = index
            nearest[index] = following
        table[closer] = nearest
    return table


def _close_of(opener: str, index: int, closing: dict[str, list[int]]) -> int:
    found = [closing[closer][index + 1] for closer in QUOTES[opener]]
    valid = [position for position in found if position > index]
    return min(valid) if valid else -1


def merge_phrases(tokens: list[Token], phrases: dict[tuple[str, ...], str]) -> list[Token]:
    """Replace unquoted word runs that spell a known group name with one group token."""
    if not phrases:
        return tokens
    longest = max(len(words) for words in phrases)
    merged: list[Token] = []
    index = 0
    while index < len(tokens):
        match = _phrase_at(tokens, index, phrases, longest)
        if match is None:
            merged.append(tokens[index])
            index += 1
            continue
        length, name = match
        merged.append(Token(name, tokens[index].start, tokens[index + length - 1].end, group=True))
        index += length
    return merged


def _phrase_at(
    tokens: list[Token], index: int, phrases: dict[tuple[str, ...], str], longest: int
) -> tuple[int, str] | None:
    for length in range(min(longest, len(tokens) - index), 0, -1):
        run = tokens[index : index + length]
        if any(t.boundary or t.quoted or t.group for t in run):
            continue
        name = phrases.get(tuple(t.low for t in run))
        if name is not None:
            return length, name
    return None


def bad_characters(text: str, allowed: frozenset[str]) -> str:
    """The distinct characters of text outside allowed, for an error message."""
    seen: list[str] = []
    for char in text:
        if char not in allowed and char not in seen:
            seen.append(char)
    return " ".join(f"'{c}'" if c.isprintable() and c != "'" else repr(c) for c in seen)


def require_name(text: str, what: str, *, allow_spaces: bool = False) -> str:
    """The name unchanged, or IntentError naming it if it could be anything but a plain name."""
    allowed = GROUP_CHARS if allow_spaces else NAME_CHARS
    if text and text[0].isascii() and text[0].isalnum() and all(c in allowed for c in text):
        return text
    spaces = ", spaces" if allow_spaces else ""
    found = bad_characters(text, allowed) or repr(text[:1])
    raise IntentError(
        f'refusing {what} "{shorten(text)}": names may only contain letters, digits{spaces}, '
        f'".", "_" and "-" and start with a letter or digit (found {found})',
        hint="opsmith never passes request text to a shell; name services, hosts and groups plainly",
    )


def require_path(text: str, *, allow_spaces: bool = False) -> str:
    """A unix or Windows path made only of safe characters, or IntentError naming it.

    Spaces are allowed only in quoted paths, where the user marked where the path ends.
    """
    allowed = PATH_CHARS | {" "} if allow_spaces else PATH_CHARS
    body = text
    if len(text) >= 3 and text[0].isascii() and text[0].isalpha() and text[1] == ":" and text[2] in "/\\":
        body = text[2:]  # a Windows drive: "C:\..."
    if body and all(c in allowed for c in body):
        return text
    raise IntentError(
        f'refusing path "{shorten(text)}": paths may only contain letters, digits, ".", "_", "-" and '
        f"separators (found {bad_characters(body, allowed)})",
        hint="give a plain absolute path such as /etc/nginx/nginx.conf or C:\\Apps\\app.exe",
    )


def require_chars(text: str, allowed: frozenset[str], what: str) -> str:
    if all(c in allowed for c in text):
        return text
    raise IntentError(
        f'refusing {what} "{shorten(text)}": it contains {bad_characters(text, allowed)}',
        hint=f"give the {what} with letters, digits and {''.join(sorted(allowed - NAME_CHARS))} only",
    )


def is_path(text: str) -> bool:
    if text.startswith(("/", "./", "../", "\\\\")):
        return True
    return len(text) >= 3 and text[0].isascii() and text[0].isalpha() and text[1] == ":" and text[2] in "/\\"


def is_url(low: str) -> bool:
    return low.startswith(("http://", "https://"))


def is_ipv4(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(
        p.isascii() and p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts
    )


def is_version(text: str) -> bool:
    """1.2.3, v2.0.1, v1.0.0-prod, v2: digits and dots, an optional v and -suffix."""
    core = text[1:] if text[:1] in "vV" else text
    main = core.split("-", 1)[0].split("+", 1)[0]
    parts = main.split(".")
    if not all(p.isascii() and p.isdigit() for p in parts):
        return False
    return (len(parts) >= 2 or core != text) and all(c in NAME_CHARS or c == "+" for c in core)


def is_number(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 9


def has_alnum(text: str) -> bool:
    return any(c.isalnum() for c in text)


def hostlike(text: str) -> bool:
    """Looks like a host name rather than a word: web-01, db1.example.com."""
    return any(c.isdigit() or c in ".-" for c in text)
