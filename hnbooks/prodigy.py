"""Prodigy-compatible tokens and hashes, so hnbooks' JSONL round-trips through Prodigy.

Hashes
------
``input_hash`` and ``task_hash`` reproduce Prodigy's ``set_hashes``. The recipe was recovered
from the bookfinder Prodigy exports (12 files, 1,449 records, 1,384 texts) and matches:

* ``_input_hash``: 1,449 of 1,449 records.
* ``_task_hash``: 1,360 of 1,449 records, each hashed as Prodigy streamed it (its hash is kept
  from then on). Every classification record (588) matches, and every ``ner_manual`` record
  (501) when given as streamed, i.e. ``{"text", "meta"}`` before tokens and spans; of the
  340 ``ner_confirmed`` records 251 match and 89 do not: their spans were edited by the
  annotator, and Prodigy keeps the task hash of the suggestion it showed, which the file no
  longer holds.

The recipe: for each hash key present in the task, in the order of the key list, the string
``key + "=" + json(value)``; the task hash puts ``str(input_hash)`` in front. When none of the
keys is present, the string is ``json`` of the whole task without the ignored keys (for the
task hash, prefixed as before; the task then already carries ``_input_hash``). ``json`` is
``json.dumps(value, sort_keys=True, separators=(",", ":"))`` with ASCII escapes, and the hash is
32-bit MurmurHash3 (seed 0, signed) of the UTF-8 bytes. Nested values are hashed as they are
(span dicts keep their ``source``/``input_hash``: the files prove that). Untested by the data,
and so following Prodigy's documented defaults only: the separator when a task carries two
hash keys (none here; they are concatenated), and the ignored-key filter of the fallback.

Recipes that were tried first and matched no record: ``mmh3``/``murmurhash`` over
``json.dumps({"text": t})`` (default/compact separators, ``ensure_ascii`` on/off, indent 0/2/4,
``sort_keys``), ``srsly.json_dumps``, ``repr``, ``str``, ``"text=" + t`` (raw), seeds 0/1/42,
64- and 128-bit variants truncated, UTF-16/32 bytes, CRC32/MD5/SHA-1, and dicts with ``meta``
or ``label`` added. ``"text=" + json.dumps(t, ensure_ascii=False)`` matches only 1,233 records
(those without non-ASCII characters).

Tokens
------
``prodigy_tokens`` gives the token dicts of Prodigy's ``ner_manual``
(``{"text", "start", "end", "id", "ws"}``), which come from spaCy's English tokenizer. A compact
tokenizer here follows spaCy's (3.8) algorithm, so spaCy is not needed: split on single spaces (other whitespace runs become tokens), then strip prefixes and
suffixes one at a time (opening/closing punctuation and quotes, currency, "'s", a final "." after
a lowercase letter, digit or two capitals), stop at special cases (English contractions such as
"don't" → "do" + "n't", "I'm", "gonna"; common abbreviations; emoticons), keep URLs whole, and
split the rest at infixes (hyphens and ``/ : < > =`` between letters, "," between letters,
"." between a lowercase and an uppercase letter, ellipses, arithmetic between digits), and
finally join tokens that together form a special case (":)", "p.", "and/or").

On the 1,384 bookfinder texts it gives exactly what ``spacy.blank("en").tokenizer`` gives. Against
the 835 token lists stored in the ner files it matches 685 exactly and all 835 but for the last
token's ``ws``: 150 texts were stripped of trailing whitespace after Prodigy tokenized them, so
their last token says ``ws: true`` with nothing after it, which no tokenizer can recover.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from json.encoder import encode_basestring_ascii
from typing import Any

import mmh3

INPUT_HASH_KEYS: tuple[str, ...] = ("text", "image", "html", "input")
TASK_HASH_KEYS: tuple[str, ...] = ("spans", "label", "options", "arcs")
IGNORE_HASH_KEYS: tuple[str, ...] = (
    "score",
    "rank",
    "model",
    "source",
    "pattern",
    "priority",
    "path",
    "_view_id",
    "_session_id",
    "_annotator_id",
    "answer",
)
_HASH_ATTRS = ("_input_hash", "_task_hash")

Token = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Hashes
# ---------------------------------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _hash_string(
    task: Mapping[str, Any], keys: Sequence[str], ignore: Sequence[str], prefix: str
) -> str:
    present = [key for key in keys if key in task]
    if present:
        return prefix + "".join(f"{key}={_json(task[key])}" for key in present)
    rest = {k: v for k, v in task.items() if k not in ignore and k != "_task_hash"}
    return prefix + _json(rest)


def _murmur32(text: str) -> int:
    return int(mmh3.hash(text.encode("utf-8"), 0, signed=True))


def input_hash(
    task: Mapping[str, Any],
    keys: Sequence[str] = INPUT_HASH_KEYS,
    ignore: Sequence[str] = IGNORE_HASH_KEYS,
) -> int:
    """Prodigy's ``_input_hash`` of a task: a signed 32-bit hash of its input keys."""
    without_hashes = {k: v for k, v in task.items() if k not in _HASH_ATTRS}
    return _murmur32(_hash_string(without_hashes, keys, ignore, prefix=""))


