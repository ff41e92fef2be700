# What scripts/peer-bench and scripts/append-breakdown share: careledger serve on loopback, the
# founding of care teams, and wrk's script posting one set_target event. Sourced, not run; the
# caller sets CARELEDGER (the binary), work (a scratch directory), data (the data directory),
# API (http://127.0.0.1:PORT) and PORT, and keeps server_pid for its cleanup.

# The target event both sides store (about 250 bytes of JSON).
TARGET='{"type": "set_target", "measure": "ldl", "comparator": "<=", "value": "1.8", "unit": "mmol/L", "basis": "esc_guideline", "rationale": "high risk after myocardial infarction", "reason": "return letter of the outpatient visit"}'

# sync_floor_us DIR: the median time, in µs, of one 4 KiB write and `fdatasync` of a file in DIR
# (overwriting blocks already written, so that the sync writes data only): the floor under one
# durable append on that disk.
sync_floor_us() {
  python3 - "$1" <<'PY'
import os, statistics, sys, time
path = os.path.join(sys.argv[1], "floor")
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
block = b"\0" * 4096
for i in range(256):
    os.pwrite(fd, block, i * 4096)
os.fdatasync(fd)
samples = []
for i in range(1000):
    os.pwrite(fd, block, (i % 256) * 4096)
    start = time.perf_counter()
    os.fdatasync(fd)
    samples.append((time.perf_counter() - start) * 1e6)
os.close(fd)
os.remove(path)
print(round(statistics.median(samples)))
PY
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts `careledger serve` on $data (stderr to $work/careledger.log) and waits for /health.
start_careledger() {
  RUST_LOG=warn "$CARELEDGER" serve --data "$data" --addr "127.0.0.1:$PORT" --rate-limit-per-second 0 \
    --max-connections 4096 2>"$work/careledger.log" &
  server_pid=$!
  for _ in $(seq 1 200); do curl -sf "$API/health" >/dev/null && break; sleep 0.1; done
  curl -sf "$API/health" >/dev/null || { echo "careledger did not start:" >&2; cat "$work/careledger.log" >&2; exit 1; }
}

# Stops it with SIGTERM (it then prints its phase table, when CARELEDGER_TIMINGS=1).
stop_careledger() {
  if [ -n "$server_pid" ]; then kill -TERM "$server_pid" && wait "$server_pid" || true; fi
  server_pid=""
}

# found_care_teams TOKEN N: the first event of patients p-1 to p-N founds each one's care team.
found_care_teams() {
  seq 1 "$2" | xargs -P 32 -I{} curl -sf -o /dev/null -X POST "$API/patients/p-{}/events" \
    -H "Authorization: Bearer $1" -H 'Content-Type: application/json' -H 'If-Match: no_stream' \
    -d '{"commands": [{"type": "start_shared_care", "arrangement": "CVRM by the GP", "reason": "bench"}]}'
}

# append_lua TOKEN N: wrk's script, to $work/append.lua, posting $TARGET to a random one of p-1 to
# p-N and writing any answer but 201 to stderr.
append_lua() {
  cat >"$work/append.lua" <<LUA
math.randomseed(os.time())
request = function()
  local body = '{"commands": [$TARGET]}'
  return wrk.format("POST", "/patients/p-" .. math.random(1, $2) .. "/events",
    {["Authorization"] = "Bearer $1", ["Content-Type"] = "application/json"}, body)
end
response = function(status, headers, body)
  if status ~= 201 then io.stderr:write("careledger answered " .. status .. ": " .. body .. "\n") end
end
LUA
}
