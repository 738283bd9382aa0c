-- wrk script for bench/gateway.py: every request POSTs one small non-streaming
-- chat completion. bench/gateway.py passes the JSON body and the Authorization
-- header in the environment (BENCH_BODY, BENCH_AUTHORIZATION; no header when
-- empty) and reads the single `BENCH_RESULT {json}` line that done() prints.

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization ~= nil and authorization ~= "" then
  wrk.headers["Authorization"] = authorization
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %.0f, "duration_us": %.0f, "connect_errors": %.0f, "read_errors": %.0f, '
      .. '"write_errors": %.0f, "status_errors": %.0f, "timeouts": %.0f, "p50_us": %.0f, "p99_us": %.0f}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write, errors.status,
    errors.timeout, latency:percentile(50), latency:percentile(99)
  ))
end
