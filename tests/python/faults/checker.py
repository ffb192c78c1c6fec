"""Checkers for a fault run's history. Pure: they read the recorded
operations and the final state and return a list of anomalies (empty when
the history is clean). No I/O, no clocks.

An operation is a dict as the workers write it (see workload.py):
  p: process name, s: session id, f: function, k: key, a: argument,
  t0: invoke time, t1: completion time (None when indeterminate),
  r: "ok" | "fail" | "info", v: the result (ok) or error name (fail).
Times are CLOCK_MONOTONIC seconds, shared by every process of the machine.
"""

import math
from collections import defaultdict

INF = math.inf

# --- linearizability of one register (Wing & Gong, with Lowe's memo) -------
#
# The register is a znode's (version, data). Operations:
#   write(data)     setData with version -1: ok -> the new version
#   cas(exp, data)  setData with version exp: ok -> exp + 1, fail (BadVersion)
#                   when the version was not exp
#   read            ok -> (version, data); only reads that must be
#                   linearizable are given here (the final read after sync)


def _step(state, op):
    """The register after `op` at this point, or None if `op` cannot take
    effect here with the outcome it had."""
    version, data = state
    f, r = op["f"], op["r"]
    if f == "write":
        if r == "fail":
            return state
        if r == "ok" and op["v"] != version + 1:
            return None
        return (version + 1, op["a"])
    if f == "cas":
        expected, new = op["a"]
        if r == "fail":
            return state if version != expected else None
        if version != expected:
            # Indeterminate: it took effect nowhere; placing it here is
            # the same as placing it after everything else.
            return state if r == "info" else None
        if r == "ok" and op["v"] != expected + 1:
            return None
        return (expected + 1, new)
    if f == "read":
        return state if tuple(op["v"]) == state else None
    raise ValueError(f"not a register operation: {f}")


def linearizable(ops, initial=(0, "")):
    """True if the register operations `ops` have a linearization: an order
    that respects real time (an operation that completed before another
    was invoked comes first) in which every outcome is what the register
    would give. Indeterminate operations complete at infinity and may take
    effect or not. Returns (ok, detail)."""
    ops = [o for o in ops if not (o["r"] == "info" and o["f"] == "read")]
    n = len(ops)
    if n == 0:
        return True, ""
    # Entries: (time, kind, index); calls before returns at equal times
    # would claim concurrency that was not there, so returns go first.
    events = []
    for i, o in enumerate(ops):
        t1 = o["t1"] if o["r"] != "info" and o["t1"] is not None else INF
        # An operation returns after it was invoked, even if the clock did
        # not move between the two readings.
        t1 = max(t1, math.nextafter(o["t0"], INF))
        events.append((o["t0"], 1, i))
        events.append((t1, 0, i))
    events.sort()
    # A doubly linked list over the events, so lifting a call and its
    # return is O(1) and undoing it restores the order.
    size = len(events)
    nxt = list(range(1, size + 1))
    prv = list(range(-1, size - 1))
    head = 0
    ret_at = {}
    for pos, (_, kind, i) in enumerate(events):
        if kind == 0:
            ret_at[i] = pos

    def lift(pos):
        nonlocal head
        for p in (pos, ret_at[events[pos][2]]):
            if prv[p] >= 0:
                nxt[prv[p]] = nxt[p]
            else:
                head = nxt[p]
            if nxt[p] < size:
                prv[nxt[p]] = prv[p]

    def unlift(pos):
        nonlocal head
        for p in (ret_at[events[pos][2]], pos):
            if prv[p] >= 0:
                nxt[prv[p]] = p
            else:
                head = p
            if nxt[p] < size:
                prv[nxt[p]] = p

    state = tuple(initial)
    done = 0
    seen = set()
    stack = []
    pos = head
    steps = 0
    while head < size:
        steps += 1
        if steps > 5_000_000:
            return False, "search too long (undecided)"
        _, kind, i = events[pos]
        if kind == 1:
            after = _step(state, ops[i])
            if after is not None:
                key = (done | (1 << i), after)
                if key not in seen:
                    seen.add(key)
                    stack.append((pos, state))
                    state = after
                    done |= 1 << i
                    lift(pos)
                    pos = head
                    continue
            pos = nxt[pos]
        else:
            # A return whose call could not be placed: undo the last step.
            if not stack:
                o = ops[i]
                return False, (f"no linearization: {o['f']} {o['a']!r} -> {o['r']} {o['v']!r} "
                               f"by {o['p']} at {o['t0']:.3f}..{o['t1']}")
            pos, state = stack.pop()
            done &= ~(1 << events[pos][2])
            unlift(pos)
            pos = nxt[pos]
    return True, ""


