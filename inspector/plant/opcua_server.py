"""Setting up the asyncua server of the station: endpoint, security, users, model.

Where it sits: called once by the OPC UA sink's thread (``plant/opcua.py``), inside its
asyncio loop; asyncua is imported only here and in ``opcua_model.py`` (the ``opcua``
extra), so a daemon without OPC UA never loads it.
"""

from __future__ import annotations

import hmac
import logging

from asyncua import ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager

from inspector.config import OpcUaConfig
from inspector.plant.message import Station
from inspector.plant.opcua_model import StationNodes, build_model

_POLICIES = {
    "none": ua.SecurityPolicyType.NoSecurity,
    "sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "sign_encrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
}


class StationUsers(UserManager):
    """Who may open a session; nobody gets more than the plain user role (reading)."""

    def __init__(self, cfg: OpcUaConfig) -> None:
        self.cfg = cfg

    def get_user(
        self,
        iserver: object,
        username: str | None = None,
        password: str | None = None,
        certificate: object = None,
    ) -> User | None:
        if username is None:
            return User(role=UserRole.User) if self.cfg.allow_anonymous else None
        if self.cfg.username is None or self.cfg.password is None:
            return None
        same_user = hmac.compare_digest(username.encode(), self.cfg.username.encode())
        same_pw = hmac.compare_digest((password or "").encode(), self.cfg.password.encode())
        return User(role=UserRole.User, name=username) if same_user and same_pw else None


async def make_server(
    cfg: OpcUaConfig, station: Station, recipes: dict[int, str]
) -> tuple[Server, StationNodes]:
    """A configured, not yet started server with the station's model in it."""
    # asyncua logs every client's session at INFO; keep its warnings, drop the chatter.
    logging.getLogger("asyncua").setLevel(logging.WARNING)
    server = Server(user_manager=StationUsers(cfg))
    await server.init()
    server.set_endpoint(f"opc.tcp://{cfg.host}:{cfg.port}/inspector")
    server.set_server_name(f"inspector {station.line}/{station.station}")
    await server.set_application_uri(f"{cfg.namespace_uri}:{station.line}:{station.station}")
    server.set_security_policy([_POLICIES[cfg.security]])
    if cfg.security != "none":
        assert cfg.certificate is not None and cfg.private_key is not None  # config checks
        await server.load_certificate(str(cfg.certificate))
        await server.load_private_key(str(cfg.private_key))
    tokens: list[type] = []
    if cfg.allow_anonymous:
        tokens.append(ua.AnonymousIdentityToken)
    if cfg.username is not None:
        tokens.append(ua.UserNameIdentityToken)
    server.set_identity_tokens(tokens)
    idx = await server.register_namespace(cfg.namespace_uri)
    nodes = await build_model(
        server,
        idx,
        display=f"{station.line}/{station.station}",
        config_hash=station.config_hash,
        model_hash=station.model_hash,
        recipes=recipes,
    )
    return server, nodes
