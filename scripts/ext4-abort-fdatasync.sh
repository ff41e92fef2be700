#!/bin/bash
# Shows, without careledger, that fdatasync can return success for data that does not survive
# while ext4 aborts its journal (errors=remount-ro): four threads pwrite + fdatasync records to
# one file, the error is raised through sysfs after 0.3 s, the image is repaired with e2fsck, and
# every record whose fdatasync returned 0 is looked for. Needs root and loop devices.
# Usage: scripts/ext4-abort-fdatasync.sh [rounds]   (docs/reliability.md has the figures)
set -euo pipefail
rounds=${1:-12}
work=$(mktemp -d)
trap 'umount "$work/mnt" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir "$work/mnt"
for round in $(seq 1 "$rounds"); do
  rm -f "$work/disk.img"
  truncate -s 256M "$work/disk.img"
  mkfs.ext4 -q -F "$work/disk.img"
  mount -o loop,errors=remount-ro "$work/disk.img" "$work/mnt"
  dev=$(awk -v m="$work/mnt" '$2 == m {print $1}' /proc/mounts | sed 's#/dev/##')
  python3 - "$dev" "$work/mnt/log" > "$work/acked.txt" <<'PY'
import os, sys, threading, time
dev, path = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDWR | os.O_CREAT)
lock = threading.Lock()
state = {"offset": 0, "n": 0}
acked = []
def writer():
    while True:
        with lock:
            state["n"] += 1
            n, offset = state["n"], state["offset"]
            record = ("rec%08d " % n + "x" * (300 + n % 200) + "\n").encode()
            state["offset"] += len(record)
        try:
            os.pwrite(fd, record, offset)
            os.fdatasync(fd)
        except OSError:
            return
        acked.append((n, time.monotonic()))
threads = [threading.Thread(target=writer) for _ in range(4)]
for t in threads:
    t.start()
time.sleep(0.3)
raised = time.monotonic()
with open(f"/sys/fs/ext4/{dev}/trigger_fs_error", "w") as f:
    f.write("fdatasync test\n")
returned = time.monotonic()
for t in threads:
    t.join()
print(raised, returned)
for n, at in acked:
    print(n, at)
PY
  umount "$work/mnt"
  e2fsck -fy "$work/disk.img" > /dev/null 2>&1 || true
  mount -o loop "$work/disk.img" "$work/mnt"
  python3 - "$work/acked.txt" "$work/mnt/log" "$round" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().split("\n")
raised, returned = map(float, lines[0].split())
acked = {int(l.split()[0]): float(l.split()[1]) for l in lines[1:] if l}
present = {int(m.group(1)) for m in re.finditer(rb"rec(\d{8}) ", open(sys.argv[2], "rb").read())}
lost = sorted(n for n in acked if n not in present)
detail = ", ".join("rec %d: fdatasync returned %.3f ms after the error was raised (raising took %.3f ms)"
                   % (n, (acked[n] - raised) * 1000, (returned - raised) * 1000) for n in lost)
print(f"round {sys.argv[3]}: {len(acked)} acknowledged, {len(lost)} lost" + (f": {detail}" if lost else ""))
PY
  umount "$work/mnt"
done
