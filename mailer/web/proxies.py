"""X-Forwarded-* believed only from the proxies in front of the app.

Werkzeug's ProxyFix trusts the last ``hops`` values of each header from whoever connects. A
client that reaches the app directly (not through the proxy) would then choose its own IP,
and with it its rate-limit budget and the address in the consent records. Here the headers
are read only when the connection comes from a TRUSTED_PROXIES address, and dropped otherwise.
"""

import ipaddress
from collections.abc import Iterable

from werkzeug.middleware.proxy_fix import ProxyFix

FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
             "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_PREFIX", "HTTP_FORWARDED")


class TrustedProxyFix:
    def __init__(self, app, hops: int, trusted: Iterable[str]):
        self.app = app
        self.fixed = ProxyFix(app, x_for=hops, x_proto=hops, x_host=hops)
        self.trusted = [ipaddress.ip_network(net, strict=False) for net in trusted]

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted if net.version == ip.version)

    def __call__(self, environ, start_response):
        if self._is_trusted(environ.get("REMOTE_ADDR", "")):
            return self.fixed(environ, start_response)
        for name in FORWARDED:
            environ.pop(name, None)
        return self.app(environ, start_response)
