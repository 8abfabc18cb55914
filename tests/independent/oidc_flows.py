#!/usr/bin/env python3
"""Parapet's OpenID Connect provider driven by independent client libraries.

Authlib (OAuth2Session) performs the authorization code flow with PKCE (S256) for a confidential
and a public client, refreshes, revokes and runs the client-credentials grant; joserfc verifies
every ID token and access token against the issuer's JWKS. The browser part of the code flow
(log-in form of the console, CSRF token, redirects) is played with `requests`, as a browser
would. Negative cases: wrong PKCE verifier, reused code (which revokes what the code gave),
wrong redirect URI, another tenant's client, refresh-token reuse (which revokes the family).

Usage:
  oidc_flows.py --check-deps
  oidc_flows.py flows --issuer URL --username U --password P --client-id ID --client-secret S
                --public-client-id ID --redirect-uri URI --foreign-client-id ID
                --foreign-client-secret S
  oidc_flows.py verify --issuer URL --token JWT [--audience AUD]

`flows` prints one JSON object (the client-credentials access token among others) and exits 0
when every check passed; any failed check exits 1 with a message.
"""

import argparse
import base64
import hashlib
import json
import re
import sys
import urllib.parse


def check_deps():
    import authlib  # noqa: F401
    import joserfc  # noqa: F401
    import requests  # noqa: F401

    print(f"authlib {authlib.__version__}, joserfc {joserfc.__version__}, "
          f"requests {requests.__version__}")


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def discover(issuer):
    import requests

    r = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=30)
    check(r.status_code == 200, f"discovery answered {r.status_code}")
    meta = r.json()
    check(meta["issuer"] == issuer, f"discovery issuer {meta['issuer']!r} != {issuer!r}")
    check("S256" in meta["code_challenge_methods_supported"], "S256 not advertised")
    check("plain" not in meta["code_challenge_methods_supported"], "plain PKCE advertised")
    algs = meta["id_token_signing_alg_values_supported"]
    check("ES256" in algs and "RS256" in algs, f"ID token algorithms advertised: {algs}")
    jwks = requests.get(meta["jwks_uri"], timeout=30).json()
    check(jwks.get("keys"), "the JWKS is empty")
    return meta, jwks


def key_set(meta):
    import requests
    from joserfc.jwk import KeySet

    return KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=30).json())


def verify_jwt(meta, token, audience=None, nonce=None):
    """Verifies signature and claims of a JWT against the issuer's current JWKS."""
    from joserfc import jwt
    from joserfc.jwt import JWTClaimsRegistry

    tok = jwt.decode(token, key_set(meta), algorithms=["ES256", "RS256"])
    claims = {"iss": {"essential": True, "value": meta["issuer"]},
              "exp": {"essential": True}, "iat": {"essential": True},
              "sub": {"essential": True}}
    if audience is not None:
        claims["aud"] = {"essential": True, "value": audience}
    if nonce is not None:
        claims["nonce"] = {"essential": True, "value": nonce}
    JWTClaimsRegistry(**claims).validate(tok.claims)
    return tok


def at_hash(access_token):
    d = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(d[:16]).rstrip(b"=").decode()


class Browser:
    """A user agent: follows the provider's redirects, fills in the console's log-in form."""

    def __init__(self, issuer, username, password):
        import requests

        self.s = requests.Session()
        u = urllib.parse.urlsplit(issuer)
        self.origin = f"{u.scheme}://{u.netloc}"
        self.username = username
        self.password = password
        self.logins = 0

    def authorize(self, url, redirect_uri):
        """Follows `url` until the provider redirects to `redirect_uri`; returns that URL."""
        for _ in range(6):
            r = self.s.get(url, allow_redirects=False, timeout=30)
            if r.status_code != 303:
                return None, r
            loc = urllib.parse.urljoin(url, r.headers["location"])
            if loc.startswith(redirect_uri):
                return loc, r
            if urllib.parse.urlsplit(loc).path == "/console/login":
                url = self.login(loc)
            else:
                url = loc
        fail("too many redirects")

    def login(self, login_url):
        page = self.s.get(login_url, timeout=30)
        check(page.status_code == 200, f"log-in page answered {page.status_code}")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        nxt = re.search(r'name="next" value="([^"]+)"', page.text)
        check(csrf and nxt, "the log-in page lacks the csrf or next field")
        import html

        r = self.s.post(f"{self.origin}/console/login", data={
            "username": self.username, "password": self.password,
            "csrf": csrf.group(1), "next": html.unescape(nxt.group(1)),
        }, headers={"Origin": self.origin}, allow_redirects=False, timeout=30)
        check(r.status_code == 303, f"log-in answered {r.status_code}: {r.text[:300]}")
        self.logins += 1
        return urllib.parse.urljoin(self.origin, r.headers["location"])