def text_input_hash(text: str) -> int:
    """``input_hash({"text": text})`` in one step, for the importer's hot path: the hash string of a
    lone text is ``text=`` and the text as JSON, which for a string is ``encode_basestring_ascii``."""
    return _murmur32("text=" + encode_basestring_ascii(text))


def task_hash(
    task: Mapping[str, Any],
    input_hash: int,
    keys: Sequence[str] = TASK_HASH_KEYS,
    ignore: Sequence[str] = IGNORE_HASH_KEYS,
) -> int:
    """Prodigy's ``_task_hash``: the input hash followed by the task keys, hashed (signed 32-bit).

    A task with none of the task keys is hashed whole (without ignored keys), as Prodigy does,
    with ``_input_hash`` set to ``input_hash``.
    """
    as_streamed = {k: v for k, v in task.items() if k not in _HASH_ATTRS}
    if not any(key in as_streamed for key in keys):
        as_streamed["_input_hash"] = input_hash
    return _murmur32(_hash_string(as_streamed, keys, ignore, prefix=str(input_hash)))


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------

_LETTER = r"[^\W\d_]"
_LOWER = r"a-zß-öø-ÿ"
_UPPER = r"A-ZÀ-ÖØ-Þ"
_QUOTES = "'\"”“`‘´’‚„»«「」『』（）〔〕【】《》〈〉⟦⟧"
_PUNCT = r"…,:;!?¿؟¡()\[\]{}<>_#*&。？！，、；：～·।،۔؛٪"
_CURRENCY = "$£€¥฿₽﷼₴₠₡₢₣₤₥₦₧₨₩₪₫₭₮₯₰₱₲₳₵₶₷₸₹₺₻₼₾₿"
_SYMBOLS = "\u2190-\u21ff\u2300-\u23ff\u2500-\u27bf\u2b00-\u2bff\U0001f000-\U0001faff©®™"  # arrows, technical, box drawing … dingbats, emoji: spaCy's "other symbol" icons
_HYPHENS = r"---|--|——|—|–|-|~"
_UNITS = "|".join(
    sorted(
        "km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb "
        "oz m/s km/h kmh mph hPa Pa mbar mb MB kb KB gb GB tb TB T G M K %".split(),
        key=len,
        reverse=True,
    )
)

_PREFIX_RE = re.compile(
    rf"(?:US\$|C\$|A\$|\.\.+|[§%=—–{_PUNCT}{re.escape(_QUOTES)}{_CURRENCY}{_SYMBOLS}]|\+(?![0-9]))"
)
_SUFFIX_RE = re.compile(
    rf"(?:\.\.+|'s|'S|’s|’S|[—–{_PUNCT}{re.escape(_QUOTES)}{_SYMBOLS}]"
    rf"|(?<=[0-9])\+|(?<=[0-9])[{_CURRENCY}]"
    rf"|(?<=[0-9])(?:{_UNITS})"
    rf"|(?<=[0-9{_LOWER}%²\-+{_PUNCT}{re.escape(_QUOTES)}])\.|(?<=[{_UPPER}][{_UPPER}])\.)$"
)
_INFIX_RE = re.compile(
    rf"\.\.+|…|[{_SYMBOLS}]|(?<=[0-9])[+\-*^](?=[0-9-])"
    rf"|(?<=[{_LOWER}{re.escape(_QUOTES)}])\.(?=[{_UPPER}{re.escape(_QUOTES)}])"
    rf"|(?<={_LETTER}),(?={_LETTER})|(?<=[^\W_])(?:{_HYPHENS})(?={_LETTER})"
    rf"|(?<=[^\W_])[:<>=/](?={_LETTER})"
)
_URL_RE = re.compile(
    r"(?:[\w+\-.]{2,}://)?(?:\S+(?::\S*)?@)?"
    r"(?:(?:[A-Za-z0-9\u00a1-\uffff][A-Za-z0-9\u00a1-\uffff_-]{0,62})?[A-Za-z0-9\u00a1-\uffff]\.)+"
    rf"[{_LOWER}]{{2,63}}(?::\d{{2,5}})?(?:[/?#]\S*)?"
)

