"""Several shop instances behind a real nginx, for ``coatcheck demo --instances N``.

Each instance is its own process (the single-instance ``coatcheck demo`` on a port of its own);
nginx, from the system's packages, balances them round-robin, or with ``sticky`` pins each
client to one instance by a routing cookie of nginx's own (``coatcheck_route``). Everything
listens on 127.0.0.1 and is stopped with the cluster.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

NGINX_MISSING = (
    "nginx is not installed, and --instances needs it to balance the instances: "
    "install it with `apt-get install nginx` (Debian, Ubuntu), then run this again"
)
ROUTE_COOKIE = "coatcheck_route"
START_TIMEOUT = 30.0


class ClusterError(RuntimeError):
    """The cluster could not start; the message says why."""


def find_nginx(search_path: str | None = None) -> str:
    """The nginx binary, on ``search_path`` (default: PATH, then the sbin directories, which a
    user's PATH may lack)."""
    if search_path is None:
        sbin = ["/usr/sbin", "/usr/local/sbin", "/sbin"]
        search_path = os.pathsep.join([os.environ.get("PATH", ""), *sbin])
    found = shutil.which("nginx", path=search_path)
    if found is None:
        raise ClusterError(NGINX_MISSING)
    return found


def free_port(host: str) -> int:
    """A port nothing listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def nginx_config(prefix: Path, host: str, port: int, upstreams: Sequence[int], sticky: bool) -> str:
    """nginx's whole configuration: one server on ``host:port`` in front of the instances.

    Round-robin by default. ``sticky`` hashes a routing cookie that nginx sets on a client's
    first response (from ``$request_id``), so each client keeps to one instance until it
    fails. A refused connection (a killed instance) is retried on the next instance.

    nginx is the edge: ``X-Forwarded-For`` is the address that connected to it, replacing any
    the client sent, so that the instances, which trust loopback, never believe a forged one.
    """
    servers = "\n".join(f"        server {host}:{upstream};" for upstream in upstreams)
    balance = "        hash $coatcheck_route consistent;\n" if sticky else ""
    route_map = (
        f"    map $cookie_{ROUTE_COOKIE} $coatcheck_route {{\n"
        f'        "" $request_id;\n'
        f"        default $cookie_{ROUTE_COOKIE};\n"
        f"    }}\n"
        if sticky
        else ""
    )
    route_cookie = (
        f'            add_header Set-Cookie "{ROUTE_COOKIE}=$coatcheck_route; Path=/; HttpOnly; '
        f'SameSite=Lax" always;\n'
        if sticky
        else ""
    )
    return f"""# Written by coatcheck demo; removed when it stops.
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{route_map}    upstream shop {{
{balance}{servers}
    }}
    server {{
        listen {host}:{port};
        location / {{
            proxy_pass http://shop;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 2s;
            proxy_next_upstream error timeout;
{route_cookie}        }}
    }}
}}
"""


@dataclass
class Instance:
    """One shop process."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    reported_exit: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class Cluster:
    """``count`` instances started by ``command(name, port)``, behind nginx on ``host:port``."""

    command: Callable[[str, int], list[str]]
    count: int
    host: str
    port: int
    sticky: bool = False
    env: Mapping[str, str] | None = None
    """The instances' environment (None: this process's)."""
    instances: list[Instance] = field(default_factory=list)
    nginx: subprocess.Popen[bytes] | None = None
    _prefix: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> None:
        """Start the instances, wait until each answers, then start nginx in front of them."""
        nginx = find_nginx()
        if listening(self.host, self.port):
            raise ClusterError(f"port {self.port} on {self.host} is taken: choose another --port")
        try:
            for number in range(1, self.count + 1):
                name, port = f"shop-{number}", free_port(self.host)
                process = subprocess.Popen(self.command(name, port), env=self.env)  # noqa: S603
                self.instances.append(Instance(name, port, process))
            for instance in self.instances:
                self._wait(instance.name, instance.port, instance.process)
            self._prefix = Path(tempfile.mkdtemp(prefix="coatcheck-nginx-"))
            self._prefix.chmod(0o755)  # nginx's workers run as another user when started as root
            config = self._prefix / "nginx.conf"
            ports = [instance.port for instance in self.instances]
            config.write_text(nginx_config(self._prefix, self.host, self.port, ports, self.sticky))
            self.nginx = subprocess.Popen(  # noqa: S603 - the system's nginx, our own file
                [nginx, "-p", str(self._prefix), "-c", str(config), "-e", "/dev/stderr"]
            )
            self._wait("nginx", self.port, self.nginx)
        except BaseException:
            self.stop()
            raise

    def _wait(self, name: str, port: int, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not listening(self.host, port):
            if process.poll() is not None:
                raise ClusterError(f"{name} exited with status {process.returncode} on start-up")
            if time.monotonic() > deadline:
                raise ClusterError(f"{name} did not listen on port {port} in {START_TIMEOUT:.0f} s")
            time.sleep(0.05)

    def exited(self) -> list[Instance]:
        """Instances that stopped since the last call (each is reported once)."""
        gone = [i for i in self.instances if not i.reported_exit and i.process.poll() is not None]
        for instance in gone:
            instance.reported_exit = True
        return gone

    def balancer_alive(self) -> bool:
        return self.nginx is not None and self.nginx.poll() is None

    def stop(self) -> None:
        """Stop nginx, then every instance; remove nginx's files."""
        processes = ([self.nginx] if self.nginx else []) + [i.process for i in self.instances]
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._prefix is not None:
            shutil.rmtree(self._prefix, ignore_errors=True)
            self._prefix = None
