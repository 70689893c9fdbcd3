"""JWT verification through the bindings: every algorithm, every refusal with
its CC_ERR_* name, the options, clocks, fallbacks and lifetimes."""

import base64
import gc
import json
import threading

import jwt as pyjwt  # Debian's python3-jwt: tokens nobody here wrote
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import chatcore
from chatcore import ErrorCode, JWTError
from chatcore.jwt import Algorithm, Claims, Verifier, sign_hmac

NOW = 1_700_000_000
EXP = NOW + 3600
SECRETS = {"HS256": b"s" * 32, "HS384": b"t" * 48, "HS512": b"u" * 64}


def fixed(t=NOW):
    return lambda: t


def pem_pair(private):
    priv = private.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    pub = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return priv, pub


@pytest.fixture(scope="module")
def keys():
    """(signing key, verification key) per algorithm, and a second pair."""
    out = {}
    for which in ("", "2"):
        for alg, key in SECRETS.items():
            out[alg + which] = (key + which.encode(), key + which.encode())
        out["RS256" + which] = pem_pair(rsa.generate_private_key(65537, 2048))
        out["ES256" + which] = pem_pair(ec.generate_private_key(ec.SECP256R1()))
    return out


def mint(keys, alg, claims=None, which="", headers=None):
    body = {"sub": "alice", "exp": EXP, "iat": NOW} if claims is None else claims
    return pyjwt.encode(body, keys[alg + which][0], algorithm=alg, headers=headers)


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512", "RS256", "ES256"])
def test_every_algorithm_verifies(keys, alg):
    token = mint(keys, alg)
    with Verifier(alg, keys[alg][1], clock=fixed()) as v:
        assert v.algorithm is Algorithm[alg]
        assert v.verify(token) == Claims(sub="alice", exp=EXP, iat=NOW)
        # bytes, bytearray and str tokens are the same token
        assert v.verify(token.encode()) == v.verify(bytearray(token.encode()))
        # the same token under another key of the same algorithm is refused
        with pytest.raises(JWTError) as exc:
            v.verify(mint(keys, alg, which="2"))
        assert exc.value.name == "JWT_SIGNATURE"
        assert str(exc.value).startswith("CC_ERR_JWT_SIGNATURE: ")


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_sign_hmac_round_trip(alg):
    token = sign_hmac(alg, SECRETS[alg], {"sub": "bob", "exp": EXP})
    assert isinstance(token, str)
    assert pyjwt.decode(token, SECRETS[alg], algorithms=[alg],
                        options={"verify_exp": False})["sub"] == "bob"
    with Verifier(Algorithm[alg], SECRETS[alg], clock=fixed()) as v:
        assert v.verify(token) == Claims("bob", EXP, None)
    # claims given as JSON text, str or bytes, sign the same
    text = '{"sub":"bob","exp":%d}' % EXP
    assert sign_hmac(alg, SECRETS[alg], text) == sign_hmac(alg, SECRETS[alg],
                                                            text.encode())


def test_sign_hmac_refusals():
    with pytest.raises(JWTError) as exc:
        sign_hmac("HS256", b"short", {"sub": "a", "exp": EXP})
    assert exc.value.name == "JWT_KEY"
    with pytest.raises(chatcore.ChatcoreError) as exc:
        sign_hmac("HS256", SECRETS["HS256"], "[1, 2]")
    assert exc.value.name == "INVALID"
    with pytest.raises(chatcore.ChatcoreError) as exc:
        sign_hmac("RS256", SECRETS["HS256"], {"sub": "a"})
    assert exc.value.name == "INVALID"
    with pytest.raises(TypeError):
        sign_hmac("HS256", 12345, {"sub": "a"})


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_each_check_refuses_with_its_name(keys):
    key = SECRETS["HS256"]

    def hs(claims):
        return sign_hmac("HS256", key, claims)

    with Verifier("HS256", key, issuer="https://issuer.test", audience="chat",
                  clock=fixed()) as v:
        good = {"sub": "alice", "exp": EXP, "iss": "https://issuer.test", "aud": "chat"}
        assert v.verify(hs(good)).sub == "alice"
        cases = {
            "JWT_MALFORMED": "not.a-token",
            "JWT_ALG": mint(keys, "HS384"),
            "JWT_SIGNATURE": sign_hmac("HS256", b"x" * 32, good),
            "JWT_EXPIRED": hs(dict(good, exp=NOW)),
            "JWT_NOT_YET_VALID": hs(dict(good, nbf=NOW + 10)),
            "JWT_CLAIM": hs({k: val for k, val in good.items() if k != "exp"}),
            "JWT_ISSUER": hs(dict(good, iss="https://evil.test")),
            "JWT_AUDIENCE": hs(dict(good, aud=["other"])),
        }
        for name, token in cases.items():
            with pytest.raises(JWTError) as exc:
                v.verify(token)
            assert exc.value.name == name, token
            assert exc.value.code == ErrorCode[name]
        # alg "none" never passes
        none = b64url(b'{"alg":"none"}') + "." + b64url(json.dumps(good).encode()) + "."
        with pytest.raises(JWTError) as exc:
            v.verify(none)
        assert exc.value.name in ("JWT_MALFORMED", "JWT_ALG")
        # past the length cap: TOO_LARGE, not a JWTError
        with pytest.raises(chatcore.ChatcoreError) as exc:
            v.verify("a" * 9000)
        assert exc.value.name == "TOO_LARGE" and not isinstance(exc.value, JWTError)


