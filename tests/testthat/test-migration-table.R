# README.md's "Migrating from httpuv" table has a row for every function the installed
# httpuv exports. README.md is not in the built package (.Rbuildignore), so this runs
# from the source tree (tools/run-r-tests.R, tools/test) and skips elsewhere.

readme_path <- function() {
  candidates <- c(testthat::test_path("..", "..", "README.md"), file.path("..", "..", "README.md"))
  found <- candidates[file.exists(candidates)]
  if (length(found)) found[[1]] else NA_character_
}

migration_rows <- function(lines) {
  start <- grep("^## Migrating from httpuv", lines)
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

test_that("README's migration table has a row for every function httpuv exports", {
  skip_if_not_installed("httpuv")
  path <- readme_path()
  skip_if(is.na(path), "README.md is not here (not a source tree)")
  rows <- migration_rows(readLines(path, encoding = "UTF-8"))
  expect_false(is.null(rows), label = "a '## Migrating from httpuv' section in README.md")
  missing <- setdiff(getNamespaceExports("httpuv"), rows$name)
  expect_identical(missing, character(0),
                   label = "httpuv exports without a row in README's migration table")
  expect_true(all(rows$status %in% c("same", "improved", "not supported")))
  # A row claiming "same" or "improved" names a function rookd exports (or an app part).
  fns <- rows$name[!grepl(" ", rows$name) & rows$status != "not supported"]
  expect_identical(setdiff(fns, getNamespaceExports("rookd")), character(0))
})
