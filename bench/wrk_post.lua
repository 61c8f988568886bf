-- wrk script for bench/serve_load.py: POSTs the JSON bodies of a file (one per line) in turn, counts the
-- responses by status and by second, and prints one JSON line with the totals, latency percentiles and the
-- per-second timeline.
--   RAYKD_WRK_BODIES  file of request bodies      RAYKD_WRK_PATH  request path (default /v1/score)
--   RAYKD_WRK_TOKEN   optional bearer token
local requests = {}
local n = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local headers = { ["Content-Type"] = "application/json" }
  local token = os.getenv("RAYKD_WRK_TOKEN")
  if token and token ~= "" then headers["Authorization"] = "Bearer " .. token end
  local path = os.getenv("RAYKD_WRK_PATH") or "/v1/score"
  for line in io.lines(os.getenv("RAYKD_WRK_BODIES")) do
    requests[#requests + 1] = wrk.format("POST", path, headers, line)
  end
  n = math.random(#requests) - 1
  statuses = {}   -- status code -> responses (globals: done() reads them through thread:get)
  ok_at = {}      -- unix second -> 2xx responses
  bad_at = {}     -- unix second -> other responses
end

function request()
  n = n % #requests + 1
  return requests[n]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local s = os.time()
  if status >= 200 and status < 300 then ok_at[s] = (ok_at[s] or 0) + 1 else bad_at[s] = (bad_at[s] or 0) + 1 end
end

local function merge(into, from)
  for k, v in pairs(from or {}) do into[k] = (into[k] or 0) + v end
end

local function encode(t)
  local parts = {}
  for k, v in pairs(t) do parts[#parts + 1] = string.format('"%s": %d', tostring(k), v) end
  return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, reqs)
  local st, ok, bad = {}, {}, {}
  for _, t in ipairs(threads) do
    merge(st, t:get("statuses"))
    merge(ok, t:get("ok_at"))
    merge(bad, t:get("bad_at"))
  end
  local e = summary.errors
  io.write(string.format(
    'RAYKD_WRK {"duration_us": %d, "requests": %d, "bytes": %d, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}, "latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, ' ..
    '"mean": %.1f}, "statuses": %s, "ok_at": %s, "bad_at": %s}\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    encode(st), encode(ok), encode(bad)))
end
