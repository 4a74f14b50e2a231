"""A downstream service's check of a tokensmith access token, with PyJWT.

The key comes from the published JWKS through jwt.PyJWKClient (picked by the token's `kid`), or
is the shared secret under HS*; the algorithm is pinned by the caller, as a downstream service
pins it in its configuration, so a token under any other algorithm is refused. Keys shorter than
RFC 7518 allows are refused too, and `exp`, `iat` and `sub` must be present.

Usage:
  verify_jwks.py --algorithm ALG (--jwks-url URL | --secret SECRET) [--issuer ISS] [--audience AUD] TOKEN
      prints the verified claims as JSON and exits 0; otherwise prints the error on stderr and exits 1.
  verify_jwks.py --batch CHECK...
      each CHECK a JSON object with the same fields ("token", "algorithm", "jwks_url" or "secret",
      optionally "issuer" and "audience"); prints a JSON list, one {"claims": …} or {"error": …}
      per CHECK, and exits 0: several tokens checked by one interpreter.
"""

import argparse
import json
import sys

import jwt

OPTIONS = {"require": ["exp", "iat", "sub"], "enforce_minimum_key_length": True}

# One client per JWKS URL: a downstream service fetches the set once and picks keys from it.
_clients = {}


def verify(token, algorithm, jwks_url=None, secret=None, issuer=None, audience=None):
    """The token's claims, or an exception from PyJWT."""
    if (jwks_url is None) == (secret is None):
        raise ValueError("give exactly one of jwks_url and secret")
    if jwks_url is not None:
        client = _clients.setdefault(jwks_url, jwt.PyJWKClient(jwks_url, timeout=10))
        key = client.get_signing_key_from_jwt(token)
    else:
        key = secret
    return jwt.decode(token, key, algorithms=[algorithm], issuer=issuer, audience=audience, options=OPTIONS)


def describe(error):
    return f"{type(error).__name__}: {error}"


def batch(checks):
    answers = []
    for text in checks:
        check = json.loads(text)
        try:
            answers.append({"claims": verify(**check)})
        except Exception as error:  # noqa: BLE001  (every refusal is an answer)
            answers.append({"error": describe(error)})
    print(json.dumps(answers))


def main():
    if sys.argv[1:2] == ["--batch"]:
        batch(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithm", required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--jwks-url")
    source.add_argument("--secret")
    parser.add_argument("--issuer")
    parser.add_argument("--audience")
    parser.add_argument("token")
    args = parser.parse_args()
    try:
        claims = verify(
            args.token,
            args.algorithm,
            jwks_url=args.jwks_url,
            secret=args.secret,
            issuer=args.issuer,
            audience=args.audience,
        )
    except Exception as error:  # noqa: BLE001
        sys.exit(f"refused: {describe(error)}")
    print(json.dumps(claims))


if __name__ == "__main__":
    main()