# spaCy's English special cases keep these whole; "etc.", "Sr.", "No.", "cf." are not among them.
_ABBREVIATIONS = frozenset(
    "a.m. p.m. e.g. E.g. E.G. i.e. I.e. I.E. vs. v. Mr. Mrs. Ms. Messrs. Dr. St. Jr. Prof. Rev. "
    "Gen. Adm. Gov. Sen. Rep. Inc. Ltd. Co. Corp. Bros. U.S. U.K. U.S.A. D.C. Ph.D. Mt. "
    "Jan. Feb. Mar. Apr. Jun. Jul. Aug. Sep. Sept. Oct. Nov. Dec. Ala. Ariz. Ark. Calif. Colo. "
    "Conn. Del. Fla. Ga. Ill. Ind. Kan. Kans. Ky. La. Mass. Md. Mich. Minn. Miss. Mo. Mont. "
    "Neb. Nebr. Nev. N.C. N.D. N.H. N.J. N.M. N.Y. Okla. Ore. Pa. S.C. Tenn. Va. Wash. Wis. "
    "...".split()
)
_EMOTICONS = frozenset(
    ":) :-) :( :-( ;) ;-) :D :-D :P :-P :p :/ :-/ <3 :'( ^_^ o.O o_O xD XD =) ): (: :] :[".split()
)
_PRONOUNS = "i you he she it we they that there what who where how when why here this".split()
_NEGATABLE = (
    "do does did is are was were have has had could would should must need might ai sha dare "
    "ought".split()
)
# Words spaCy splits although they carry no apostrophe: the word and the length of its first part.
_WHOLE_WORD_SPLITS = {
    **dict.fromkeys(("gonna", "gotta", "wanna", "cannot"), 3),
    **dict.fromkeys(("can't", "won't", "can’t", "won’t", "cant", "wont"), 2),
    **{f"{base}nt": len(base) for base in _NEGATABLE if base not in ("ai", "sha")},
    **{f"{base}s": len(base) for base in ("that", "there", "what", "he", "she", "who")},
    **{f"{base}re": len(base) for base in ("you", "they")},
    **{f"{base}ll": len(base) for base in ("you", "they")},
    **{f"{base}ve": len(base) for base in ("i", "you", "they", "we")},
    "id": 1,
    "im": 1,
}
# Special cases that the affix rules split and spaCy joins again afterwards.
_REJOINED = (
    _ABBREVIATIONS
    | _EMOTICONS
    | {"and/or", "8)"}
    | {f"{c}." for c in "abcdefghijklmnopqrstuvwxyzäöü"}
)
_REJOINED_HEADS = frozenset(word[:cut] for word in _REJOINED for cut in range(1, len(word)))
_CONTRACTION_RE = re.compile(r"(?i)^(\w+?)(n['’]t|['’](?:m|re|s|ve|d|ll))$")


@functools.lru_cache(maxsize=65536)
def _special_case(chunk: str) -> tuple[int, ...] | None:
    """Token lengths for a spaCy special case (contraction, abbreviation, emoticon), else None."""
    if chunk in _REJOINED:
        return (len(chunk),)
    lower = chunk.lower()
    if lower in _WHOLE_WORD_SPLITS and (chunk.islower() or chunk[1:].islower()):
        cut = _WHOLE_WORD_SPLITS[lower]
        return (cut, len(chunk) - cut)
    match = _CONTRACTION_RE.match(chunk)
    if match:
        base, ending = match.group(1), match.group(2)
        if ending[0] in "nN":
            if base.lower() in _NEGATABLE:
                return (len(base), len(ending))
        elif base.lower() in _PRONOUNS or base.lower() in _NEGATABLE:
            return (len(base), len(ending))
    return None


def _is_url(chunk: str) -> bool:
    return _URL_RE.fullmatch(chunk) is not None


def _split_infixes(chunk: str, start: int) -> list[tuple[int, int]]:
    if _is_url(chunk):
        return [(start, start + len(chunk))]
    pieces: list[tuple[int, int]] = []
    position = 0
    for match in _INFIX_RE.finditer(chunk):
        if match.start() == 0 and match.end() == 0:
            continue
        if match.start() > position:
            pieces.append((start + position, start + match.start()))
        if match.end() > match.start():
            pieces.append((start + match.start(), start + match.end()))
        position = match.end()
    if position < len(chunk):
        pieces.append((start + position, start + len(chunk)))
    return pieces


