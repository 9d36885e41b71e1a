"""Removing secrets from anything the tool prints or writes: storage URLs, RPC URLs, API keys.

Every message, report, manifest and log line that may contain a URL goes through :func:`redact_url`
(one URL) or :func:`redact_text` (free text with URLs inside). What counts as a secret:

- the password of the userinfo (``scheme://user:PASSWORD@host``), also with an empty user
  (``://:PASSWORD@host``) and with ``@`` or ``:`` inside the password (the userinfo ends at the LAST
  ``@`` before the host);
- the value of a credential-bearing query key (``password``, ``passwd``, ``pwd``, ``secret``,
  ``token``, ``key``, ``apikey``, ``api_key``, ``access_token``, ``auth``, ...) in the query string or
  the fragment;
- path segments that look like API keys (RPC providers put the key in the path:
  ``/v3/<32 hex>``, ``/v2/<key>``): a segment of 20 or more characters of letters, digits, ``-`` or
  ``_`` that mixes letters and digits, and any segment of 8 or more such characters right after a
  version segment (``/v2/<key>``, ``/v3/<key>``: Alchemy, Infura).

Redacted values become ``***``; the rest of the URL is kept so a user can still tell which host and
database a message is about.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

MASK = "***"

SECRET_QUERY_KEYS = frozenset({
    "password", "passwd", "pass", "pwd", "secret", "client_secret", "token", "access_token", "auth_token",
    "refresh_token", "id_token", "key", "apikey", "api_key", "api-key", "x-api-key", "auth", "authorization",
    "sslpassword", "private_key", "privatekey", "signature", "sig", "credential", "credentials", "session",
})

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>()\[\]{}]+")
_KEYLIKE = re.compile(r"^[A-Za-z0-9_\-]{20,}$")
_SHORT_KEY = re.compile(r"^[A-Za-z0-9_\-]{8,}$")
_VERSION = re.compile(r"^v[0-9]+$", re.IGNORECASE)


def _keylike(segment: str) -> bool:
    s = unquote(segment)
    return bool(_KEYLIKE.match(s)) and any(c.isdigit() for c in s) and any(c.isalpha() for c in s)


def _after_version(segs: list[str], i: int) -> bool:
    """``segs[i]`` is an 8+ character key-like segment right after ``v2``/``v3``/... (an RPC key's place)."""
    return i > 0 and bool(_VERSION.match(segs[i - 1])) and bool(_SHORT_KEY.match(unquote(segs[i])))


def _secret_key(k: str) -> bool:
    name = unquote(k).strip().lower()
    return name in SECRET_QUERY_KEYS or any(w in name for w in ("password", "secret", "token", "apikey", "api_key"))


def _redact_pairs(part: str) -> str:
    out = []
    for pair in part.split("&"):
        k, eq, v = pair.partition("=")
        out.append(f"{k}={MASK}" if eq and v and _secret_key(k) else pair)
    return "&".join(out)


def redact_url(url: str) -> str:
    """``url`` with every credential replaced by ``***`` (see the module docstring)."""
    if not isinstance(url, str) or "://" not in url:
        return url
    scheme, _, rest = url.partition("://")
    # split off fragment and query first: '@' and '/' may appear inside them
    rest, hsep, fragment = rest.partition("#")
    rest, qsep, query = rest.partition("?")
    # authority ends at the first '/' AFTER the last '@' (a password may hold '/' or '@')
    at = rest.rfind("@")
    slash = rest.find("/", at + 1 if at >= 0 else 0)
    authority, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    if "@" in authority:
        userinfo, _, host = authority.rpartition("@")
        user, colon, _pw = userinfo.partition(":")
        authority = f"{user}:{MASK}@{host}" if colon else (f"{MASK}@{host}" if _keylike(user) else authority)
    if path:
        segs = path.split("/")
        path = "/".join(MASK if _keylike(seg) or _after_version(segs, i) else seg for i, seg in enumerate(segs))
    out = f"{scheme}://{authority}{path}"
    if qsep:
        out += "?" + _redact_pairs(query)
    if hsep:
        out += "#" + _redact_pairs(fragment)
    return out


def _split(url: str) -> tuple[str, str, str, str, str, str]:
    """(scheme, userinfo, host, path, query, fragment) the way :func:`redact_url` reads a URL."""
    scheme, _, rest = url.partition("://")
    rest, _, fragment = rest.partition("#")
    rest, _, query = rest.partition("?")
    at = rest.rfind("@")
    slash = rest.find("/", at + 1 if at >= 0 else 0)
    authority, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    userinfo, _, host = authority.rpartition("@") if "@" in authority else ("", "", authority)
    return scheme, userinfo, host, path, query, fragment


def url_secrets(url: str | None) -> tuple[str, ...]:
    """The credential strings inside ``url`` (as written and percent-decoded), for :func:`redact_text`.

    A driver's error text may show a password outside any URL shape (a DSN ``password=...``, a
    decoded form, a URL cut at a space); masking the strings themselves catches every rendering.
    """
    if not isinstance(url, str) or "://" not in url:
        return ()
    _, userinfo, _, path, query, fragment = _split(url)
    out: list[str] = []
    user, colon, pw = userinfo.partition(":")
    if colon and pw:
        out.append(pw)
        # drivers that split the authority at the FIRST '@' read the rest of the password as the host
        out += [piece for piece in pw.split("@") if len(piece) >= 4]
    elif userinfo and _keylike(user):
        out.append(user)
    for part in (query, fragment):
        for pair in part.split("&"):
            k, eq, v = pair.partition("=")
            if eq and v and _secret_key(k):
                out.append(v)
    segs = path.split("/")
    out += [seg for i, seg in enumerate(segs) if seg and (_keylike(seg) or _after_version(segs, i))]
    return tuple(dict.fromkeys(x for s in out for x in (s, unquote(s)) if x))


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Free text with every URL redacted and every string of ``secrets`` (plain or URL-quoted) masked."""
    if not isinstance(text, str):
        return text
    def one(m: re.Match) -> str:
        url = m.group(0)
        tail = len(url) - len(url.rstrip(".,;:!"))  # sentence punctuation after a URL is not part of it
        return redact_url(url[: len(url) - tail]) + url[len(url) - tail:]

    out = _URL.sub(one, text)
    for s in secrets:
        if s and len(s) >= 4:
            for form in {s, quote(s, safe=""), quote(s)}:
                out = out.replace(form, MASK)
    return out
