"""mralab adapter: `openssl s_client -verify_return_error` (OpenSSL 3's own verdicts).

Run through openssl.sh. Per request: `openssl s_client -connect <loopback> -CAfile <trust store>
-attime <validation time> -cipher <Expressway's order> [-cert/-key] -verify_return_error
-verify_hostname <FQDN> | -verify_ip <IP>`, sending the HTTP request on stdin so that discovery
gets the node's answer. Verdicts, error numbers and depths are OpenSSL's.
"""

import re
import subprocess

import mralab_adapter as lib

TIMEOUT = 8


def describe_key(line):
    m = re.search(r"PKEY: (\S+), (\d+) \(bit\)", line)
    if not m:
        return None
    kind = {"rsaEncryption": "rsa", "id-ecPublicKey": "ecdsa-p"}.get(m.group(1).rstrip(","), m.group(1))
    return f"{kind}{'-' if kind == 'rsa' else ''}{m.group(2)}"


def chain_of(text):
    """The `Certificate chain` section: subject, issuer, key and PEM of each served certificate."""
    chain = []
    section = text.split("Certificate chain", 1)
    if len(section) < 2:
        return chain
    lines = []
    for line in section[1].splitlines():
        if line.strip() == "---":
            break
        lines.append(line)
    pem = None
    for line in lines:
        m = re.match(r"^\s*\d+ s:(.*)$", line)
        if m:
            chain.append({"subject": m.group(1).replace(" = ", "=")})
            continue
        if chain and line.strip().startswith("i:"):
            chain[-1]["issuer"] = line.strip()[2:].replace(" = ", "=")
        elif chain and line.strip().startswith("a:"):
            key = describe_key(line)
            if key:
                chain[-1]["key"] = key
        elif line.startswith("-----BEGIN CERTIFICATE-----"):
            pem = [line]
        elif pem is not None:
            pem.append(line)
            if line.startswith("-----END CERTIFICATE-----"):
                chain[-1]["pem"] = "\n".join(pem) + "\n"
                pem = None
    return chain


def s_client(session, request, verify, check_name):
    host = request["host"]
    args = ["openssl", "s_client", "-connect", request["connect"], "-showcerts", "-ign_eof"]
    args += ["-no-CApath", "-no-CAstore"]
    if session["trust_store_count"] > 0:
        args += ["-CAfile", session["trust_store_pem"]]
    else:
        args += ["-no-CAfile"]
    args += ["-attime", str(session["validation_time"])]
    if session["ciphers"]:
        args += ["-cipher", ":".join(session["ciphers"])]
    versions = session["tls_versions"]
    if versions == ["1.2"]:
        args += ["-tls1_2"]
    elif versions == ["1.3"]:
        args += ["-tls1_3"]
    else:
        args += ["-min_protocol", "TLSv1.2"]
    if session.get("client_cert_pem") and session.get("client_key_pem"):
        args += ["-cert", session["client_cert_pem"], "-key", session["client_key_pem"]]
    if request["sni"] is not None:
        args += ["-servername", request["sni"]]
    else:
        args += ["-noservername"]
    if verify:
        args += ["-verify_return_error"]
        if check_name:
            args += ["-verify_ip", host] if request["sni"] is None else ["-verify_hostname", host]
    proc = subprocess.run(args, input=lib.http_request(request), capture_output=True, timeout=TIMEOUT)
    return proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace")


def handle(session, request):
    mode = lib.Mode(session, request)
    if mode.unsupported:
        return {"verdict": "unsupported", "error": mode.unsupported}
    try:
        code, out, err = s_client(session, request, mode.verify, mode.check_name)
    except subprocess.TimeoutExpired:
        # A node that never finishes is the node's failure, not the adapter's.
        return {"verdict": "reject", "check": "handshake", "error": f"no answer from the node within {TIMEOUT} s"}
    text = out.decode("utf-8", "replace")
    answer = {"served_chain": chain_of(text), "log_lines": []}
    m = re.search(r"New, (TLSv[\d.]+), Cipher is (\S+)", text)
    if m:
        answer["tls"] = {"version": m.group(1), "cipher": m.group(2)}
    both = err + "\n" + text
    verify_error = re.search(r"verify error:num=(\d+):(.*)", both)
    failure = None
    if verify_error:
        num, reason = int(verify_error.group(1)), verify_error.group(2).strip()
        depths = [int(d) for d in re.findall(r"^depth=(\d+) ", both[: verify_error.start()], re.M)]
        depth = depths[-1] if depths else 0
        check = "name" if num in (62, 63, 64) else "chain"
        failure = {"check": check, "error": reason, "code": num, "depth": depth}
        if mode.verify:
            answer["log_lines"].append(f"openssl: verify error:num={num}:{reason} depth={depth}")
    errors = [lib.stable(l) for l in err.splitlines() if ":error:" in l]
    answer["log_lines"] += errors
    status, body = lib.parse_http(out[out.find(b"HTTP/1."):] if b"HTTP/1." in out else b"")
    if mode.verify and failure and code != 0 or (status is None and code != 0):
        if failure is None:
            reason = errors[-1] if errors else (err.strip().splitlines() or ["s_client failed"])[-1]
            check = "connect" if "connect:errno" in err else "handshake"
            failure = {"check": check, "error": lib.stable(reason)}
        if mode.permissive and failure["check"] in ("chain", "name"):
            # PERMISSIVE: logged, then the request goes through unverified.
            code2, out2, _ = s_client(session, request, False, False)
            status2, body2 = lib.parse_http(out2[out2.find(b"HTTP/1."):] if b"HTTP/1." in out2 else b"")
            if status2 is not None:
                return dict(answer, verdict="accept", status=status2, body=body2, **failure)
        return dict(answer, verdict="reject", **failure)
    if status is None:
        return dict(answer, verdict="reject", check="handshake", error="no HTTP response from the node")
    return dict(answer, verdict="accept", status=status, body=body)


if __name__ == "__main__":
    lib.run(handle)
