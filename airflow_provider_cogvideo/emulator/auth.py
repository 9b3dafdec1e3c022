"""Authentication: the raw ``id.secret`` key or an HS256 JWT with millisecond claims, as the
official SDK signs it.

Only the outcome (which key id) leaves this module; the credential itself is never logged, stored
or echoed in an error message.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping

import jwt
from jwt.algorithms import HMACAlgorithm
from jwt.utils import base64url_decode

from airflow_provider_cogvideo.emulator.config import ApiKey
from airflow_provider_cogvideo.emulator.wire import WireError

_HS256 = HMACAlgorithm(HMACAlgorithm.SHA256)


def authenticate(header: str | None, keys: Mapping[str, ApiKey]) -> ApiKey:
    """The key an ``Authorization`` header value proves, or a 401 :class:`WireError`.

    ``Bearer <credential>`` or the bare credential (older SDKs and the Vidu cURL examples send it
    without "Bearer"). A credential with two dots is a JWT, anything else a raw key.
    """
    scheme, _, rest = (header or "").strip().partition(" ")
    credential = rest.strip() if scheme.lower() == "bearer" else (header or "").strip()
    if not credential:
        raise WireError("1001", "Authorization header is missing (缺少Authorization)")
    if credential.count(".") == 2:
        return _verify_jwt(credential, keys)
    key_id, dot, secret = credential.partition(".")
    if not dot:
        raise WireError("1002", "Authorization token is invalid (Authorization Token非法)")
    key = keys.get(key_id)
    if key is None or not hmac.compare_digest(key.secret.encode(), secret.encode()):
        raise WireError("1000", "Authentication failed: unknown API key (身份验证失败)")
    return key


def _verify_jwt(token: str, keys: Mapping[str, ApiKey]) -> ApiKey:
    invalid = WireError("1002", "Authorization token is invalid (Authorization Token非法)")
    try:
        header = jwt.get_unverified_header(token)
        # exp is in milliseconds (non-standard), so PyJWT's own time checks are off; checked below.
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise invalid from None
    if header.get("alg") != "HS256" or header.get("sign_type") != "SIGN":
        raise invalid
    key = keys.get(str(claims.get("api_key")))
    if key is None:
        raise WireError("1000", "Authentication failed: unknown API key (身份验证失败)")
    signing_input, _, signature = token.rpartition(".")
    try:
        good = _HS256.verify(signing_input.encode(), key.secret.encode(), base64url_decode(signature))
    except (ValueError, TypeError):
        good = False
    if not good:
        raise invalid
    exp, timestamp = claims.get("exp"), claims.get("timestamp")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (exp, timestamp)):
        raise invalid
    if exp <= time.time() * 1000:
        raise WireError("1003", "Authorization token has expired (Authorization Token已过期)")
    return key
