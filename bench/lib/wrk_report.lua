-- Appended to every wrk script bench/run uses: one machine-readable summary line.
-- Latencies in microseconds; errors = connect + read + write + timeout; status = non-2xx/3xx.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCHWRK requests=%d duration_us=%d bytes=%d p50_us=%.1f p99_us=%.1f errors=%d status_errors=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