def check_registers(ops, finals):
    """Every key's writes, CASes and final read are linearizable.
    `finals`: key -> (version, data) read after the run, after sync."""
    anomalies = []
    by_key = defaultdict(list)
    for o in ops:
        if o["f"] in ("write", "cas"):
            by_key[o["k"]].append(o)
    end = max([o["t1"] or o["t0"] for o in ops] + [0]) + 1
    for key in sorted(set(by_key) | set(finals)):
        history = by_key[key] + [{
            "p": "final", "s": None, "f": "read", "k": key, "a": None,
            "t0": end, "t1": end + 1, "r": "ok", "v": tuple(finals[key])}]
        ok, detail = linearizable(history)
        if not ok:
            anomalies.append(f"register {key}: {detail}")
    return anomalies


def check_session_reads(ops):
    """Per session, what it sees of a key never goes back (reads and its
    own writes), and every read returns a value some write wrote."""
    anomalies = []
    written = defaultdict(dict)  # key -> data -> (invoked, ok version or None)
    for o in ops:
        if o["f"] == "write" or (o["f"] == "cas" and o["r"] != "fail"):
            data = o["a"] if o["f"] == "write" else o["a"][1]
            written[o["k"]][data] = (o["t0"], o["v"] if o["r"] == "ok" else None)
    last = {}
    for o in sorted((o for o in ops if o["r"] == "ok"), key=lambda o: o["t1"]):
        if o["f"] not in ("read", "sync-read", "write", "cas"):
            continue
        reads = o["f"] in ("read", "sync-read")
        version = o["v"][0] if reads else o["v"]
        if reads:
            data = o["v"][1]
            if version > 0:
                w = written[o["k"]].get(data)
                if w is None or w[0] > o["t1"]:
                    anomalies.append(f"{o['p']} read {o['k']} = {data!r} (version {version}), "
                                     "which no write had written")
                elif w[1] is not None and w[1] != version:
                    anomalies.append(f"{o['p']} read {o['k']} = {data!r} at version {version}; "
                                     f"it was written as version {w[1]}")
        if o["s"] is None:
            continue  # it ran while Kazoo changed sessions
        k = (o["s"], o["k"])
        if k in last and version < last[k][0]:
            anomalies.append(f"session {o['s']} went back in time on {o['k']}: version "
                             f"{version} at {o['t1']:.3f} after {last[k][0]} at {last[k][1]:.3f}")
        if k not in last or version >= last[k][0]:
            last[k] = (version, o["t1"])
    return anomalies


def check_sync_reads(ops):
    """A read after sync sees every write to its key acknowledged before
    the sync was sent (ZooKeeper's sync: the server catches up with the
    leader first)."""
    anomalies = []
    acked = defaultdict(list)  # key -> (completed, version)
    for o in ops:
        if o["f"] in ("write", "cas") and o["r"] == "ok":
            acked[o["k"]].append((o["t1"], o["v"]))
    for o in ops:
        if o["f"] != "sync-read" or o["r"] != "ok":
            continue
        before = [v for t, v in acked[o["k"]] if t < o["t0"]]
        if before and o["v"][0] < max(before):
            anomalies.append(f"{o['p']} synced and read {o['k']} at version {o['v'][0]} at "
                             f"{o['t0']:.3f}; version {max(before)} was acknowledged before")
    return anomalies


def check_locks(holds, states):
    """Kazoo's lock recipe: no two holders at once, unless one of them lost
    its session during its hold (it held the lock without knowing it was
    gone: ZooKeeper's locks need fencing for that).
    `holds`: dicts p, t0 (acquired), t1 (about to release). `states`:
    process -> times at which it learnt its session was lost."""
    anomalies = []
    holds = sorted(holds, key=lambda h: h["t0"])

    def steady(h):
        # A holder whose session was lost (learnt on reconnecting, maybe a
        # while after the hold) may have lost the lock during the hold.
        return not any(h["t0"] <= t <= h["t1"] + 10 for t in states.get(h["p"], []))

    for i, a in enumerate(holds):
        for b in holds[i + 1:]:
            if b["t0"] >= a["t1"]:
                break
            if a["p"] != b["p"] and steady(a) and steady(b):
                anomalies.append(f"{a['p']} held the lock {a['t0']:.3f}..{a['t1']:.3f} and "
                                 f"{b['p']} {b['t0']:.3f}..{b['t1']:.3f}, both connected throughout")
    return anomalies


