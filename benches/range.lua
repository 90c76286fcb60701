-- wrk script: GETs of random 1 MiB ranges of a file whose size is given as the first script
-- argument; counts every response that is not 206 so the harness can fail the run.
local size, span
local bad = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  size = tonumber(args[1])
  span = 1024 * 1024
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  local from = math.random(0, size - span)
  return wrk.format("GET", nil, { ["Range"] = "bytes=" .. from .. "-" .. (from + span - 1) })
end

function response(status, headers, body)
  if status ~= 206 then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + (t:get("bad") or 0)
  end
  io.write(string.format("not_206 %d\n", total))
end
