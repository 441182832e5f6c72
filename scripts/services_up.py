"""Exit 0 when the PostgreSQL and Redis servers named on the command line answer, 1 otherwise."""

import sys

import psycopg
import redis


def main(pg_url: str, redis_url: str) -> int:
    try:
        with psycopg.connect(pg_url.rsplit("/", 1)[0] + "/postgres", connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        print(f"PostgreSQL unreachable at {pg_url}: {exc}".splitlines()[0])
        return 1
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        print(f"Redis unreachable at {redis_url}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