def check_sequential(ops, children):
    """Every acknowledged sequential create is in `children` (the final
    listing of the parent), and no sequence number was given twice."""
    anomalies = []
    present = set(children)
    acked = [o["v"].rsplit("/", 1)[-1] for o in ops if o["f"] == "create-seq" and o["r"] == "ok"]
    for what, names in (("given to", acked), ("present twice:", present)):
        by_number = defaultdict(list)
        for name in names:
            by_number[name[-10:]].append(name)
        anomalies += [f"sequence number {number} {what} {sorted(same)}"
                      for number, same in sorted(by_number.items()) if len(same) > 1]
    for name in acked:
        if name not in present:
            anomalies.append(f"acknowledged sequential create {name} is lost")
    return anomalies


def check_multi(ops, version, history):
    """multi(setData(key, exp), create(/hist/<exp+1>)) is atomic: the key's
    final version is exactly the number of hist nodes, numbered 1..version,
    and every acknowledged multi's node is there."""
    anomalies = []
    numbers = sorted(int(h) for h in history)
    if numbers != list(range(1, version + 1)):
        anomalies.append(f"multi key at version {version}, history nodes {numbers[:20]}"
                         f"{'...' if len(numbers) > 20 else ''}: not all-or-nothing")
    for o in ops:
        if o["f"] == "multi" and o["r"] == "ok" and o["v"] not in numbers:
            anomalies.append(f"acknowledged multi to version {o['v']} is lost")
    return anomalies


def check_owners(events, timeout_s, slack_s, vanish_s):
    """Ephemeral owners. `events` per owner process generation (one
    session): created (t), acks (times the owner saw its own ephemeral),
    missing (times it did not while its session lived), lost (t, when the
    client learnt its session expired), killed (t, the process was
    killed), gone (t, when the ephemeral was first seen gone after the
    kill, or None), ready (when the quorum that expired it began to serve),
    unavailable (seconds between ready and gone when no leader served).

    - No premature expiry: a session is expired only if its client had no
      contact for (about) its whole timeout: a gap between acks (or the
      last ack and the expiry) of at least timeout - slack.
    - An ephemeral never vanishes while its session lives.
    - An ephemeral goes within vanish_s (timeout + 2 ticks + 1 s) of its
      client's death or of the last leader beginning to serve before it
      went (`ready`: a new leader, or one back with its quorum, gives
      every session a full timeout), whichever is later, not counting
      time when no leader served."""
    anomalies = []
    for who, e in sorted(events.items()):
        for t in e.get("missing", []):
            anomalies.append(f"{who}: its ephemeral was gone at {t:.3f} while its session lived")
        lost = e.get("lost")
        if lost is not None:
            contacts = sorted([e["created"]] + [t for t in e.get("acks", []) if t <= lost])
            gaps = [b - a for a, b in zip(contacts, contacts[1:] + [lost])]
            longest = max(gaps)
            if longest < timeout_s - slack_s:
                anomalies.append(
                    f"{who}: premature expiry at {lost:.3f}: {lost - contacts[-1]:.2f} s after "
                    f"its last acknowledged request, never out of contact for more than "
                    f"{longest:.2f} s (timeout {timeout_s} s)")
        killed = e.get("killed")
        if killed is not None:
            since = max(killed, e["ready"])
            gone = e.get("gone")
            if gone is None:
                anomalies.append(f"{who}: its ephemeral outlived its dead client (killed at "
                                 f"{killed:.3f})")
            elif gone - since - e.get("unavailable", 0.0) > vanish_s:
                anomalies.append(f"{who}: its ephemeral went {gone - since:.2f} s after its client "
                                 f"died, {gone - since - e.get('unavailable', 0.0):.2f} s of them "
                                 f"with a leader serving (limit {vanish_s:.2f} s)")
    return anomalies


def check_watches(arms, finals):
    """One-shot data watches: each armed watch fires at most once, and one
    armed on a version older than the node's final one fires (the node
    changed after it was armed), unless its session was lost. `arms`: dicts
    with k, t (armed: the read's completion), ver (the version read), fired
    (times), lost (the session expired before the end)."""
    anomalies = []
    for a in arms:
        if len(a["fired"]) > 1:
            anomalies.append(f"watch on {a['k']} armed at {a['t']:.3f} fired {len(a['fired'])} times")
        final = finals[a["k"]][0]
        if final > a["ver"] and not a["fired"] and not a.get("lost"):
            anomalies.append(f"watch on {a['k']} armed at {a['t']:.3f} on version {a['ver']} "
                             f"never fired; the node reached version {final}")
    return anomalies


def check_replicas(trees):
    """Every server's tree (path -> (data, version, children)) is the same."""
    anomalies = []
    names = sorted(trees)
    for other in names[1:]:
        a, b = trees[names[0]], trees[other]
        if a != b:
            diff = sorted(set(a.items()) ^ set(b.items()))[:3]
            anomalies.append(f"{names[0]} and {other} differ, e.g. {diff}")
    return anomalies
