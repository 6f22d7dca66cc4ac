"""The JSON-lines loop every mralab adapter shares (protocol 1; adapters/protocol.schema.json).

An adapter is a real verifier (openssl s_client, curl, Python's ssl) standing in for
Expressway-C's traffic server. mralab writes one JSON object per line on stdin: a `session`
message, a `reconfigure` message on every change (same fields), and `request` messages. Only
requests are answered, with exactly one JSON line on stdout. Anything unexpected here raises:
the adapter exits, and mralab reports a harness fault with this process's stderr.
"""

import json
import re
import sys

PROTOCOL = 1

# ANSI-free, stable text: OpenSSL prefixes its error lines with a thread id that varies per run.
_THREAD_PREFIX = re.compile(r"^[0-9A-F]{8,}:error:")


def stable(line):
    """An error line without the parts that vary between runs."""
    line = _THREAD_PREFIX.sub("error:", line.strip())
    return re.sub(r":\.\./[^:]+:\d+:", ":", line)


class Mode:
    """What to check for one request, from the session's policy and properties.

    DISABLED (before X14.2, or VerifyOriginServer Off): check nothing. PERMISSIVE: check, and on
    a failure still go through (the answer is `accept` with the error). Properties SIGNATURE skip
    the name check; NAME (the name without the chain) none of these tools can do: unsupported.
    Discovery with "TLS verify mode" On checks the publisher whatever the policy.
    """

    def __init__(self, session, request):
        policy = session["policy"]
        if request.get("purpose") == "discovery" and request.get("tls_verify_mode"):
            policy = "ENFORCED"
        self.verify = policy != "DISABLED"
        self.permissive = policy == "PERMISSIVE"
        self.check_name = session["properties"] in ("ALL", "NAME")
        self.unsupported = None
        if self.verify and session["properties"] == "NAME":
            self.unsupported = "properties NAME (name check without the chain) is not available in this tool"


def http_request(request):
    host = request["host"]
    return (
        f"{request['method']} {request['path']} HTTP/1.1\r\nHost: {host}:{request['port']}\r\n"
        "User-Agent: mralab-adapter\r\nConnection: close\r\n\r\n"
    ).encode()


def parse_http(raw):
    """(status, body) of a raw HTTP/1.1 response; chunked bodies decoded."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None, ""
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip().lower()
    if headers.get(b"transfer-encoding") == b"chunked":
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            try:
                size = int(size_line.split(b";")[0], 16)
            except ValueError:
                break
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2:]
        body = out
    return status, body.decode("utf-8", "replace")


def run(handle):
    """Reads messages until stdin closes; `handle(session, request)` returns the answer fields."""
    session = None
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        kind = message.get("type")
        if kind in ("session", "reconfigure"):
            if message.get("protocol") != PROTOCOL:
                raise SystemExit(f"protocol {message.get('protocol')} not supported (this adapter speaks {PROTOCOL})")
            session = message
        elif kind == "request":
            if session is None:
                raise SystemExit("a request before any session")
            answer = {"id": message["id"]}
            answer.update(handle(session, message))
            sys.stdout.write(json.dumps(answer, sort_keys=True) + "\n")
            sys.stdout.flush()
        else:
            raise SystemExit(f"unknown message type {kind!r}")
