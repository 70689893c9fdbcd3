#!/usr/bin/python3
"""JWT interoperability: tokens minted by PyJWT (Debian's python3-jwt) with keys
made by the openssl CLI must get exactly the expected verdict from libchatcore,
and tokens minted by cc_jwt_sign_hmac must decode with PyJWT.

usage: /usr/bin/python3 jwt_interop.py JWT_VERIFY_TOOL OPENSSL

Run with Debian's interpreter (python3-jwt lives in /usr/lib/python3/dist-packages).
The cases, with their expected outcome in the fourth column, are written to a
file in a temporary directory that the tool reads in one run (--batch)."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time

import jwt

ISS = "https://issuer.test"
AUD = "chat-gateway"
ALGS = ["HS256", "HS384", "HS512", "RS256", "ES256"]
HMAC_KEY_LEN = {"HS256": 32, "HS384": 48, "HS512": 64}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main():
    tool, openssl = sys.argv[1], sys.argv[2]
    if not jwt.algorithms.has_crypto:
        print("FAIL PyJWT has no RS256/ES256 support: install python3-cryptography")
        return 1
    now = int(time.time())
    failures = []

    with tempfile.TemporaryDirectory(prefix="jwt-interop-") as tmp:

        def path(name):
            return os.path.join(tmp, name)

        def openssl_run(*args):
            subprocess.run([openssl, *args], check=True, capture_output=True)

        # Keys: for each algorithm the right one and a wrong one.
        sign_keys, verify_files, wrong_sign_keys = {}, {}, {}
        for which in ("", "2"):
            openssl_run("genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", path(f"rsa{which}.pem"))
            openssl_run("pkey", "-in", path(f"rsa{which}.pem"), "-pubout",
                        "-out", path(f"rsa{which}.pub.pem"))
            openssl_run("genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-out", path(f"ec{which}.pem"))
            openssl_run("pkey", "-in", path(f"ec{which}.pem"), "-pubout",
                        "-out", path(f"ec{which}.pub.pem"))
        for alg, stem in (("RS256", "rsa"), ("ES256", "ec")):
            sign_keys[alg] = open(path(f"{stem}.pem"), "rb").read()
            wrong_sign_keys[alg] = open(path(f"{stem}2.pem"), "rb").read()
            verify_files[alg] = path(f"{stem}.pub.pem")
        for alg, n in HMAC_KEY_LEN.items():
            secret = os.urandom(n)
            with open(path(f"{alg}.key"), "wb") as f:
                f.write(secret)
            sign_keys[alg] = secret
            wrong_sign_keys[alg] = os.urandom(n)
            verify_files[alg] = path(f"{alg}.key")
        # A secret longer than the SHA-256 block (the library hashes it first).
        long_secret = os.urandom(200)
        with open(path("long.key"), "wb") as f:
            f.write(long_secret)

        def claims(**over):
            c = {"sub": "alice", "iss": ISS, "aud": AUD, "iat": now, "nbf": now,
                 "exp": now + 600}
            c.update(over)
            return {k: v for k, v in c.items() if v is not None}

        cases = []  # (name, verifier alg, key file, token, expected, expected sub)

        def add(name, alg, token, expected, sub="-", key_file=None):
            cases.append((name, alg, key_file or verify_files[alg], token, expected, sub))

        for alg in ALGS:
            key, wrong = sign_keys[alg], wrong_sign_keys[alg]
            add(f"{alg} valid", alg,
                jwt.encode(claims(sub=f"user-{alg}"), key, algorithm=alg), "OK",
                f"user-{alg}")
            add(f"{alg} aud list", alg,
                jwt.encode(claims(aud=["other", AUD]), key, algorithm=alg), "OK", "alice")
            add(f"{alg} custom header", alg,
                jwt.encode(claims(), key, algorithm=alg, headers={"kid": "k1"}), "OK",
                "alice")
            add(f"{alg} expired", alg,
                jwt.encode(claims(iat=now - 1200, nbf=now - 1200, exp=now - 600), key,
                           algorithm=alg), "JWT_EXPIRED")
            add(f"{alg} not yet valid", alg,
                jwt.encode(claims(nbf=now + 300), key, algorithm=alg),
                "JWT_NOT_YET_VALID")
            add(f"{alg} wrong key", alg, jwt.encode(claims(), wrong, algorithm=alg),
                "JWT_SIGNATURE")
            add(f"{alg} wrong aud", alg,
                jwt.encode(claims(aud="billing"), key, algorithm=alg), "JWT_AUDIENCE")
            add(f"{alg} wrong aud list", alg,
                jwt.encode(claims(aud=["billing", "x"]), key, algorithm=alg),
                "JWT_AUDIENCE")
            add(f"{alg} wrong iss", alg,
                jwt.encode(claims(iss="https://evil.test"), key, algorithm=alg),
                "JWT_ISSUER")
            add(f"{alg} no sub", alg, jwt.encode(claims(sub=None), key, algorithm=alg),
                "JWT_CLAIM")
            add(f"{alg} no exp", alg, jwt.encode(claims(exp=None), key, algorithm=alg),
                "JWT_CLAIM")
            add(f"{alg} alg none", alg, jwt.encode(claims(), None, algorithm="none"),
                "JWT_ALG")
            tok = jwt.encode(claims(), key, algorithm=alg)
            h, p, s = tok.split(".")
            add(f"{alg} tampered payload", alg,
                f"{h}.{b64url(json.dumps(claims(sub='admin')).encode())}.{s}",
                "JWT_SIGNATURE")
            add(f"{alg} padded", alg, f"{h}.{p}.{s}" + "=" * (-len(s) % 4 or 1),
                "JWT_MALFORMED")

        # Every other algorithm's token is refused by the pinned verifier.
        for alg in ALGS:
            for other in ALGS:
                if other != alg:
                    add(f"{other} token to {alg} verifier", alg,
                        jwt.encode(claims(), sign_keys[other], algorithm=other),
                        "JWT_ALG")

        # Algorithm confusion: HS256 "signed" with the RSA/EC public key PEM
        # (PyJWT refuses to do it, so it is built by hand).
        for alg in ("RS256", "ES256"):
            pem = open(verify_files[alg], "rb").read()
            h = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
            p = b64url(json.dumps(claims()).encode())
            tag = hmac.new(pem, f"{h}.{p}".encode(), hashlib.sha256).digest()
            add(f"{alg} confusion HS256", alg, f"{h}.{p}.{b64url(tag)}", "JWT_ALG")

        add("HS256 long secret", "HS256",
            jwt.encode(claims(sub="long"), long_secret, algorithm="HS256"), "OK",
            "long", key_file=path("long.key"))

        batch = path("cases.tsv")
        with open(batch, "w") as f:
            for name, alg, key_file, token, expected, _ in cases:
                f.write(f"{alg}\t{key_file}\t{token}\t{expected}\t{name}\n")
        out = subprocess.run(
            [tool, "--batch", batch, "--iss", ISS, "--aud", AUD, "--now", str(now)],
            check=True, capture_output=True, text=True).stdout.splitlines()
        if len(out) != len(cases):
            failures.append(f"tool printed {len(out)} lines for {len(cases)} cases")
        for (name, _, _, _, expected, sub), line in zip(cases, out):
            want = f"{expected}\t{sub}"
            if line != want:
                failures.append(f"{name}: got {line!r}, want {want!r}")

        # Single-token mode and its exit status.
        single = subprocess.run(
            [tool, "--alg", "ES256", "--key-file", verify_files["ES256"], "--iss", ISS,
             "--aud", AUD, "--token", jwt.encode(claims(), sign_keys["ES256"],
                                                 algorithm="ES256")],
            capture_output=True, text=True)
        if single.returncode != 0 or single.stdout.strip() != "OK alice":
            failures.append(f"single mode: {single.returncode} {single.stdout!r}")

        # Tokens from cc_jwt_sign_hmac decode with PyJWT.
        for alg in HMAC_KEY_LEN:
            c = claims(sub=f"minted-{alg}", extra={"nested": [1, "two"]})
            tok = subprocess.run(
                [tool, "--sign", "--alg", alg, "--key-file", verify_files[alg],
                 "--claims", json.dumps(c)],
                check=True, capture_output=True, text=True).stdout.strip()
            try:
                got = jwt.decode(tok, sign_keys[alg], algorithms=[alg], audience=AUD,
                                 issuer=ISS)
                header = jwt.get_unverified_header(tok)
                if got != c:
                    failures.append(f"sign {alg}: decoded {got}, want {c}")
                if header != {"alg": alg, "typ": "JWT"}:
                    failures.append(f"sign {alg}: header {header}")
            except jwt.PyJWTError as e:
                failures.append(f"sign {alg}: PyJWT refused {tok}: {e!r}")

    for f in failures:
        print("FAIL", f)
    print(f"{len(cases)} verify cases, {len(HMAC_KEY_LEN)} signing cases, "
          f"{len(failures)} failures (PyJWT {jwt.__version__})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
