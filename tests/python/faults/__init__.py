"""A fault-injection and consistency harness of Jepsen's kind for Paddock
and Apache ZooKeeper 3.8.0: real server processes, a seeded nemesis
(blackhole partitions, bridges, kill -9, SIGSTOP past the session timeout),
Kazoo workloads recorded as invoke/ok/fail/info, and checkers. See
docs/faults.md."""