def test_algorithm_confusion_is_refused(keys):
    """An HS256 token "signed" with the RSA public key must not pass an RS256
    verifier."""
    pub = keys["RS256"][1]
    forged = sign_hmac("HS256", b"k" * 32, {"sub": "mallory", "exp": EXP})
    with Verifier("RS256", pub, clock=fixed()) as v:
        with pytest.raises(JWTError) as exc:
            v.verify(forged)
        assert exc.value.name == "JWT_ALG"
    # and the public key is refused as an HMAC secret
    with pytest.raises(JWTError) as exc:
        Verifier("HS256", pub)
    assert exc.value.name == "JWT_KEY"


def test_key_errors(keys):
    with pytest.raises(JWTError) as exc:
        Verifier("HS512", b"k" * 63)
    assert exc.value.name == "JWT_KEY"
    with pytest.raises(JWTError) as exc:
        Verifier("ES256", keys["RS256"][1])  # an RSA key for ES256
    assert exc.value.name == "JWT_KEY"
    with pytest.raises(JWTError) as exc:
        Verifier("RS256", "-----BEGIN PUBLIC KEY-----\ngarbage\n")
    assert exc.value.name == "JWT_KEY"
    with pytest.raises(JWTError) as exc:
        Verifier("none", b"k" * 32)
    assert exc.value.name == "JWT_ALG"
    with pytest.raises(TypeError):
        Verifier("HS256", None)


def test_algorithm_names():
    for alg in Algorithm:
        assert Algorithm.from_name(alg.name) is alg
        assert alg.jws_name == alg.name
    with pytest.raises(JWTError) as exc:
        Algorithm.from_name("hs256")
    assert exc.value.name == "JWT_ALG"


def test_leeway_and_option_ranges():
    key = SECRETS["HS256"]
    token = sign_hmac("HS256", key, {"sub": "a", "exp": NOW - 5})
    with Verifier("HS256", key, leeway=10, clock=fixed()) as v:
        assert v.verify(token).exp == NOW - 5
    with Verifier("HS256", key, leeway=2, clock=fixed()) as v:
        with pytest.raises(JWTError, match="CC_ERR_JWT_EXPIRED"):
            v.verify(token)
    for kwargs in ({"leeway": 86401}, {"max_token_len": 15}, {"issuer": ""},
                   {"audience": "a\0b"}):
        with pytest.raises(chatcore.ChatcoreError) as exc:
            Verifier("HS256", key, **kwargs)
        assert exc.value.name == "INVALID", kwargs
    with Verifier("HS256", key, max_token_len=16) as v:
        with pytest.raises(chatcore.ChatcoreError, match="CC_ERR_TOO_LARGE"):
            v.verify(token)


def test_clock_is_used_and_its_exceptions_propagate():
    key = SECRETS["HS256"]
    token = sign_hmac("HS256", key, {"sub": "a", "exp": NOW + 10})
    now = [NOW]
    with Verifier("HS256", key, clock=lambda: now[0]) as v:
        assert v.verify(token).sub == "a"
        now[0] = NOW + 10.5  # float seconds work too
        with pytest.raises(JWTError, match="EXPIRED"):
            v.verify(token)

    def broken():
        raise RuntimeError("clock broke")

    with Verifier("HS256", key, clock=broken) as v:
        with pytest.raises(RuntimeError, match="clock broke"):
            v.verify(token)
    with Verifier("HS256", key, clock=lambda: "noon") as v:
        with pytest.raises(TypeError):
            v.verify(token)
    with Verifier("HS256", key, clock=lambda: -1) as v:
        with pytest.raises(ValueError):
            v.verify(token)


def test_fallback_outlives_its_close(keys):
    old = Verifier("HS256", SECRETS["HS256"], clock=fixed())
    new = Verifier("ES256", keys["ES256"][1], clock=fixed(), fallback=old)
    hs_token, es_token = mint(keys, "HS256"), mint(keys, "ES256")
    assert new.verify(es_token).sub == "alice"
    assert new.verify(hs_token).sub == "alice"
    # Closing the fallback first: it can no longer be used directly, but the
    # verifier that borrows it still works (the free waits for it).
    old.close()
    with pytest.raises(chatcore.ClosedError):
        old.verify(hs_token)
    del old
    gc.collect()  # the fallback's clock thunk must survive its Python object
    assert new.verify(hs_token).sub == "alice"
    with pytest.raises(JWTError, match="JWT_SIGNATURE"):
        new.verify(mint(keys, "ES256", which="2"))
    new.close()
    with pytest.raises(TypeError):
        Verifier("HS256", SECRETS["HS256"], fallback="old")
    closed = Verifier("HS256", SECRETS["HS256"])
    closed.close()
    with pytest.raises(chatcore.ClosedError):
        Verifier("HS256", SECRETS["HS256"], fallback=closed)


def test_use_after_close_raises(keys):
    v = Verifier("HS256", SECRETS["HS256"])
    with v as same:
        assert same is v and not v.closed
    assert v.closed
    v.close()  # idempotent
    with pytest.raises(chatcore.ClosedError) as exc:
        v.verify(mint(keys, "HS256"))
    assert exc.value.name == "CLOSED" and exc.value.code == -61
    assert "closed" in repr(v)


def test_threads_verify_while_another_closes(keys):
    """Verifies run without the GIL; closing meanwhile must never free the
    verifier under them: every call either verifies or raises ClosedError."""
    token = mint(keys, "RS256")
    v = Verifier("RS256", keys["RS256"][1], clock=fixed())
    results = []

    def worker():
        for _ in range(1_000_000):  # until close() (a bound against hanging)
            try:
                results.append(v.verify(token).sub)
            except chatcore.ClosedError:
                results.append("closed")
                return

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    while len(results) < 50:
        pass
    v.close()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert results.count("closed") == 4  # each thread saw the close
    assert set(results) == {"alice", "closed"}
