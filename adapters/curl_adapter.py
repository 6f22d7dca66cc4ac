"""mralab adapter: curl (its exit codes mapped to verdicts).

Run through curl.sh. Per request: `curl --connect-to <host>:<port>:<loopback> --cacert <trust
store> --ciphers <Expressway's order> [--cert/--key] https://<host>:<port><path>`. curl cannot be
told a validation time: it reads the real clock. mralab builds the PKI of `cmd:` verifiers around
the real time, so dates agree to within seconds; a validation time more than a day from now is
answered `unsupported`.

Exit codes: 0 accept; 60 (peer certificate cannot be authenticated: chain or name, told apart by
curl's message) and 77 (CA file problem) reject as chain/name; 35 (handshake), 28 (timeout), 56
(receive failure) reject as handshake; 7 reject as connect; anything else is a handshake reject
with curl's own message.
"""

import os
import re
import subprocess
import tempfile
import time

import mralab_adapter as lib

TIMEOUT = 8
_EMPTY_STORE = None


def empty_store():
    """A CA file with one throwaway certificate nobody chains to: curl wants a non-empty file."""
    global _EMPTY_STORE
    if _EMPTY_STORE is None:
        folder = tempfile.mkdtemp(prefix="mralab-curl-")
        _EMPTY_STORE = os.path.join(folder, "nobody.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", os.path.join(folder, "nobody.key"), "-out", _EMPTY_STORE, "-subj", "/CN=mralab empty trust store",
             "-days", "3650"],
            check=True, capture_output=True,
        )
    return _EMPTY_STORE


def curl(session, request, verify, check_name):
    host, port = request["host"], request["port"]
    loop_ip, loop_port = request["connect"].rsplit(":", 1)
    url_host = host if request["sni"] is not None else host
    args = ["curl", "-sS", "--max-time", str(TIMEOUT - 1), "-o", "-", "-w", "\n%{http_code}"]
    args += ["--connect-to", f"{host}:{port}:{loop_ip}:{loop_port}", "-X", request["method"]]
    args += ["--cacert", session["trust_store_pem"] if session["trust_store_count"] else empty_store()]
    args += ["--capath", tempfile.gettempdir() + "/mralab-no-capath"]
    if session["ciphers"]:
        args += ["--ciphers", ":".join(session["ciphers"])]
    versions = session["tls_versions"]
    args += ["--tlsv1.2"] + (["--tls-max", "1.2"] if versions == ["1.2"] else [])
    if session.get("client_cert_pem") and session.get("client_key_pem"):
        args += ["--cert", session["client_cert_pem"], "--key", session["client_key_pem"]]
    if not verify:
        args += ["--insecure"]
    elif not check_name:
        # curl has no switch for "chain but not name"; see the module doc.
        return None
    args += [f"https://{url_host}:{port}{request['path']}"]
    proc = subprocess.run(args, capture_output=True, timeout=TIMEOUT)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace").strip()


def classify(code, message):
    if code in (60, 77, 51):
        lowered = message.lower()
        if "subject name" in lowered or "does not match" in lowered or "no alternative certificate" in lowered:
            return "name"
        return "chain"
    if code == 7:
        return "connect"
    return "handshake"


def handle(session, request):
    mode = lib.Mode(session, request)
    if mode.unsupported:
        return {"verdict": "unsupported", "error": mode.unsupported}
    if mode.verify and abs(session["validation_time"] - time.time()) > 86400:
        return {"verdict": "unsupported", "error": "curl cannot validate at a time other than now"}
    result = curl(session, request, mode.verify, mode.check_name)
    if result is None:
        return {"verdict": "unsupported", "error": "curl cannot check the chain without the name (properties SIGNATURE)"}
    code, out, err = result
    # curl's first stderr line, without its "curl: (NN) " prefix or the library version.
    message = re.sub(r"^curl: \(\d+\) ", "", err.splitlines()[0]) if err else ""
    message = re.sub(r"OpenSSL/[\d.]+[a-z]?: ", "", message)
    log = [f"curl: exit {code}: {message}"] if code else []
    if code == 0:
        body, _, status = out.rpartition("\n")
        return {"verdict": "accept", "status": int(status or 0), "body": body, "log_lines": log}
    check = classify(code, message)
    failure = {"check": check, "error": f"curl exit {code}: {message}", "log_lines": log}
    if mode.permissive and check in ("chain", "name"):
        code2, out2, _ = curl(session, request, False, False)
        if code2 == 0:
            body, _, status = out2.rpartition("\n")
            return dict(failure, verdict="accept", status=int(status or 0), body=body)
    return dict(failure, verdict="reject")


if __name__ == "__main__":
    lib.run(handle)
