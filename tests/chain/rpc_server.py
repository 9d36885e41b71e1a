"""A small JSON-RPC server on 127.0.0.1 (random port) in front of the test chain, with injectable faults.

It answers the methods ``cascade fetch`` uses (``eth_chainId``, ``eth_blockNumber``,
``eth_getBlockByNumber``, ``eth_getCode``, ``eth_call``) from the same eth-tester chain, as a node
would (hex quantities, ``execution reverted`` errors with ABI-encoded reasons). Faults, consumed one
request at a time: ``("status", 429)`` an HTTP error, ``("sleep", s)`` a slow answer (for timeouts),
``("die", None)`` the server stops and closes its socket, ``("rpc_error", (code, message))`` a JSON-RPC
error answer. ``chain_id`` can be overridden (wrong chain)
and ``hook(method)`` runs before a request is answered (a test moves prices between watch ticks).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_CAMEL = {"parent_hash": "parentHash", "sha3_uncles": "sha3Uncles", "logs_bloom": "logsBloom",
          "transactions_root": "transactionsRoot", "receipts_root": "receiptsRoot", "state_root": "stateRoot",
          "coinbase": "miner", "total_difficulty": "totalDifficulty", "mix_hash": "mixHash", "extra_data": "extraData",
          "gas_limit": "gasLimit", "gas_used": "gasUsed", "base_fee_per_gas": "baseFeePerGas"}


def _hex(v: Any) -> Any:
    return hex(v) if isinstance(v, int) and not isinstance(v, bool) else v


class RpcServer:
    def __init__(self, tester, *, chain_id: int | None = None) -> None:
        self.tester = tester
        self.chain_id = chain_id
        self.faults: deque[tuple[str, Any]] = deque()
        self.hook = None
        self.lock = threading.Lock()
        self.methods: list[str] = []
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.paths.append(self.path)
                fault = server.faults.popleft() if server.faults else None
                if fault and fault[0] == "die":
                    server.close_soon()
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(2)
                    return
                if fault and fault[0] == "sleep":
                    time.sleep(fault[1])
                if fault and fault[0] == "status":
                    self.send_response(fault[1])
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                req = json.loads(body)
                if fault and fault[0] == "rpc_error":  # a node's JSON-RPC error answer (e.g. -32005 limit exceeded)
                    code, msg = fault[1]
                    data = json.dumps({"jsonrpc": "2.0", "id": req.get("id"), "error": {"code": code, "message": msg}})
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data.encode())
                    return
                resp = [server.answer(r) for r in req] if isinstance(req, list) else server.answer(req)
                data = json.dumps(resp).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client that gave up (timeout): not an error
                pass

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close_soon(self) -> None:
        threading.Thread(target=self.close, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------------ JSON-RPC
    def _block(self, tag: Any) -> Any:
        if tag in (None, "latest", "pending", "safe", "finalized"):
            return "latest"
        if tag == "earliest":
            return 0
        return int(tag, 16) if isinstance(tag, str) else tag

    def answer(self, req: dict) -> dict:
        from eth_tester.exceptions import BlockNotFound, TransactionFailed

        rid, method, params = req.get("id"), req.get("method"), req.get("params") or []
        self.methods.append(method)
        try:
            with self.lock:
                if self.hook is not None:
                    self.hook(method)
                result = self._dispatch(method, params)
            return {"jsonrpc": "2.0", "id": rid, "result": result}
        except TransactionFailed as e:
            msg = str(e.args[0]) if e.args else ""
            reason = msg.split("execution reverted:", 1)[-1].strip() if "reverted" in msg else msg
            from eth_abi import encode

            data = "0x08c379a0" + encode(["string"], [reason]).hex() if reason else "0x"
            return {"jsonrpc": "2.0", "id": rid, "error": {"code": 3, "message": f"execution reverted: {reason}",
                                                           "data": data}}
        except BlockNotFound:
            return {"jsonrpc": "2.0", "id": rid, "result": None}
        except KeyError:
            return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"method {method} not found"}}
        except Exception as e:
            return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32603, "message": f"{type(e).__name__}: {e}"}}

    def _dispatch(self, method: str, params: list) -> Any:
        t = self.tester
        if method == "eth_chainId":
            return hex(self.chain_id if self.chain_id is not None else t.backend.chain.chain_id)
        if method == "eth_blockNumber":
            return hex(t.get_block_by_number("latest")["number"])
        if method == "eth_getBlockByNumber":
            b = t.get_block_by_number(self._block(params[0]))
            out = {_CAMEL.get(k, k): _hex(v) for k, v in b.items() if k not in ("withdrawals", "transactions")}
            out["transactions"] = []
            out["logsBloom"] = "0x" + "00" * 256
            return out
        if method == "eth_getCode":
            return t.get_code(params[0], self._block(params[1] if len(params) > 1 else None))
        if method == "eth_call":
            tx = {k: v for k, v in params[0].items() if k in ("to", "data", "from", "gas", "value")}
            tx.setdefault("from", t.get_accounts()[0])
            tx["gas"] = int(tx.get("gas", hex(25_000_000)), 16) if isinstance(tx.get("gas"), str) else 25_000_000
            return t.call(tx, self._block(params[1] if len(params) > 1 else None))
        raise KeyError(method)
