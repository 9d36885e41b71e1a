"""The JSON-RPC edge: one block, batched calls, retries, timeouts and one-line errors.

:class:`ChainClient` wraps a web3 provider (an ``http(s)://`` URL, or any provider object such as
web3's ``EthereumTesterProvider``) and is the only place the chain package talks to a node:

- every state read is an ``eth_call`` pinned to one block (:meth:`ChainClient.pin`), so a snapshot
  is one consistent state;
- calls are batched through Multicall3 ``aggregate3`` when the chain has it at that block (each
  sub-call with ``allowFailure = true``, so a failing call is named on its own), else sent one by
  one; chunks and single calls run with bounded concurrency;
- transient failures (connection refused or reset, timeouts, HTTP 429 / 5xx, JSON-RPC "limit"
  errors) are retried with exponential backoff (``Retry-After`` honoured, capped); a per-request
  timeout applies to every HTTP request;
- every failure ends as one :class:`ChainError` line naming the endpoint (redacted), the contract
  and the function: unreachable endpoint, wrong chain id, no code at an address, a revert (with its
  reason), a malformed return, a rate limit that outlasts the retries.

The URL usually carries an API key. It is never part of a message: messages show
:func:`optimizer.redact.redact_url` of it, and any library text that gets into a message passes
through :func:`optimizer.redact.redact_text` with the URL's secret-looking parts masked. CCIP-read
(``OffchainLookup``) is disabled: a node cannot make the tool fetch other URLs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from ..errors import InputError
from ..redact import redact_text, redact_url
from .abi import MULTICALL3, Fn

MULTICALL3_ADDRESS = "0xcA11bde05977b3631167028862bE2a173976CA11"  # same address on every chain that has it
_ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
_PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)


class ChainError(InputError):
    """A failure reading the chain: one line naming the endpoint, contract and function (exit code 2)."""


@dataclass(frozen=True)
class Call:
    """One ``eth_call``: ``contract`` is how messages name it ("Aave Pool"), ``fn`` its function.

    ``allow_failure``: a revert or malformed return is reported in the :class:`Outcome` instead of
    raising. ``batch``: False keeps the call out of Multicall3 (large dynamic returns, e.g. lists).
    """

    contract: str
    address: str
    fn: Fn
    args: tuple = ()
    allow_failure: bool = False
    batch: bool = True

    @property
    def what(self) -> str:
        return f"{self.contract} {self.address} {self.fn.signature}"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    value: tuple = ()
    reason: str = ""


@dataclass(frozen=True)
class BlockRef:
    number: int
    hash: str
    timestamp: int

    @property
    def time_iso(self) -> str:
        return datetime.fromtimestamp(self.timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def date(self) -> str:
        return self.time_iso[:10]


class _Revert(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_TRANSIENT = {"unreachable", "timeout", "rate_limit", "server"}


@dataclass
class ClientOptions:
    timeout_s: float = 15.0
    retries: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 20.0
    concurrency: int = 4
    batch_size: int = 100
    multicall: bool = True  # False: never batch (every call on its own)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)


class ChainClient:
    """Reads from one endpoint at one block. See the module docstring."""

    def __init__(self, rpc: Any, options: ClientOptions | None = None) -> None:
        from web3 import HTTPProvider, Web3

        self.options = options or ClientOptions()
        if isinstance(rpc, str):
            url = rpc.strip()
            if urlsplit(url).scheme not in ("http", "https"):
                raise ChainError(f"must be an http:// or https:// URL, got '{redact_url(url) if '://' in url else '***'}'",
                                 field="--rpc")
            self.url: str | None = url
            provider = HTTPProvider(url, request_kwargs={"timeout": self.options.timeout_s},
                                    exception_retry_configuration=None)
        else:
            self.url, provider = None, rpc
        self.w3 = Web3(provider)
        # Only eth_call / eth_getCode / block reads go through this client: the validation middleware would ask
        # eth_chainId before every call (twice the requests to a metered endpoint), and ENS resolution could
        # send calls the reader did not ask for.
        for name in ("validation", "ens_name_to_address", "gas_price_strategy", "gas_estimate"):
            if name in {n for _m, n in self.w3.middleware_onion.middleware}:
                self.w3.middleware_onion.remove(name)
        self.endpoint = redact_url(self.url) if self.url else f"the {type(rpc).__name__}"
        self.secrets = _url_secrets(self.url) if self.url else ()
        self.block: BlockRef | None = None
        self.chain_id: int | None = None
        self.multicall: str | None = None
        self._code: dict[str, bool] = {}
        self._lock = threading.Lock()
        self.requests = 0  # JSON-RPC requests sent (for the summary line and tests)

    # ------------------------------------------------------------------ transport
    def _rpc(self, what: str, thunk: Callable[[], Any]) -> Any:
        """Run one JSON-RPC request with retries; raise :class:`ChainError` or :class:`_Revert`."""
        o = self.options
        for attempt in range(o.retries + 1):
            with self._lock:
                self.requests += 1
            try:
                return thunk()
            except Exception as e:
                kind, detail, retry_after = self._classify(e)
                if kind == "revert":
                    raise _Revert(detail) from None
                if kind in _TRANSIENT and attempt < o.retries:
                    delay = min(o.max_backoff_s, retry_after if retry_after is not None else o.backoff_s * 2**attempt)
                    o.sleep(delay)
                    continue
                raise ChainError(self._message(kind, detail, what, attempt + 1), field="--rpc") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _message(self, kind: str, detail: str, what: str, attempts: int) -> str:
        tries = f" ({attempts} attempt{'s' if attempts > 1 else ''})"
        if kind == "unreachable":
            return f"cannot reach the RPC endpoint {self.endpoint}: {detail}, calling {what}{tries}"
        if kind == "timeout":
            return (f"the RPC endpoint {self.endpoint} did not answer {what} within {self.options.timeout_s:g} s"
                    f"{tries}; raise --timeout or try another endpoint")
        if kind == "rate_limit":
            return (f"rate limited by the RPC endpoint {self.endpoint} ({detail}) calling {what}{tries}; "
                    "lower --concurrency or --batch-size, or try later")
        if kind == "server":
            return f"the RPC endpoint {self.endpoint} failed ({detail}) calling {what}{tries}"
        if kind == "http":
            return f"the RPC endpoint {self.endpoint} refused {what}: {detail} (check the URL and its API key)"
        if kind == "state":
            blk = f" at block {self.block.number}" if self.block else ""
            return (f"the RPC endpoint {self.endpoint} cannot serve state{blk} for {what} ({detail}); an old block "
                    "needs an archive node")
        if kind == "malformed":
            return f"the RPC endpoint {self.endpoint} sent a malformed answer to {what}: {detail}"
        return f"the RPC endpoint {self.endpoint} returned an error for {what}: {detail}"

    def _clean(self, text: str) -> str:
        return redact_text(" ".join(str(text).split()), self.secrets)[:300]

    def _classify(self, e: Exception) -> tuple[str, str, float | None]:
        """(kind, detail, retry-after seconds) for any error the provider stack raises."""
        import requests
        from web3 import exceptions as w3x

        if isinstance(e, w3x.ContractLogicError) or (type(e).__name__ == "TransactionFailed"
                                                     and type(e).__module__.startswith("eth_tester")):
            return "revert", _revert_reason(e), None
        if isinstance(e, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
            return "unreachable", "the server closed the connection mid-answer", None
        if isinstance(e, requests.exceptions.ConnectTimeout):
            return "unreachable", "connection timed out", None
        if isinstance(e, requests.exceptions.Timeout):
            return "timeout", "timed out", None
        if isinstance(e, requests.exceptions.ConnectionError):
            text = str(e).lower()
            if "refused" in text:
                why = "connection refused"
            elif any(w in text for w in ("reset", "aborted", "remotedisconnected", "closed", "eof")):
                why = "the server closed the connection"
            elif any(w in text for w in ("name or service", "resolve", "getaddrinfo", "nodename")):
                why = "host name not found"
            else:
                why = "connection failed"
            return "unreachable", why, None
        if isinstance(e, requests.exceptions.HTTPError) and e.response is not None:
            status = e.response.status_code
            label = f"HTTP {status} {e.response.reason or ''}".strip()
            if status == 429:
                return "rate_limit", label, _retry_after(e.response.headers.get("Retry-After"))
            if status in (500, 502, 503, 504):
                return "server", label, None
            return "http", label, None
        if isinstance(e, w3x.Web3RPCError):
            rpc = getattr(e, "rpc_response", None) or {}
            err = rpc.get("error") if isinstance(rpc, dict) else None
            code = err.get("code") if isinstance(err, dict) else None
            msg = str(err.get("message", "")) if isinstance(err, dict) else str(getattr(e, "message", e))
            low = msg.lower()
            if code == 3 or "execution reverted" in low or "revert" in low:
                return "revert", self._clean(msg), None
            if code in (-32005, 429) or any(w in low for w in ("rate limit", "too many requests", "limit exceeded",
                                                               "capacity", "throttl")):
                return "rate_limit", f"JSON-RPC error {code}: {self._clean(msg)}", None
            if any(w in low for w in ("header not found", "missing trie node", "unknown block", "pruned",
                                      "not available", "state histor")):
                return "state", self._clean(msg), None
            return "rpc", f"JSON-RPC error {code}: {self._clean(msg)}", None
        if isinstance(e, w3x.BlockNotFound):
            return "rpc", "block not found", None
        if isinstance(e, (ValueError, w3x.BadResponseFormat)) and type(e).__name__ in (
                "JSONDecodeError", "BadResponseFormat"):
            return "malformed", "not a JSON-RPC response", None
        return "error", self._clean(f"{type(e).__name__}: {e}"), None

    # ------------------------------------------------------------------ chain, block, code
    def pin(self, block: int | None, expected_chain_id: int | None, market: str = "",
            multicall: str | None = MULTICALL3_ADDRESS) -> BlockRef:
        """Check the chain id, fix the block every read uses and find Multicall3 there."""
        chain_id = int(self._rpc("eth_chainId", lambda: self.w3.eth.chain_id))
        self.chain_id = chain_id
        if expected_chain_id is not None and chain_id != expected_chain_id:
            raise ChainError(f"the RPC endpoint {self.endpoint} serves chain id {chain_id}, but {market or 'the market'} "
                             f"is on chain id {expected_chain_id}{_chain_name(expected_chain_id)}", field="--rpc")
        if self.block is not None:
            self._code.clear()  # a client re-pinned for the next tick (cascade watch) checks code again
        latest = int(self._rpc("eth_blockNumber", lambda: self.w3.eth.block_number))
        number = latest if block is None else block
        if number > latest:
            raise ChainError(f"block {number} is not mined yet (latest is {latest})", field="--block")
        blk = self._rpc(f"eth_getBlockByNumber({number})", lambda: self.w3.eth.get_block(number))
        h = blk["hash"]
        self.block = BlockRef(number, h.to_0x_hex() if hasattr(h, "to_0x_hex") else str(h), int(blk["timestamp"]))
        use = self.options.multicall and multicall
        self.multicall = multicall if use and self.has_code(multicall) else None
        return self.block

    def has_code(self, address: str) -> bool:
        if address not in self._code:
            assert self.block is not None, "pin() first"
            code = self._rpc(f"eth_getCode({address})",
                             lambda: self.w3.eth.get_code(address, block_identifier=self.block.number))
            self._code[address] = len(code) > 0
        return self._code[address]

    def require_code(self, address: str, contract: str) -> None:
        if not _is_address(address) or int(address, 16) == 0:
            raise ChainError(f"{contract}: '{address}' is not a contract address")
        if not self.has_code(address):
            raise ChainError(f"{contract} {address}: no contract code at this address on chain id {self.chain_id} "
                             f"at block {self.block.number} (wrong address or wrong network?)")

    # ------------------------------------------------------------------ calls
    def _eth_call(self, to: str, data: bytes, what: str) -> bytes:
        assert self.block is not None, "pin() first"
        n = self.block.number
        return bytes(self._rpc(what, lambda: self.w3.eth.call({"to": to, "data": data}, block_identifier=n,
                                                              ccip_read_enabled=False)))

    def call(self, c: Call) -> tuple:
        """One call outside any batch; raises :class:`ChainError` unless ``allow_failure``."""
        return self._check(c, self._single(c))

    def _single(self, c: Call) -> Outcome:
        try:
            data = self._eth_call(c.address, c.fn.encode(*c.args), c.what)
        except _Revert as r:
            return Outcome(False, reason=f"reverted: {r.reason}")
        return self._decode(c, data)

    def _decode(self, c: Call, data: bytes) -> Outcome:
        try:
            return Outcome(True, c.fn.decode(data))
        except ValueError as e:
            if not data and not self.has_code(c.address):
                return Outcome(False, reason="no contract code at this address")
            return Outcome(False, reason=f"malformed return: {e}")

    def _check(self, c: Call, out: Outcome) -> tuple:
        if out.ok:
            return out.value
        if c.allow_failure:
            return ()
        blk = f" at block {self.block.number}" if self.block else ""
        raise ChainError(f"{c.what}{blk}: {out.reason}")

    def run(self, calls: Sequence[Call]) -> list[Outcome]:
        """Outcomes in call order: batched through Multicall3 when available, bounded concurrency.

        Raises :class:`ChainError` for the first call that fails without ``allow_failure``.
        """
        if not calls:
            return []
        o = self.options
        batched = [i for i, c in enumerate(calls) if c.batch] if self.multicall else []
        single = sorted(set(range(len(calls))) - set(batched))
        jobs: list[tuple[str, list[int]]] = [("one", [i]) for i in single]
        for k in range(0, len(batched), max(1, o.batch_size)):
            jobs.append(("multi", batched[k:k + o.batch_size]))
        out: list[Outcome | None] = [None] * len(calls)

        def work(job: tuple[str, list[int]]) -> None:
            kind, idx = job
            res = (self._aggregate([calls[i] for i in idx]) if kind == "multi" and len(idx) > 1
                   else [self._single(calls[i]) for i in idx])
            for i, r in zip(idx, res, strict=True):
                out[i] = r
                self._check(calls[i], r)

        if o.concurrency <= 1 or len(jobs) == 1:
            for job in jobs:
                work(job)
        else:
            with ThreadPoolExecutor(max_workers=o.concurrency) as pool:
                futures = [pool.submit(work, j) for j in jobs]
                _done, pending = wait(futures, return_when=FIRST_EXCEPTION)
                for f in pending:
                    f.cancel()
                for f in futures:  # the first failure, in submission order, is the one reported
                    if f.done() and not f.cancelled() and f.exception() is not None:
                        raise f.exception()
        return [r if r is not None else Outcome(False, reason="not run") for r in out]

    def values(self, calls: Sequence[Call]) -> list[tuple]:
        """Decoded outputs in call order (``()`` for an allowed failure)."""
        return [r.value if r.ok else () for r in self.run(calls)]

    def _aggregate(self, chunk: list[Call]) -> list[Outcome]:
        """One Multicall3.aggregate3 call; falls back to single calls if the batch itself fails."""
        agg = MULTICALL3["aggregate3"]
        payload = [(c.address, True, c.fn.encode(*c.args)) for c in chunk]
        what = f"Multicall3 {self.multicall} aggregate3 ({len(chunk)} calls, first: {chunk[0].what})"
        try:
            raw = self._eth_call(self.multicall, agg.encode(payload), what)
            (results,) = agg.decode(raw)
            if len(results) != len(chunk):
                raise ValueError("wrong number of results")
        except (_Revert, ValueError):
            return [self._single(c) for c in chunk]
        outs = []
        for c, (success, data) in zip(chunk, results, strict=True):
            if success:
                outs.append(self._decode(c, bytes(data)))
            else:
                reason = decode_revert(bytes(data))
                if not data and not self.has_code(c.address):
                    outs.append(Outcome(False, reason="no contract code at this address"))
                else:
                    outs.append(Outcome(False, reason=f"reverted: {reason}"))
        return outs


# ------------------------------------------------------------------------------------------------
def decode_revert(data: bytes) -> str:
    """Human text of revert data: Error(string), Panic(uint256), a custom error selector, or none."""
    from eth_abi import decode

    if not data:
        return "no reason given (the contract may not have this function)"
    try:
        if data[:4] == _ERROR_STRING:
            return repr(decode(["string"], data[4:])[0])[:200]
        if data[:4] == _PANIC:
            return f"panic 0x{decode(['uint256'], data[4:])[0]:02x}"
    except Exception:
        pass
    return f"custom error 0x{data[:4].hex()}"


def _revert_reason(e: Exception) -> str:
    data = getattr(e, "data", None)
    if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
        try:
            return decode_revert(bytes.fromhex(data[2:]))
        except ValueError:
            pass
    msg = str(getattr(e, "message", None) or e)
    msg = msg.split("execution reverted", 1)[-1].lstrip(": ").strip()
    return repr(msg)[:200] if msg else "no reason given (the contract may not have this function)"


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _is_address(a: str) -> bool:
    return isinstance(a, str) and len(a) == 42 and a.startswith("0x") and all(c in "0123456789abcdefABCDEF"
                                                                               for c in a[2:])


def _chain_name(chain_id: int) -> str:
    return {1: " (Ethereum mainnet)", 10: " (OP Mainnet)", 137: " (Polygon)", 8453: " (Base)",
            42161: " (Arbitrum One)", 11155111: " (Sepolia)"}.get(chain_id, "")


def _url_secrets(url: str) -> tuple[str, ...]:
    """Parts of an RPC URL that may be a key: userinfo, path segments, query values, the URL itself."""
    parts = urlsplit(url)
    out = [url, url.rstrip("/")]
    if parts.password:
        out.append(unquote(parts.password))
    if parts.username:
        out.append(unquote(parts.username))
    path_q = parts.path + (f"?{parts.query}" if parts.query else "")
    if len(path_q) > 1:
        out.append(path_q)
    out += [s for s in parts.path.split("/") if len(s) >= 8]
    for pair in (parts.query + "&" + parts.fragment).split("&"):
        _, _, v = pair.partition("=")
        if len(v) >= 4:
            out.append(unquote(v))
    return tuple(sorted(set(out), key=len, reverse=True))