def code_flow(meta, browser, client, redirect_uri, scope="openid profile offline_access"):
    """Runs the code flow with an authlib client; returns (token, nonce, code_verifier)."""
    from authlib.common.security import generate_token

    verifier = generate_token(64)
    nonce = generate_token(20)
    client.redirect_uri = redirect_uri
    client.scope = scope
    url, state = client.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
    back, r = browser.authorize(url, redirect_uri)
    check(back, f"authorization did not come back: {r.status_code} {r.text[:300]}")
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back).query))
    check(q.get("state") == state, "state not returned")
    check(q.get("iss") == meta["issuer"], "iss (RFC 9207) not returned")
    token = client.fetch_token(meta["token_endpoint"], authorization_response=back,
                               code_verifier=verifier)
    return token, nonce, verifier


def raw_code(meta, browser, client_id, redirect_uri, verifier):
    """An authorization code obtained without authlib (for the negative cases)."""
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    url = meta["authorization_endpoint"] + "?" + urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
        "scope": "openid", "state": "s1", "code_challenge": challenge,
        "code_challenge_method": "S256"})
    back, r = browser.authorize(url, redirect_uri)
    check(back, f"authorization did not come back: {r.status_code}")
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back).query))["code"]


def token_post(meta, data, auth):
    import requests

    return requests.post(meta["token_endpoint"], data=data, auth=auth, timeout=30)


def introspect(meta, token, auth):
    import requests

    r = requests.post(meta["introspection_endpoint"], data={"token": token}, auth=auth,
                      timeout=30)
    check(r.status_code == 200, f"introspection answered {r.status_code}: {r.text}")
    return r.json()


