# The suite's own plumbing: the shared helpers load, and a busy machine is really busy.
test_that("with_busy_cores() keeps the cores busy while its expression runs", {
  skip_if_no_python()
  load <- with_busy_cores({
    Sys.sleep(1.5)
    t0 <- proc.time()
    # A busy machine: this process gets a share of the CPU, not all of it.
    x <- 0
    for (i in 1:3e6) x <- x + i
    t1 <- proc.time() - t0
    c(cpu = unname(t1[["user.self"]] + t1[["sys.self"]]), wall = unname(t1[["elapsed"]]))
  })
  expect_gt(load[["wall"]], load[["cpu"]] * 1.2)
})