@functools.lru_cache(maxsize=65536)
def _chunk_pieces(chunk: str) -> tuple[tuple[int, int], ...]:
    """(start, end) within the chunk of its tokens, following spaCy's affix loop."""
    if chunk.isalpha() and chunk.lower() not in _WHOLE_WORD_SPLITS:
        return ((0, len(chunk)),)  # no affix, infix or special case can apply to a plain word
    prefixes: list[tuple[int, int]] = []
    suffixes: list[tuple[int, int]] = []
    lo, hi = 0, len(chunk)
    while lo < hi:
        rest = chunk[lo:hi]
        if _special_case(rest) is not None:
            break
        prefix = _PREFIX_RE.match(rest)
        pre_len = prefix.end() if prefix else 0
        if pre_len and _special_case(rest[pre_len:]) is not None:
            prefixes.append((lo, lo + pre_len))
            lo += pre_len
            break
        suffix = _SUFFIX_RE.search(rest[pre_len:])
        suf_len = len(suffix.group()) if suffix else 0
        if suf_len and _special_case(rest[:-suf_len]) is not None:
            suffixes.append((hi - suf_len, hi))
            hi -= suf_len
            break
        if pre_len and suf_len and pre_len + suf_len <= len(rest):
            prefixes.append((lo, lo + pre_len))
            suffixes.append((hi - suf_len, hi))
            lo, hi = lo + pre_len, hi - suf_len
        elif pre_len:
            prefixes.append((lo, lo + pre_len))
            lo += pre_len
        elif suf_len:
            suffixes.append((hi - suf_len, hi))
            hi -= suf_len
        else:
            break
    middle: list[tuple[int, int]] = []
    if lo < hi:
        rest = chunk[lo:hi]
        lengths = _special_case(rest)
        if lengths is not None:
            at = lo
            for length in lengths:
                middle.append((at, at + length))
                at += length
        else:
            middle = _split_infixes(rest, lo)
    return tuple(prefixes + middle + suffixes[::-1])


def _rejoin_special_cases(
    text: str, spans: list[tuple[int, int, bool]]
) -> list[tuple[int, int, bool]]:
    """Join runs of two or three adjacent tokens that together form a special case (":)", "p.")."""
    joined: list[tuple[int, int, bool]] = []
    index = 0
    while index < len(spans):
        start, end, ws = spans[index]
        if ws or text[start:end] not in _REJOINED_HEADS:
            joined.append(spans[index])
            index += 1
            continue
        for width in (3, 2):
            run = spans[index : index + width]
            if (
                len(run) == width
                and not any(ws for _, _, ws in run[:-1])
                and all(a[1] == b[0] for a, b in zip(run, run[1:]))
                and text[run[0][0] : run[-1][1]] in _REJOINED
            ):
                joined.append((run[0][0], run[-1][1], run[-1][2]))
                index += width
                break
        else:
            joined.append(spans[index])
            index += 1
    return joined


_RUN_RE = re.compile(r"(\S+)|\s+")


def _hand_token_spans(text: str) -> list[tuple[int, int, bool]]:
    spans: list[tuple[int, int, bool]] = []
    append = spans.append
    for run in _RUN_RE.finditer(text):
        start, end = run.span()
        chunk = run.group(1)
        if chunk is not None:
            for a, b in _chunk_pieces(chunk):
                append((start + a, start + b, False))
            continue
        # A single space after a token is its "ws"; any other whitespace is a token of its own.
        if spans and text[start] == " ":
            spans[-1] = (spans[-1][0], spans[-1][1], True)
            start += 1
        if start < end:
            append((start, end, False))
    return _rejoin_special_cases(text, spans)


def prodigy_tokens(text: str) -> list[Token]:
    """Prodigy ``tokens`` for a text, as spaCy's English tokenizer makes them (see module doc)."""
    return [
        {"text": text[a:b], "start": a, "end": b, "id": i, "ws": ws}
        for i, (a, b, ws) in enumerate(_hand_token_spans(text))
    ]


def token_bounds(
    tokens: Iterable[Mapping[str, Any]], start: int, end: int
) -> tuple[int, int] | None:
    """Prodigy's (token_start, token_end), inclusive, for a char span; None off token boundaries."""
    first: int | None = None
    last: int | None = None
    for token in tokens:
        if token["start"] == start:
            first = int(token["id"])
        if token["end"] == end:
            last = int(token["id"])
    if first is None or last is None or last < first:
        return None
    return first, last
