-- wrk script for tests/bench/bench_api.py.
--
-- Usage: wrk ... -s tests/bench/wrk_paths.lua http://127.0.0.1:PORT -- PATHS_FILE
--
-- Every request goes to a path picked at random from PATHS_FILE (one path a line; a file with
-- one line hits one path). Each thread counts responses by status class; done() prints one line,
-- "WRK_JSON {...}", with latency percentiles in microseconds, so the caller never has to parse
-- wrk's human-readable units.

local paths = {}
-- A global: done() reads it from each thread with thread:get("counts").
counts = { ok = 0, non2xx = 0 }
local threads = {}

local function load_paths(file)
  local list = {}
  local fh = assert(io.open(file, "r"), "cannot open paths file " .. tostring(file))
  for line in fh:lines() do
    if #line > 0 then
      list[#list + 1] = line
    end
  end
  fh:close()
  assert(#list > 0, "paths file is empty: " .. file)
  return list
end

-- Runs in the main Lua state once per thread, before the thread starts.
function setup(thread)
  thread:set("tid", #threads + 1)
  threads[#threads + 1] = thread
end

-- Runs in each thread's own Lua state.
function init(args)
  paths = load_paths(args[1])
  math.randomseed(os.time() * 1000 + (tid or 0))
  -- LuaJIT's first few random numbers after seeding are poorly spread; skip them.
  for _ = 1, 10 do
    math.random()
  end
end

function request()
  return wrk.format("GET", paths[math.random(#paths)], { ["Accept"] = "application/json" })
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    counts.ok = counts.ok + 1
  else
    counts.non2xx = counts.non2xx + 1
  end
end

-- done() runs in the main state: it reads each thread's `counts` table through thread:get.
local function field(thread, name)
  local value = thread:get("counts")
  if type(value) == "table" then
    return value[name] or 0
  end
  return 0
end

function done(summary, latency, requests)
  local ok, non2xx = 0, 0
  for _, thread in ipairs(threads) do
    ok = ok + field(thread, "ok")
    non2xx = non2xx + field(thread, "non2xx")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"ok":%d,"non_2xx":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,'
      .. '"p50":%d,"p75":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    ok, non2xx,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)
  ))
end
