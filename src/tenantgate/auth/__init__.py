"""Identity and authentication: API keys, JWT, principals, platform keys."""

from tenantgate.auth._apikeys import KeyKind, PresentedKey, generate_key, hash_key, parse_key
from tenantgate.auth._authenticator import Authenticator, PlatformPrincipal, system_context
from tenantgate.auth._console import ConsoleAuth, ConsoleLogin, ConsoleTimeouts
from tenantgate.auth._jwt import JwtVerifier, VerifiedToken
from tenantgate.auth._keys import IssuedKey, KeyInfo, KeyService, require_manager
from tenantgate.auth._passwords import PasswordService
from tenantgate.auth._pepper import load_pepper
from tenantgate.auth._platform import PlatformKeyInfo, PlatformKeys
from tenantgate.auth._principals import Principal, PrincipalService

__all__ = [
    "Authenticator",
    "ConsoleAuth",
    "ConsoleLogin",
    "ConsoleTimeouts",
    "IssuedKey",
    "JwtVerifier",
    "KeyInfo",
    "KeyKind",
    "KeyService",
    "PasswordService",
    "PlatformKeyInfo",
    "PlatformKeys",
    "PlatformPrincipal",
    "PresentedKey",
    "Principal",
    "PrincipalService",
    "VerifiedToken",
    "generate_key",
    "hash_key",
    "load_pepper",
    "parse_key",
    "require_manager",
    "system_context",
]
