-- wrk script for the soak: a random mix of requests, some of them closing their
-- connection (Connection: close), so wrk reconnects all along.
local paths = { "/hello", "/hello", "/hello", "/json?a=1&b=two", "/text", "/blob", "/error", "/missing" }
local counter = 0

request = function()
  counter = counter + 1
  local r = math.random(100)
  local headers = { ["User-Agent"] = "soak-wrk" }
  if r <= 5 then
    headers["Connection"] = "close"
  end
  if r > 5 and r <= 25 then
    local body = string.rep("b", math.random(0, 4096))
    headers["Content-Type"] = "application/octet-stream"
    return wrk.format("POST", "/echo", headers, body)
  elseif r > 25 and r <= 30 then
    -- (no HEAD here: wrk's parser would wait for a body; the Python client sends HEAD)
    return wrk.format("DELETE", "/json?del=" .. counter, headers)
  elseif r > 30 and r <= 40 then
    headers["Accept-Encoding"] = "gzip"
    return wrk.format("GET", "/text", headers)
  end
  return wrk.format("GET", paths[math.random(#paths)] .. (r % 2 == 0 and "" or ("?i=" .. counter)), headers)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK_RESULT requests=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout))
end
