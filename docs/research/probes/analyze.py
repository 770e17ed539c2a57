"""Map missing/duplicate output seqs back to input partition/offset."""
import collections, sys
from kafka import KafkaConsumer, TopicPartition
def read_all(topic):
    c = KafkaConsumer(bootstrap_servers="127.0.0.1:19092", consumer_timeout_ms=3000, enable_auto_commit=False)
    tps = [TopicPartition(topic, p) for p in (c.partitions_for_topic(topic) or ())]
    c.assign(tps); c.seek_to_beginning(*tps); r = list(c); c.close(); return r
inp = {int(r.value): (r.partition, r.offset) for r in read_all("probe-in")}
out = collections.Counter(int(r.value.split(b":")[0]) for r in read_all("probe-out"))
per_part = collections.defaultdict(lambda: {"in": 0, "missing": [], "dup": []})
for s, (p, o) in inp.items():
    per_part[p]["in"] += 1
    if out[s] == 0: per_part[p]["missing"].append(o)
    if out[s] > 1: per_part[p]["dup"].append(o)
def ranges(xs):
    xs = sorted(xs); out = []
    for x in xs:
        if out and x == out[-1][1] + 1: out[-1][1] = x
        else: out.append([x, x])
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in out) or "-"
for p in sorted(per_part):
    d = per_part[p]; print(f"p{p}: in={d['in']} missing_offsets={ranges(d['missing'])} dup_offsets={ranges(d['dup'])}")
