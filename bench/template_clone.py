"""A preview database from its base commit's template, against migrate and seed from empty.

Both run on one real PostgreSQL (Debian's, started here, loopback) through the
service's own admin adapter, interleaved, several rounds:

- from empty: `ensure` an empty database and role, then as that role the
  migration (tables, an index) and the seed (rows from generate_series), the
  fastest seed an app could have, so the ratio is a conservative one;
- clone: `ensure` with the template (CREATE DATABASE ... TEMPLATE, then the
  objects handed to the preview's role), after the template was migrated,
  seeded and marked once.

Prints the seeded size, both timings per round, medians and the ratio.

    .venv/bin/python -m bench.template_clone [--megabytes 60] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import psycopg2

from app.adapters.sql_admin import PostgresAdmin
from tests.testbed import servers

MIGRATE = """
CREATE TABLE customers (id BIGINT PRIMARY KEY, email TEXT NOT NULL, created_at TIMESTAMP NOT NULL);
CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL REFERENCES customers (id),
                     total NUMERIC(10, 2) NOT NULL, note TEXT NOT NULL);
CREATE INDEX orders_customer ON orders (customer_id);
"""
# About 1 MB per 4,000 orders with their notes; customers are a tenth of the orders.
SEED = """
INSERT INTO customers SELECT n, 'user' || n || '@example.test', now() FROM generate_series(1, %(customers)s) n;
INSERT INTO orders SELECT n, 1 + n %% %(customers)s, (n %% 1000) / 10.0, repeat(md5(n::text), 6)
  FROM generate_series(1, %(orders)s) n;
ANALYZE;
"""


def migrate_and_seed(admin: PostgresAdmin, name: str, password: str, orders: int) -> None:
    connection = admin.connection(name, password)
    with psycopg2.connect(connection.url()) as conn, conn.cursor() as cursor:
        cursor.execute(MIGRATE)
        cursor.execute(SEED, {"customers": max(orders // 10, 1), "orders": orders})
    conn.close()


def count_orders(admin: PostgresAdmin, name: str, password: str) -> int:
    with psycopg2.connect(admin.connection(name, password).url()) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM orders")
        found = int(cursor.fetchone()[0])
    conn.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    orders = args.megabytes * 4000
    with servers.postgres_server() as server:
        admin = PostgresAdmin(server.url())
        template = "preview_tpl_bench0000000_base00000000"
        admin.ensure(template, "template-password")
        migrate_and_seed(admin, template, "template-password", orders)
        admin.mark_template(template)
        size_mb = (admin.size(template) or 0) / 1024 / 1024
        print(f"template: {orders} orders, {size_mb:.1f} MB", flush=True)
        if size_mb < 50:
            raise SystemExit(f"the seeded database is {size_mb:.1f} MB, under the 50 MB asked for: raise --megabytes")
        empty_times, clone_times = [], []
        for round_number in range(args.rounds):
            empty, clone = f"preview_{2 * round_number + 1}", f"preview_{2 * round_number + 2}"
            started = time.perf_counter()
            admin.ensure(empty, "bench-password")
            migrate_and_seed(admin, empty, "bench-password", orders)
            empty_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            admin.ensure(clone, "bench-password", template=template)
            clone_times.append(time.perf_counter() - started)
            assert count_orders(admin, clone, "bench-password") == orders, "the clone lacks the seeded rows"
            print(
                f"round {round_number + 1}: migrate+seed {empty_times[-1]:6.2f} s   clone {clone_times[-1]:6.2f} s",
                flush=True,
            )
            admin.drop(empty)
            admin.drop(clone)
        from_empty, cloned = statistics.median(empty_times), statistics.median(clone_times)
        ratio = cloned / from_empty
        print(f"median: migrate+seed {from_empty:.2f} s, clone {cloned:.2f} s, clone/migrate+seed {ratio:.3f}")


if __name__ == "__main__":
    main()
