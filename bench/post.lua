-- wrk script for bench/ingest.py: POST one fixed body with its fixed GitHub signature
-- (X-Hub-Signature-256 covers the body only) and a unique X-GitHub-Delivery per request,
-- count the answers that are exactly 202, and print one JSON summary line in done().
--
--   wrk -t1 -c64 -d10s -s bench/post.lua URL BODY_FILE SIGNATURE NONCE
--
-- NONCE is 12 hex digits, fresh for every wrk run, so that ids never repeat across
-- runs against the same store; each delivery id is UUID-shaped, as GitHub's are:
--   NONCE[1..8]-NONCE[9..12]-<thread, 4 hex>-<counter, 4 hex>-<counter, 12 hex>.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("tid", #threads)
end

local counter = 0
local prefix = nil
accepted = 0 -- globals: done() reads them from each thread with thread:get()
other = 0

function init(args)
   local file = assert(io.open(args[1], "rb"))
   local body = file:read("*a")
   file:close()
   local nonce = args[3]
   assert(nonce and #nonce == 12, "NONCE must be 12 hex digits")
   prefix = string.format("%s-%s-%04x-", nonce:sub(1, 8), nonce:sub(9, 12), tid)
   wrk.method = "POST"
   wrk.body = body
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["User-Agent"] = "GitHub-Hookshot/bench"
   wrk.headers["X-GitHub-Event"] = "workflow_run"
   wrk.headers["X-GitHub-Hook-ID"] = "123456789"
   wrk.headers["X-GitHub-Hook-Installation-Target-Type"] = "repository"
   wrk.headers["X-GitHub-Hook-Installation-Target-ID"] = "987654321"
   wrk.headers["X-Hub-Signature-256"] = args[2]
end

function request()
   counter = counter + 1
   wrk.headers["X-GitHub-Delivery"] =
      prefix .. string.format("%04x-%012x", math.floor(counter / 0x1000000000000) % 0x10000,
                              counter % 0x1000000000000)
   return wrk.format()
end

function response(status, headers, body)
   if status == 202 then
      accepted = accepted + 1
   else
      other = other + 1
   end
end

function done(summary, latency, requests)
   local ok, bad = 0, 0
   for _, thread in ipairs(threads) do
      ok = ok + thread:get("accepted")
      bad = bad + thread:get("other")
   end
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"accepted":%d,"other":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d}}\n',
      summary.requests, summary.duration, summary.bytes, ok, bad,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max))
end
