-- wrk script: GETs of random 1 MiB ranges of a file whose size is given as the first script
-- argument.
--
-- With "check" as the second argument, every response's status is checked (a count of those
-- that are not 206 is printed). That hands each 1 MiB body to Lua, which costs the client
-- about as much as the server's work, so the timed runs leave it out and print the exact byte
-- and request counts instead: the harness checks that they add up to 1 MiB bodies, which a
-- full (200) or empty (304) response would not.
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
  if args[2] ~= "check" then
    response = nil
  end
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
  io.write(string.format("exact %d requests %d bytes\n", summary.requests, summary.bytes))
end
