"""The throwaway Postgres server the storage tests run against is real and isolated per test."""

from __future__ import annotations

import psycopg


def test_each_test_gets_its_own_empty_database(postgres_server, postgres_dsn) -> None:
    with psycopg.connect(postgres_dsn) as con:
        con.execute("CREATE TABLE t (x int)")
        con.execute("INSERT INTO t VALUES (1)")
        assert con.execute("SELECT count(*) FROM t").fetchone() == (1,)
        assert con.execute("SHOW server_version").fetchone()[0]
    other = postgres_server.create_database()
    with psycopg.connect(other) as con:
        tables = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 't'"
        ).fetchone()
    assert tables == (0,)


def test_the_server_listens_on_loopback_and_its_own_socket(postgres_server) -> None:
    socket_dsn = f"host={postgres_server.socket_dir} port={postgres_server.port} "
    with psycopg.connect(socket_dsn + f"user={postgres_server.user} dbname=postgres") as con:
        assert con.execute("SELECT 1").fetchone() == (1,)
    assert postgres_server.host == "127.0.0.1"
