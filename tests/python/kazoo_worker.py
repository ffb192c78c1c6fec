"""A separate process contending for a Kazoo recipe (used by
test_kazoo_recipes.py). Usage: kazoo_worker.py HOSTS lock|election LOG ROUNDS"""

import sys
import time

from kazoo.client import KazooClient


def main():
    hosts, recipe, log_path, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    me = f"{recipe}-{time.time_ns()}"
    zk = KazooClient(hosts=hosts, timeout=10)
    zk.start(timeout=10)
    zk.ensure_path("/recipes/counter")

    def critical():
        with open(log_path, "a") as log:
            log.write(f"enter {me}\n")
            log.flush()
            value = int(zk.get("/recipes/counter")[0] or b"0")
            time.sleep(0.01)
            zk.set("/recipes/counter", str(value + 1).encode())
            log.write(f"exit {me}\n")
            log.flush()

    if recipe == "lock":
        lock = zk.Lock("/recipes/lock", me)
        for _ in range(rounds):
            with lock:
                critical()
    else:
        for _ in range(rounds):
            zk.Election("/recipes/election", me).run(critical)
    zk.stop()


if __name__ == "__main__":
    main()
