"""OpenFlow over TLS, each switch bound to the host its certificate names.

os-ken can listen with TLS, but it cannot check a CRL, and it hands a
switch's features reply to every app at once: its ofctl service, seeing a
second connection with a datapath id it knows, closes the first.  So a
switch holding host H's certificate and presenting H2's datapath id would
displace the real H2 before any app could refuse it.  Here:

- the listener is nsgre's (``install`` replaces os-ken's server loop): TLS
  1.2 or later, a certificate from the CA required, the CRL checked on
  every handshake (read again when its file changes), each handshake in
  its own green thread with a deadline, so a slow or silent peer holds
  nothing but itself;
- every accepted connection is fenced (``_Fence`` around its event
  brick): nothing it sends reaches any app until its features reply
  names the datapath its certificate allows (``identity.switch_refusal``);
  a refused switch is logged, counted and disconnected, and none of its
  messages is ever handed on.
"""

from __future__ import annotations

import logging
import ssl

from os_ken.controller import controller, ofp_event
from os_ken.lib import hub

from nsgre_core import identity
from nsgre_core.credentials import ServerContext

LOG = logging.getLogger("nsgre")

#: Seconds a peer has to complete its TLS handshake.
HANDSHAKE_SECONDS = 10.0


def install(credentials, host: str, port: int, check, refused) -> None:
    """Serve OpenFlow with TLS on ``host``:``port`` instead of os-ken's
    listener; ``check(identity, dpid)`` says why a switch may not be that
    datapath (None: it may), ``refused(address, identity, dpid, why)`` is
    told of every refusal (handshakes included, with dpid None)."""
    contexts = ServerContext(credentials)
    contexts.get()                          # a bad file fails the start, not the first switch

    def server_loop(_self, *_ports):
        import eventlet
        server = eventlet.listen((host, port))
        LOG.info("nsgre: OpenFlow with TLS on %s:%d (certificates of %s)", host, port,
                 credentials.ca)
        while True:
            sock, address = server.accept()
            hub.spawn(_handshake, sock, address, contexts, check, refused)

    controller.OpenFlowController.server_loop = server_loop


def _handshake(sock, address, contexts, check, refused) -> None:
    sock.settimeout(HANDSHAKE_SECONDS)
    try:
        tls = contexts.get().wrap_socket(sock, server_side=True)
    except (ssl.SSLError, OSError) as exc:
        refused(address, None, None, f"TLS handshake failed: {_reason(exc)}")
        sock.close()
        return
    tls.settimeout(None)
    who = identity.from_peercert(tls.getpeercert())
    fence = {"identity": who, "check": check, "refused": refused}
    _FENCES[id(tls)] = fence
    try:
        controller.datapath_connection_factory(tls, address)
    finally:
        _FENCES.pop(id(tls), None)


def _reason(exc) -> str:
    return getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or str(exc)


#: id(socket) -> the fence of the connection being served on it.
_FENCES: dict = {}


class _Fence:
    """A connection's event brick, holding back everything it sends until
    its features reply is allowed, and all of it if it is not."""

    def __init__(self, brick, datapath, fence):
        self.brick, self.datapath, self.fence = brick, datapath, fence
        self.state = "waiting"               # -> "allowed" | "refused"

    def _pass(self, ev) -> bool:
        if self.state == "waiting" and isinstance(ev, ofp_event.EventOFPSwitchFeatures):
            dpid = ev.msg.datapath_id
            why = self.fence["check"](self.fence["identity"], dpid)
            if why is None:
                self.state = "allowed"
            else:
                self.state = "refused"
                self.fence["refused"](self.datapath.address, self.fence["identity"], dpid, why)
                self.datapath.close()
        if self.state == "refused":
            return not isinstance(ev, ofp_event.EventOFPMsgBase)   # its end, to os-ken
        # Before the features reply only the handshake's own messages
        # (hello, echo, errors) pass, to os-ken's handler: no app sees them.
        return self.state == "allowed" or not isinstance(ev, ofp_event.EventOFPMsgBase) or \
            isinstance(ev, (ofp_event.EventOFPHello, ofp_event.EventOFPEchoRequest,
                            ofp_event.EventOFPEchoReply, ofp_event.EventOFPErrorMsg))

    def send_event_to_observers(self, ev, state=None):
        if self._pass(ev):
            self.brick.send_event_to_observers(ev, state)

    def get_handlers(self, ev, state=None):
        if self.state == "refused" or not self._pass(ev):
            return []
        return self.brick.get_handlers(ev, state) if state is not None else \
            self.brick.get_handlers(ev)

    def __getattr__(self, name):
        return getattr(self.brick, name)


def fence_datapaths() -> None:
    """Wrap the event brick of every connection accepted by ``install``'s
    listener in its ``_Fence`` (others are left as they are)."""
    original = controller.Datapath.__init__
    if getattr(original, "nsgre_fenced", False):
        return

    def init(self, sock, address):
        original(self, sock, address)
        fence = _FENCES.get(id(sock))
        if fence is not None and self.ofp_brick is not None:
            self.ofp_brick = _Fence(self.ofp_brick, self, fence)

    init.nsgre_fenced = True
    controller.Datapath.__init__ = init
