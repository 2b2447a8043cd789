# rook.input and rook.errors.
#
# rook.input is built per request by the bridge (src/rust/bridge/src/input.rs): an
# environment holding an external pointer to the body, which stays in Rust, and three
# closures made from the templates below (same formals and body, enclosed by that
# environment, so `.ptr` is the request's own).

input_read_template <- function(l = -1L) {
  rookd_input_read(.ptr, as.numeric(l))
}

input_read_lines_template <- function(n = -1L) {
  rookd_input_read_lines(.ptr, as.numeric(n))
}

input_rewind_template <- function() {
  invisible(rookd_input_rewind(.ptr))
}

# rook.errors: one shared stream writing to stderr (it keeps no per-request state).
rook_errors_stream <- function() {
  e <- new.env(parent = emptyenv())
  e$cat <- function(..., sep = " ") {
    base::cat(..., file = stderr(), sep = sep)
  }
  e$flush <- function() {
    base::flush(stderr())
  }
  class(e) <- "rookd_errors"
  e
}

#' @export
print.rookd_input <- function(x, ...) {
  cat("<rook.input: read(l = -1L), read_lines(n = -1L), rewind()>\n")
  invisible(x)
}

# `.ptr` is bound in each request's rook.input environment, not globally.
utils::globalVariables(".ptr")
