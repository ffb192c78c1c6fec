"""Differential watch test: sessions arm one-shot watches and change the
tree in random order; every session must receive the same notifications,
in the same order, from Paddock as from Apache ZooKeeper 3.8.0."""

import random

import pytest

from conftest import assert_same_transcript
from zkwire import OPEN_ACL, Session

SEEDS = range(60)
STEPS = 80
SESSIONS = 3


def scenario(seed):
    rng = random.Random(1000 + seed)
    root = f"/w{seed}"
    paths = [root, f"{root}/a", f"{root}/b", f"{root}/a/x", f"{root}/a/y", f"{root}/c"]
    steps = [(0, "create", (root, b"", OPEN_ACL, 0))]
    for _ in range(STEPS):
        s = rng.randrange(SESSIONS)
        p = rng.choice(paths)
        r = rng.random()
        if r < 0.4:
            steps.append((s, rng.choice(["getData", "exists", "exists", "getChildren", "getChildren2"]), (p, True)))
        elif r < 0.6:
            steps.append((s, "create", (p, b"", OPEN_ACL, rng.choice([0, 0, 1]))))
        elif r < 0.72:
            steps.append((s, "delete", (p, -1)))
        elif r < 0.84:
            steps.append((s, "setData", (p, b"x", -1)))
        elif r < 0.9:
            ops = [("create", (rng.choice(paths), b"", OPEN_ACL, 0)), ("setData", (rng.choice(paths), b"m", -1)),
                   ("delete", (rng.choice(paths), -1))]
            steps.append((s, "multi", (rng.sample(ops, rng.randrange(1, 4)),)))
        elif r < 0.95:
            # (checkWatches is left out: 3.8.0 answers OK when any
            # connection watches the path, a bug later releases fixed.)
            steps.append((s, "removeWatches", (p, rng.choice([1, 2, 3]))))
        else:
            steps.append((s, "reopen", ()))
    return steps


def run(server, seed):
    sessions = [Session(server.port) for _ in range(SESSIONS)]
    transcript = []
    try:
        for i, (s, op, args) in enumerate(scenario(seed)):
            if op == "reopen":
                sessions[s].close()
                sessions[s] = Session(server.port)
                transcript.append((i, s, "reopen"))
            else:
                err = sessions[s].call(op, *args)[0]
                transcript.append((i, s, op, args[0] if args else None, err))
            # A read on every session flushes the notifications caused so far:
            # each arrives before any later reply that reflects its change.
            for j, sess in enumerate(sessions):
                sess.call("exists", "/", False)
                for n in sess.take_notifications():
                    transcript.append((i, j, "event", n))
        return transcript
    finally:
        for sess in sessions:
            sess.close()


@pytest.mark.parametrize("seed", SEEDS)
def test_watch_notifications_match_zookeeper(zookeeper, paddock, seed):
    assert_same_transcript(run(zookeeper, seed), run(paddock, seed))
