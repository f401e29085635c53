"""What a secret looks like inside free text: the patterns behind redact_text().

Covered (the formats detect-secrets' plugins know, plus the ones logs actually carry):
  name=value, name: value, "name": "value", name="a quoted value", --name value, for names
    that END in a sensitive word (DB_PASSWORD, GITHUB_TOKEN, x_api_key, aws_secret_access_key,
    clientSecret, ...) and for the configured extra names; an auth scheme after the name is
    kept (Authorization: Basic ***), and a Cookie header is masked whole
  URL credentials (postgres://user:***@host), Bearer and Basic credentials, PEM private keys,
  JWTs, and provider keys: OpenAI/Anthropic-style sk-..., Stripe, AWS access key ids,
  GitHub, GitLab, Slack tokens and webhooks, npm, PyPI, SendGrid, Google API keys,
  Hugging Face, Square, Telegram bot tokens.

Speed: it runs on every logged string, so it is built to skip fast. The main regex runs over
the lowercased text REVERSED, so that each form is anchored on a rare character (the = or :
after a name, the - or _ that ends a key's prefix, the @ of URL credentials, the dots of a
JWT): the regex engine skips every other position in C, and from each anchor the secret is
matched forwards. Forms without such a character hide behind a substring test (--flag,
Bearer, Basic, PEM blocks, Slack webhooks, and the capitalised AWS / Google / SendGrid keys).
Anchors inside a secret already found are skipped, which keeps hostile input linear.
Everything is compiled once per set of sensitive names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

__all__ = ["KEY_SUFFIX", "MASK", "Scrubber"]

MASK = "***"

# fmt: off
_KEY_WORDS = ("api", "access", "secret", "private", "signing", "encryption", "account", "auth",
              "client", "master", "session", "service", "app", "license", "db", "database")
# fmt: on
# A name is sensitive when it ends in one of these (DB_PASSWORD, x-api-key, clientSecret).
NAME_ENDINGS = (
    *(f"{w}{sep}key" for w in _KEY_WORDS for sep in ("_", "-", "")),
    *("password", "passwd", "passphrase", "pass", "pwd", "pw", "secret", "token"),
    *("authorization", "auth", "credential", "credentials", "cookie", "session"),
    *("session_id", "sessionid", "session-id", "bearer", "dsn", "sig", "signature"),
    *("contrasena", "contraseña"),  # detect-secrets' keyword list has them too
)
KEY_SUFFIX = re.compile("(?:" + "|".join(map(re.escape, NAME_ENDINGS)) + r")\Z")

# A value: \"escaped quotes\" (JSON inside JSON), "double" or 'single' quoted (spaces allowed,
# the closing quote optional for a cut-off message), else up to a delimiter.
_KV_VALUE = re.compile(
    r"\s*(?:(?:bearer|basic|token|digest|bot|apikey)\s+)?"
    r"(\\\"(?:[^\\\n]|\\[^\"\n])*(?:\\\")?|\"(?:[^\"\\\n]|\\.)*\"?|'(?:[^'\\\n]|\\.)*'?"
    r"|[^\s\"',;&})\]]+)"
)
_COOKIE_VALUE = re.compile(r"\s*([^\r\n\"']+)")
_ENCODED = re.compile(r"[A-Za-z0-9+/]*(?:[0-9+/=]|[a-z][A-Z])")  # base64, not a word

# Keys recognised by their shape, masked whole: (prefix ending in - _ or ., the rest).
_TOKENS: tuple[tuple[str, str], ...] = (
    *((p, r"[a-z0-9_-]{16,}") for p in ("sk-", "pk-", "rk-")),  # OpenAI, Anthropic, ...
    *((f"{p}_{m}_", r"[a-z0-9]{10,}") for p in ("sk", "pk", "rk") for m in ("live", "test")),
    *((p, r"[a-z0-9]{20,}") for p in ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),  # GitHub
    ("github_pat_", r"[a-z0-9_]{20,}"),
    ("glpat-", r"[a-z0-9_-]{20,}"),  # GitLab
    *((f"xox{c}-", r"[a-z0-9-]{10,}") for c in "abposre"),  # Slack
    ("npm_", r"[a-z0-9]{36}"),
    ("pypi-", r"ageichlwas5vcmc[a-z0-9_-]{50,}"),
    ("hf_", r"[a-z0-9]{30,}"),  # Hugging Face
    ("sq0atp-", r"[0-9a-z_-]{22,}"),  # Square
    ("sq0csp-", r"[0-9a-z_-]{43,}"),
)
_JWT = re.compile(r"eyj[a-z0-9_-]{4,}\.[a-z0-9_-]{4,}\.[a-z0-9_-]*")
_CASED = re.compile(  # on the text as it is: key formats with capitals
    r"A(?<![A-Za-z0-9]A)(?:(?:KIA|SIA|BIA|CCA|3T[A-Z0-9])[A-Z0-9]{16}(?![A-Za-z0-9])"  # AWS
    r"|Iza[0-9A-Za-z_-]{35})"  # Google API key
    r"|S(?<![A-Za-z0-9]S)G\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}"  # SendGrid
)
_BEARER = re.compile(r"(?<![a-z0-9])bearer\s+([a-z0-9._~+/=\-]{8,})")
_BASIC = re.compile(r"(?<![A-Za-z0-9])Basic\s+([A-Za-z0-9+/]{8,}={0,2})")  # the header's spelling
_GATED = (  # (substring that must occur in the lowercased text, regex over it)
    (
        "-----begin",
        re.compile(
            r"(-----begin[a-z0-9 ]*private key(?: block)?-----)"
            r"(?s:.*?-----end[a-z0-9 ]*private key(?: block)?-----|.*)"
        ),
    ),
    ("hooks.slack.com/services/", re.compile(r"(hooks\.slack\.com/services/)[a-z0-9_/]+")),
)
_NOT_ALNUM = "(?![a-z0-9])"  # reversed: "not preceded by a letter or digit"

# A found secret: (start, end, replacement) in the original text.
_Span = tuple[int, int, str]
_Handler = Callable[[str, str, int, "re.Match[str]"], "_Span | None"]


def _rev(literal: str) -> str:
    return re.escape(literal[::-1])


def _trie(words: Iterable[str]) -> str:
    """An alternation of the words, factored by shared prefixes (each position then costs the
    regex engine one test per distinct next character, not one per word)."""
    heads: dict[str, list[str]] = {}
    ends = False
    for word in words:
        if word:
            heads.setdefault(word[0], []).append(word[1:])
        else:
            ends = True
    branches = [re.escape(c) + _trie(rest) for c, rest in heads.items()]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
    return f"(?:{body})?" if ends else body


class Scrubber:
    """Masks secrets in text; built for the default names plus exact extra ones."""

    def __init__(self, extra_names: Iterable[str] = ()) -> None:
        extra = sorted({n.lower() for n in extra_names if n})
        every_name = (*extra, *NAME_ENDINGS)
        names = _trie(n[::-1] for n in every_name)
        self._flag = re.compile(
            rf"(?<![a-z0-9_.\-])--(?:[a-z0-9_.\-]*?[_.\-])?(?:{_trie(every_name)})(?:\s+|=)((?!-)[^\s\"']+)"
        )
        branches: list[str] = []
        self._handlers: dict[str, _Handler] = {}

        def add(pattern: str, handler: _Handler) -> None:
            group = f"g{len(branches)}"
            branches.append(f"{pattern}(?P<{group}>)")
            self._handlers[group] = handler

        for sep in "=:":  # name = value, reversed: the separator, then the name backwards
            quote = r"\s*(?:[\"']\\?)?"
            add(f"{re.escape(sep)}{quote}eikooc(?![a-z0-9_])", _after(_COOKIE_VALUE))
            add(f"{re.escape(sep)}{quote}(?:{names})", _kv)
        add(r"@(?=[^\s@/?#]+:[^\s:/@?#]*//:)", _url)
        add(rf"\.[a-z0-9_-]{{4,}}jye{_NOT_ALNUM}", _jwt)
        add(r":[0-9]{8,10}tob", _after(re.compile(r"([a-z0-9_-]{35})")))  # Telegram
        for prefix, rest in _TOKENS:
            add(_rev(prefix) + _NOT_ALNUM, _token(len(prefix) - 1, re.compile(rest)))
        self._reversed = re.compile("|".join(branches))

    def __call__(self, text: str) -> str:
        low = text.lower()
        if len(low) != len(text):  # a few characters lowercase to two: keep offsets aligned
            low = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
        spans: list[_Span] = []
        last = len(text) - 1
        covered = -1  # anchors inside a secret already found are skipped: linear time
        for match in reversed(list(self._reversed.finditer(low[::-1]))):
            anchor = last - match.start()
            group = match.lastgroup
            if anchor > covered and group is not None:
                span = self._handlers[group](text, low, anchor, match)
                if span is not None:
                    spans.append(span)
                    covered = max(covered, span[1] - 1)
        if "--" in low:
            spans += ((*m.span(1), MASK) for m in self._flag.finditer(low))
        for needle, regex in _GATED:
            if needle in low:
                spans += (
                    (m.start(), m.end(), text[m.start() : m.end(1)] + MASK)
                    for m in regex.finditer(low)
                )
        if "bearer" in low:
            spans += ((*m.span(1), MASK) for m in _BEARER.finditer(low))
        if "basic" in low:
            spans += ((*m.span(1), MASK) for m in _BASIC.finditer(text) if _ENCODED.match(m[1]))
        if "A" in text or "SG." in text:  # AKIA..., AIza..., SG.
            spans += ((m.start(), m.end(), MASK) for m in _CASED.finditer(text))
        return _apply(text, spans) if spans else text


def _apply(text: str, spans: list[_Span]) -> str:
    out: list[str] = []
    done = 0
    for start, end, replacement in sorted(spans, key=lambda s: (s[0], -s[1])):
        if start >= done:  # the first of overlapping spans wins
            out += (text[done:start], replacement)
            done = end
        elif end > done:  # overlapping but reaching further: mask the rest too
            out.append(MASK)
            done = end
    out.append(text[done:])
    return "".join(out)


def _kv(text: str, low: str, anchor: int, _: re.Match[str]) -> _Span | None:
    found = _KV_VALUE.match(low, anchor + 1)
    if found is None:
        return None
    start, end = found.span(1)
    value = text[start:end]
    quote = '\\"' if value.startswith('\\"') else value[:1] if value[:1] in ("'", '"') else ""
    closing = quote if len(value) > len(quote) and value.endswith(quote) else ""
    return start, end, f"{quote}{MASK}{closing}"


def _after(value: re.Pattern[str]) -> _Handler:
    def handler(text: str, low: str, anchor: int, _: re.Match[str]) -> _Span | None:
        found = value.match(low, anchor + 1)
        return None if found is None else (*found.span(1), MASK)

    return handler


def _url(text: str, low: str, anchor: int, _: re.Match[str]) -> _Span | None:
    scheme = low.rfind("://", 0, anchor)
    colon = low.find(":", scheme + 3, anchor) if scheme >= 0 else -1
    return (colon + 1, anchor, MASK) if colon >= 0 else None


def _jwt(text: str, low: str, anchor: int, match: re.Match[str]) -> _Span | None:
    start = len(text) - match.end()
    found = _JWT.match(low, start)
    return None if found is None else (start, found.end(), MASK)


def _token(before: int, rest: re.Pattern[str]) -> _Handler:
    def handler(text: str, low: str, anchor: int, _: re.Match[str]) -> _Span | None:
        found = rest.match(low, anchor + 1)
        return None if found is None else (anchor - before, found.end(), MASK)

    return handler
