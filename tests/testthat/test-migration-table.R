# The migration vignette's table (vignettes/migrating-from-httpuv.Rmd, section "Every httpuv
# function, and rookd's") has a row for every function the installed httpuv exports. The
# vignette's source is not next to the tests once R CMD check has copied tests/, so this
# runs from the source tree (tools/run-r-tests.R, tools/test) and skips elsewhere.

table_source <- function() {
  rel <- file.path("vignettes", "migrating-from-httpuv.Rmd")
  candidates <- c(testthat::test_path("..", "..", rel), file.path("..", "..", rel))
  found <- candidates[file.exists(candidates)]
  if (length(found)) found[[1]] else NA_character_
}

migration_rows <- function(lines) {
  start <- grep("^## Every httpuv function", lines)
  if (length(start) != 1) return(NULL)
  rest <- lines[(start + 1):length(lines)]
  end <- grep("^## ", rest)
  section <- if (length(end)) rest[seq_len(end[1] - 1)] else rest
  rows <- grep("^\\| `", section, value = TRUE)
  # The first cell's first backticked name: "| `startServer` | ..." -> "startServer".
  first_cell <- sub("^\\|([^|]*)\\|.*$", "\\1", rows)
  data.frame(name = sub("^[^`]*`([^`]+)`.*$", "\\1", first_cell),
             status = trimws(sub("^\\|[^|]*\\|([^|]*)\\|.*$", "\\1", rows)),
             stringsAsFactors = FALSE)
}

test_that("the migration vignette's table has a row for every function httpuv exports", {
  skip_if_not_installed("httpuv")
  path <- table_source()
  skip_if(is.na(path), "vignettes/migrating-from-httpuv.Rmd is not here (not a source tree)")
  rows <- migration_rows(readLines(path, encoding = "UTF-8"))
  expect_false(is.null(rows), label = "a '## Every httpuv function' section in the vignette")
  expect_gt(nrow(rows), 20)
  missing <- setdiff(getNamespaceExports("httpuv"), rows$name)
  expect_identical(missing, character(0),
                   label = "httpuv exports without a row in the migration vignette's table")
  expect_true(all(rows$status %in% c("same", "improved", "not supported")))
  # A row claiming "same" or "improved" names a function rookd exports (or an app part).
  fns <- rows$name[!grepl(" ", rows$name) & rows$status != "not supported"]
  expect_identical(setdiff(fns, getNamespaceExports("rookd")), character(0))
})
