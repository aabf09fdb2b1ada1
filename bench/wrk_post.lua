-- wrk script for bench/nsmc.py: POST one Korean review as JSON, then print one JSON line.
--
--   wrk -t1 -c64 -d10s --latency -s bench/wrk_post.lua http://127.0.0.1:PORT/predictions/nsmc_sentiment
--
-- wrk reports latency in microseconds; the line below is in requests/s and milliseconds.
-- "non_2xx" is wrk's status error count (responses with a status of 400 or more).

wrk.method = "POST"
wrk.body = '{"text": "정말 재밌게 잘봤습니다!"}'
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_s": %.3f, "rps": %.2f, '
      .. '"p50_ms": %.4f, "p90_ms": %.4f, "p99_ms": %.4f, "mean_ms": %.4f, "max_ms": %.4f, '
      .. '"non_2xx": %d, "socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.mean / 1000, latency.max / 1000,
    errors.status, errors.connect, errors.read, errors.write, errors.timeout
  ))
end
