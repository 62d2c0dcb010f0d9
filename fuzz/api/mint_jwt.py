"""Prints an HS256 JWT for keyward's admin API: mint_jwt.py SECRET TENANT SCOPE."""

import base64
import hashlib
import hmac
import json
import sys
import time


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> None:
    secret, tenant, scope = sys.argv[1:4]
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "sub": "schemathesis",
        "tenant_id": tenant,
        "scope": scope,
        "exp": int(time.time()) + 3600,
    }
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    print(f"{signing_input}.{b64(signature)}")


if __name__ == "__main__":
    main()
