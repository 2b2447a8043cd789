-- POST a 1 MiB body to /echo (bench/run appends wrk_report.lua).
wrk.method = "POST"
wrk.path = "/echo"
wrk.body = string.rep("x", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
