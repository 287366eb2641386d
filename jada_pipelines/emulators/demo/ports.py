"""The ports `make demo` listens on, and the check that they are free before anything starts."""

from __future__ import annotations

import socket
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class DemoPorts:
    """Every port the demo listens on, all on 127.0.0.1; each is a `make demo` setting (see ``docs/demo.md``)."""

    webserver: int = 3000
    google: int = 8765
    anthropic: int = 8766
    page: int = 8767
    slack: int = 8768

    def named(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# The make/CLI option that sets each port, for the message that names a taken one.
PORT_OPTIONS = {
    "webserver": "PORT",
    "google": "GOOGLE_PORT",
    "anthropic": "ANTHROPIC_PORT",
    "page": "PAGE_PORT",
    "slack": "SLACK_PORT",
}


def port_problems(ports: DemoPorts, host: str = "127.0.0.1") -> list[str]:
    """A sentence for each port that is shared between two settings or cannot be listened on; empty when all
    are free. Run before anything starts, so a taken port stops the demo instead of half-starting it."""
    problems = []
    seen: dict[int, str] = {}
    for name, port in ports.named().items():
        if port in seen:
            problems.append(
                f"{PORT_OPTIONS[name]}={port} is also {PORT_OPTIONS[seen[port]]}: give each its own port."
            )
            continue
        seen[port] = name
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # The servers set SO_REUSEADDR too, so a port in TIME_WAIT after the last demo counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            problems.append(
                f"port {port} ({PORT_OPTIONS[name]}, the {name}) is taken ({exc.strerror}): stop the program "
                f"using it (`ss -ltnp 'sport = :{port}'` shows which), or choose another, e.g. "
                f"`make demo {PORT_OPTIONS[name]}={port + 100}`."
            )
        finally:
            probe.close()
    return problems


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