def flows(a):
    from authlib.integrations.requests_client import OAuth2Session

    meta, _ = discover(a.issuer)
    browser = Browser(a.issuer, a.username, a.password)
    auth = (a.client_id, a.client_secret)
    out = {}

    # 1. Code flow with PKCE, confidential client (client_secret_basic).
    conf = OAuth2Session(a.client_id, a.client_secret, code_challenge_method="S256")
    token, nonce, _ = code_flow(meta, browser, conf, a.redirect_uri)
    check(browser.logins == 1, "the user was not sent through the console log-in")
    idt = verify_jwt(meta, token["id_token"], audience=a.client_id, nonce=nonce)
    check(idt.header["alg"] == a.id_token_alg,
          f"the confidential client's ID token is {idt.header['alg']}, not {a.id_token_alg}")
    rsa_keys = [k for k in key_set(meta).keys if k.key_type == "RSA"]
    check(rsa_keys, "the JWKS has no RSA key")
    check(idt.claims["preferred_username"] == a.username.split("@")[0],
          f"ID token names {idt.claims.get('preferred_username')!r}")
    check(idt.claims["at_hash"] == at_hash(token["access_token"]), "at_hash does not match")
    verify_jwt(meta, token["access_token"], audience=a.client_id)
    ui = conf.get(meta["userinfo_endpoint"])
    check(ui.status_code == 200, f"userinfo answered {ui.status_code}")
    check(ui.json()["sub"] == idt.claims["sub"], "userinfo sub differs from the ID token's")
    info = introspect(meta, token["access_token"], auth)
    check(info["active"] is True and info["client_id"] == a.client_id, f"introspection: {info}")
    out["code_flow_sub"] = idt.claims["sub"]

    # 2. Refresh with rotation; reusing the old refresh token revokes the whole family.
    old_refresh = token["refresh_token"]
    new = conf.refresh_token(meta["token_endpoint"], refresh_token=old_refresh)
    check(new["refresh_token"] != old_refresh, "the refresh token was not rotated")
    check(introspect(meta, new["access_token"], auth)["active"], "refreshed token inactive")
    r = token_post(meta, {"grant_type": "refresh_token", "refresh_token": old_refresh}, auth)
    check(r.status_code == 400 and r.json()["error"] == "invalid_grant",
          f"reused refresh token: {r.status_code} {r.text}")
    check(not introspect(meta, new["refresh_token"], auth)["active"],
          "the family's newest refresh token survived the reuse")
    check(not introspect(meta, new["access_token"], auth)["active"],
          "the family's access token survived the reuse")
    r = token_post(meta, {"grant_type": "refresh_token",
                          "refresh_token": new["refresh_token"]}, auth)
    check(r.status_code == 400, "a revoked refresh token still works")

    # 3. Revocation (RFC 7009) of an access token.
    token, _, _ = code_flow(meta, browser, conf, a.redirect_uri)
    conf.revoke_token(meta["revocation_endpoint"], token=token["access_token"],
                      token_type_hint="access_token")
    check(not introspect(meta, token["access_token"], auth)["active"],
          "a revoked access token is still active")
    check(introspect(meta, token["refresh_token"], auth)["active"],
          "revoking an access token revoked its refresh token")
    ui = OAuth2Session(a.client_id, token={"access_token": token["access_token"],
                                          "token_type": "Bearer"}).get(meta["userinfo_endpoint"])
    check(ui.status_code == 401, f"userinfo with a revoked token answered {ui.status_code}")

    # 4. Public client: PKCE only, no secret; the browser's session is reused (no new log-in).
    pub = OAuth2Session(a.public_client_id, token_endpoint_auth_method="none",
                        code_challenge_method="S256")
    token, nonce, _ = code_flow(meta, browser, pub, a.redirect_uri, scope="openid profile")
    check(browser.logins == 1, "a logged-in user was asked to log in again")
    pidt = verify_jwt(meta, token["id_token"], audience=a.public_client_id, nonce=nonce)
    check(pidt.header["alg"] == "ES256", f"the public client's ID token is {pidt.header['alg']}")

    # 5. Client credentials, both client authentication methods.
    for method in ("client_secret_basic", "client_secret_post"):
        cc = OAuth2Session(a.client_id, a.client_secret, scope="reports:read",
                           token_endpoint_auth_method=method)
        t = cc.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
        check("refresh_token" not in t and "id_token" not in t,
              "client credentials gave a refresh or ID token")
        at = verify_jwt(meta, t["access_token"], audience=a.client_id)
        check(at.claims["sub"] == a.client_id and at.claims["scope"] == "reports:read",
              f"client-credentials claims: {at.claims}")
        out["client_credentials_token"] = t["access_token"]
    r = token_post(meta, {"grant_type": "client_credentials"}, (a.client_id, "pcs_wrong"))
    check(r.status_code == 401 and r.json()["error"] == "invalid_client",
          f"a wrong client secret: {r.status_code} {r.text}")

    # 6. Negative cases of the code flow.
    verifier = "v" * 50
    code = raw_code(meta, browser, a.client_id, a.redirect_uri, verifier)
    r = token_post(meta, {"grant_type": "authorization_code", "code": code,
                          "redirect_uri": a.redirect_uri, "code_verifier": "w" * 50}, auth)
    check(r.status_code == 400 and r.json()["error"] == "invalid_grant",
          f"wrong PKCE verifier: {r.status_code} {r.text}")
    code = raw_code(meta, browser, a.client_id, a.redirect_uri, verifier)
    r = token_post(meta, {"grant_type": "authorization_code", "code": code,
                          "redirect_uri": a.redirect_uri + "x", "code_verifier": verifier},
                   auth)
    check(r.status_code == 400 and r.json()["error"] == "invalid_grant",
          f"wrong redirect_uri at the token endpoint: {r.status_code} {r.text}")
    code = raw_code(meta, browser, a.client_id, a.redirect_uri, verifier)
    first = token_post(meta, {"grant_type": "authorization_code", "code": code,
                              "redirect_uri": a.redirect_uri, "code_verifier": verifier}, auth)
    check(first.status_code == 200, f"a good code was refused: {first.text}")
    again = token_post(meta, {"grant_type": "authorization_code", "code": code,
                              "redirect_uri": a.redirect_uri, "code_verifier": verifier}, auth)
    check(again.status_code == 400 and again.json()["error"] == "invalid_grant",
          f"a reused code: {again.status_code} {again.text}")
    check(not introspect(meta, first.json()["access_token"], auth)["active"],
          "the tokens of a reused code were not revoked")
    # PKCE is mandatory: a request without a challenge is sent back with an error.
    url = meta["authorization_endpoint"] + "?" + urllib.parse.urlencode({
        "response_type": "code", "client_id": a.client_id, "redirect_uri": a.redirect_uri,
        "scope": "openid", "state": "s2"})
    back, _ = browser.authorize(url, a.redirect_uri)
    check(back and "error=invalid_request" in back and "code=" not in back,
          f"no PKCE: {back}")
    # An unregistered redirect URI is never redirected to.
    url = meta["authorization_endpoint"] + "?" + urllib.parse.urlencode({
        "response_type": "code", "client_id": a.client_id,
        "redirect_uri": "https://evil.example/cb", "scope": "openid",
        "code_challenge": "a" * 43, "code_challenge_method": "S256"})
    back, r = browser.authorize(url, "https://evil.example/cb")
    check(back is None and r.status_code == 400, f"unregistered redirect URI: {r.status_code}")
    # Another tenant's client does not exist for this issuer.
    url = meta["authorization_endpoint"] + "?" + urllib.parse.urlencode({
        "response_type": "code", "client_id": a.foreign_client_id,
        "redirect_uri": a.redirect_uri, "scope": "openid",
        "code_challenge": "a" * 43, "code_challenge_method": "S256"})
    back, r = browser.authorize(url, a.redirect_uri)
    check(back is None and r.status_code == 400, f"foreign client at authorize: {r.status_code}")
    r = token_post(meta, {"grant_type": "client_credentials"},
                   (a.foreign_client_id, a.foreign_client_secret))
    check(r.status_code == 401 and r.json()["error"] == "invalid_client",
          f"foreign client at the token endpoint: {r.status_code} {r.text}")

    print(json.dumps(out))


def verify(a):
    meta, _ = discover(a.issuer)
    try:
        tok = verify_jwt(meta, a.token, audience=a.audience)
    except Exception as e:  # any verification failure is a failed check
        fail(f"token does not verify against the JWKS: {type(e).__name__}: {e}")
    print(json.dumps({"kid": tok.header.get("kid"), "sub": tok.claims["sub"]}))


def main():
    if sys.argv[1:] == ["--check-deps"]:
        check_deps()
        return
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("flows")
    for name in ("issuer", "username", "password", "client-id", "client-secret",
                 "public-client-id", "redirect-uri", "foreign-client-id",
                 "foreign-client-secret"):
        f.add_argument(f"--{name}", required=True)
    f.add_argument("--id-token-alg", default="ES256",
                   help="the algorithm the confidential client registered for its ID tokens")
    v = sub.add_parser("verify")
    v.add_argument("--issuer", required=True)
    v.add_argument("--token", required=True)
    v.add_argument("--audience")
    a = p.parse_args()
    flows(a) if a.cmd == "flows" else verify(a)


if __name__ == "__main__":
    main()
