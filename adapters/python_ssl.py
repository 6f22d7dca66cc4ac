#!/usr/bin/env python3
"""mralab adapter (protocol 1): Python's ssl module.

Per request: `ssl.create_default_context(cafile=<trust store>)` (an empty store: a bare
PROTOCOL_TLS_CLIENT context, so no system CAs either way), `check_hostname` on, Expressway's
cipher order with `set_ciphers`, the client certificate with `load_cert_chain`, then a socket to
the loopback address wrapped with `server_hostname=<host>` (Python sends no SNI for an IP and
checks it against IP SANs only). Python cannot be told a validation time: it reads the real clock
(mralab builds `cmd:` PKIs around now); a validation time more than a day from now is answered
`unsupported`. Errors are `SSLCertVerificationError.verify_code`/`verify_message` (OpenSSL's
numbers; no depth).
"""

import os
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mralab_adapter as lib  # noqa: E402

TIMEOUT = 8


def context(session, verify, check_name):
    if session["trust_store_count"]:
        ctx = ssl.create_default_context(cafile=session["trust_store_pem"])
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = verify and check_name
    ctx.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
    if session["ciphers"]:
        ctx.set_ciphers(":".join(session["ciphers"]))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if session["tls_versions"] == ["1.2"]:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if session.get("client_cert_pem") and session.get("client_key_pem"):
        ctx.load_cert_chain(session["client_cert_pem"], session["client_key_pem"])
    return ctx


def name_of(rdns):
    return ", ".join(f"{k}={v}" for rdn in rdns for k, v in rdn).replace("countryName=", "C=").replace(
        "stateOrProvinceName=", "ST=").replace("localityName=", "L=").replace("organizationName=", "O=").replace(
        "organizationalUnitName=", "OU=").replace("commonName=", "CN=")


def fetch(session, request, verify, check_name):
    ip, port = request["connect"].rsplit(":", 1)
    ctx = context(session, verify, check_name)
    with socket.create_connection((ip, int(port)), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname=request["host"]) as tls:
            cert = tls.getpeercert() if verify else None
            tls_info = {"version": tls.version(), "cipher": tls.cipher()[0]}
            tls.sendall(lib.http_request(request))
            data = b""
            while True:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                data += chunk
    status, body = lib.parse_http(data)
    answer = {"verdict": "accept", "status": status or 0, "body": body, "tls": tls_info}
    if cert:
        answer["served_chain"] = [{"subject": name_of(cert.get("subject", ())), "issuer": name_of(cert.get("issuer", ()))}]
    return answer


def handle(session, request):
    mode = lib.Mode(session, request)
    if mode.unsupported:
        return {"verdict": "unsupported", "error": mode.unsupported}
    if mode.verify and abs(session["validation_time"] - time.time()) > 86400:
        return {"verdict": "unsupported", "error": "Python's ssl cannot validate at a time other than now"}
    try:
        return fetch(session, request, mode.verify, mode.check_name)
    except ssl.SSLCertVerificationError as e:
        check = "name" if e.verify_code in (62, 63, 64) else "chain"
        failure = {"check": check, "error": e.verify_message, "code": e.verify_code,
                   "log_lines": [f"python ssl: {type(e).__name__}: verify_code {e.verify_code}: {e.verify_message}"]}
    except ssl.SSLError as e:
        failure = {"check": "handshake", "error": f"{e.reason or e}", "log_lines": [f"python ssl: SSLError: {e.reason}"]}
    except OSError as e:
        failure = {"check": "connect" if isinstance(e, ConnectionRefusedError) else "handshake",
                   "error": f"{type(e).__name__}: {e.strerror or e}", "log_lines": [f"python: {type(e).__name__}"]}
    if mode.permissive and failure["check"] in ("chain", "name"):
        try:
            answer = fetch(session, request, False, False)
            return dict(answer, **failure)
        except (OSError, ssl.SSLError):
            pass
    return dict(failure, verdict="reject")


if __name__ == "__main__":
    lib.run(handle)
