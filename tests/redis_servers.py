"""Private Redis servers for tests: one node, or a Sentinel group (a master, a replica and three
sentinels), each on loopback ports of its own, stopped when the test is done."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from .servers import free_port
from .services import reachable

SERVICE = "coatcheck"


def wait_until(condition: object, what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


class PrivateRedis:
    """A redis-server of the test's own, persisting every write so a restart keeps sessions."""

    def __init__(self, directory: Path, *extra: str) -> None:
        self.port = free_port()
        self.directory = directory
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.directory),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_until(lambda: reachable("127.0.0.1", self.port), f"redis-server :{self.port}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class SentinelGroup:
    """A master, one replica and three sentinels watching them as service ``coatcheck``."""

    def __init__(self, directory: Path) -> None:
        self.master = PrivateRedis(directory / "master")
        self.replica = PrivateRedis(directory / "replica")
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.directory = directory
        self.sentinels: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self.master.start()
        self.replica.extra = ("--replicaof", "127.0.0.1", str(self.master.port))
        self.replica.start()
        wait_until(self.replica_caught_up, "the replica to sync")
        for port in self.sentinel_ports:
            conf = self.directory / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
            )
            self.sentinels.append(
                subprocess.Popen(
                    ["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL
                )
            )
        for port in self.sentinel_ports:
            wait_until(lambda p=port: self._sees_everyone(p), f"sentinel :{port} to settle")

    def replica_caught_up(self) -> bool:
        """Whether the replica is linked and has everything the master has written."""
        with redis.Redis(port=self.master.port, socket_timeout=1) as master:
            written = master.info("replication")["master_repl_offset"]
        with redis.Redis(port=self.replica.port, socket_timeout=1) as replica:
            info = replica.info("replication")
        return bool(info.get("master_link_status") == "up" and info["slave_repl_offset"] >= written)

    def _sees_everyone(self, port: int) -> bool:
        try:
            with redis.Redis(port=port, socket_timeout=1) as client:
                master = client.sentinel_master(SERVICE)
        except redis.RedisError:
            return False
        return bool(master["num-slaves"] >= 1 and master["num-other-sentinels"] >= 2)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def master_port(self) -> int:
        with redis.Redis(port=self.sentinel_ports[0], socket_timeout=1) as client:
            _, port = client.sentinel_get_master_addr_by_name(SERVICE)
        return int(port)

    def stop(self) -> None:
        for process in self.sentinels:
            process.kill()
            process.wait(10)
        self.master.kill()
        self.replica.kill()


class ClusterGroup:
    """Three masters forming a Redis Cluster (no replicas), on ports of their own."""

    def __init__(self, directory: Path) -> None:
        self.nodes = [
            PrivateRedis(
                directory / f"node-{i}",
                "--cluster-enabled",
                "yes",
                "--cluster-node-timeout",
                "2000",
            )
            for i in range(3)
        ]

    def start(self) -> None:
        for node in self.nodes:
            node.port = _cluster_port()
            node.extra = (*node.extra, "--cluster-config-file", str(node.directory / "nodes.conf"))
            node.start()
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wait_until(self._ok, "the cluster to settle")

    def _ok(self) -> bool:
        for node in self.nodes:
            with redis.Redis(port=node.port, socket_timeout=1) as client:
                if client.cluster("info").get("cluster_state") != "ok":
                    return False
        return True

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    for _ in range(100):
        port = free_port()
        if port + 10000 < 65536 and not reachable("127.0.0.1", port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")
