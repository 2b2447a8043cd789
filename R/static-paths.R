# Static paths (httpuv's API): URL prefixes whose files the engine serves from its I/O
# threads without ever calling R. This file builds and checks the R objects; the bridge
# (src/rust/bridge/src/statics.rs) turns them into the engine's table and back.

#' Create a static path
#'
#' A `staticPath` object maps a URL prefix to a local directory or file, to be served
#' directly by rookd's I/O threads: such requests never reach R, so they are answered
#' even while R is busy. Use it as a value of an app's `staticPaths` list (see
#' [startServer()]) or of a server's `setStaticPath()` method. Options left `NULL`
#' are inherited from the server-wide [staticPathOptions()].
#'
#' Served files get `Last-Modified`, `ETag` and `Accept-Ranges` headers, and conditional
#' (`304 Not Modified`) and range (`206 Partial Content`) requests are honoured. Only
#' `GET` and `HEAD` are allowed (`405` otherwise). Request paths are read as httpuv
#' reads them: percent-decoded once (so `%2f` counts as `/`), `.` segments ignored, and a
#' path containing a backslash (raw or `%5c`) is passed to the app's `call()`. A path
#' with a `..` segment or a NUL byte gets `400` (or goes to the app with `fallthrough`).
#'
#' @param path The local path: a directory, or a single file served at the prefix itself.
#'   It must exist; it is stored as an absolute path.
#' @param indexhtml If an `index.html` file is present, should it be served when the
#'   client asks for the static path or any subdirectory? A directory asked for without
#'   its trailing slash is redirected (`301`) to the slash form first.
#' @param fallthrough With the default, `FALSE`, a request for a file that does not exist
#'   gets a `404` from the I/O thread, without calling R. With `TRUE`, the request is
#'   passed to the app's `call()` instead.
#' @param html_charset The `charset` given in the `Content-Type` header of HTML files;
#'   `"utf-8"` gives `Content-Type: text/html; charset=utf-8`. `""` (or
#'   `character(0)`) gives no charset.
#' @param headers Extra response headers for files from this path: a named list or a
#'   named character vector, such as `list("Cache-Control" = "max-age=3600")`.
#'   A `Content-Type` here replaces the one guessed from the file's extension.
#' @param validation An optional check on each request, as a string of the form
#'   `'"name" == "value"'`: the request must carry header `name` (any case) with exactly
#'   `value`, or it gets `403 Forbidden`. `character(0)` means no check.
#' @param symlinks An addition of rookd's: how symbolic links under the directory are
#'   treated. `"follow"` (the default) follows every link wherever it points, as httpuv,
#'   nginx and Apache do (Debian's R packages, for example, ship JavaScript libraries as
#'   links into `/usr/share/javascript`). `"inside"` follows only links whose target
#'   lies inside the static directory; `"refuse"` follows none. A refused link is a
#'   `404`. In every mode the request path itself cannot leave the directory (`..`,
#'   encoded separators and NUL are refused). In `staticPath()`, `NULL` inherits the
#'   server-wide value.
#' @return An object of class `staticPath`.
#' @seealso [staticPathOptions()], [excludeStaticPath()], [runStaticServer()]
#' @examples
#' dir <- tempfile("site")
#' dir.create(dir)
#' writeLines("<h1>Hello</h1>", file.path(dir, "index.html"))
#'
#' staticPath(dir, headers = list("Cache-Control" = "max-age=60"))
#'
#' app <- list(
#'   call = function(req) {
#'     list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "from R")
#'   },
#'   staticPaths = list(
#'     "/site" = staticPath(dir),
#'     "/site/api" = excludeStaticPath()
#'   )
#' )
#' s <- startServer("127.0.0.1", 0, app)
#' s$getStaticPaths()
#' s$stop()
#' @export
staticPath <- function(path, indexhtml = NULL, fallthrough = NULL, html_charset = NULL,
                       headers = NULL, validation = NULL, symlinks = NULL) {
  if (!is.character(path) || length(path) != 1 || is.na(path) || path == "") {
    stop("`path` must be a non-empty string.", call. = FALSE)
  }
  path <- enc2utf8(normalizePath(path, winslash = "/", mustWork = TRUE))
  options <- new_static_path_options(indexhtml, fallthrough, html_charset, headers,
                                     validation, exclude = FALSE)
  # rookd's field is added only when set, so that httpuv code sees httpuv's object.
  if (!is.null(symlinks)) {
    options$symlinks <- check_symlinks(symlinks)
  }
  structure(list(path = path, options = options), class = "staticPath")
}

#' Exclude a path from static serving
#'
#' Under a prefix served by a [staticPath()], a sub-prefix given `excludeStaticPath()`
#' is not served statically: its requests go to the app's `call()` as usual (the longest
#' matching prefix decides).
#'
#' @return An object of class `staticPath`.
#' @examples
#' dir <- tempdir()
#' paths <- list(
#'   "/"    = staticPath(dir),
#'   "/api" = excludeStaticPath()  # /api/... is answered by the app
#' )
#' paths$`/api`
#' @export
excludeStaticPath <- function() {
  options <- new_static_path_options(NULL, NULL, NULL, NULL, NULL, exclude = TRUE)
  structure(list(path = "", options = options), class = "staticPath")
}

#' Server-wide options for static paths
#'
#' The options every static path of a server inherits unless its [staticPath()] sets
#' its own. Give them as an app's `staticPathOptions` element (see [startServer()]), or
#' change them on a running server with its `setStaticPathOption()` method.
#'
#' @inheritParams staticPath
#' @param exclude Whether to exclude paths from static serving by default (see
#'   [excludeStaticPath()]). Paths made with [staticPath()] always set it to `FALSE`.
#' @param symlinks How symbolic links are treated: `"follow"` (default), `"inside"`
#'   or `"refuse"`; see [staticPath()]. An addition of rookd's.
#' @return An object of class `staticPathOptions`.
#' @seealso [staticPath()]
#' @examples
#' staticPathOptions(html_charset = "", headers = list("X-Served-By" = "rookd"))
#'
#' # Only requests carrying the header `X-Token: s3cret` are served:
#' staticPathOptions(validation = '"X-Token" == "s3cret"')
#'
#' # Serve no file reached through a symbolic link that leaves the directory:
#' staticPathOptions(symlinks = "inside")
#' @export
staticPathOptions <- function(indexhtml = TRUE, fallthrough = FALSE, html_charset = "utf-8",
                              headers = list(), validation = character(0), exclude = FALSE,
                              symlinks = "follow") {
  symlinks <- check_symlinks(symlinks)
  res <- new_static_path_options(indexhtml, fallthrough, html_charset, headers, validation,
                                 exclude)
  # Appended after httpuv's six fields so that those keep httpuv's positions.
  res$symlinks <- symlinks
  res
}

new_static_path_options <- function(indexhtml, fallthrough, html_charset, headers,
                                    validation, exclude) {
  # `list()` keeps NULL values as elements: an unset option is present and NULL.
  opts <- list(indexhtml = indexhtml, fallthrough = fallthrough, html_charset = html_charset,
               headers = headers, validation = validation, exclude = exclude)
  normalize_static_path_options(structure(opts, class = "staticPathOptions"))
}

check_symlinks <- function(x) {
  modes <- c("follow", "inside", "refuse")
  if (!is.character(x) || length(x) != 1 || is.na(x) || !x %in% modes) {
    stop("`symlinks` option must be one of \"follow\", \"inside\", \"refuse\".",
         call. = FALSE)
  }
  x
}

check_static_flag <- function(x, name) {
  if (!is.null(x) && (!is.logical(x) || length(x) != 1 || is.na(x))) {
    stop("`", name, "` option must be TRUE or FALSE.", call. = FALSE)
  }
}

# Check and canonicalise options the way httpuv does, with its messages: character(0)
# charset becomes "", a headers list becomes a named character vector, a validation
# string becomes c("==", name, value). Marked so that it is done once.
normalize_static_path_options <- function(opts) {
  if (isTRUE(attr(opts, "normalized", exact = TRUE))) {
    return(opts)
  }
  if (!is.null(opts$html_charset) && length(opts$html_charset) == 0) {
    opts$html_charset <- ""
  }
  # httpuv leaves these to its C++ layer; checking here gives the error when the object
  # is made, with a message naming the option.
  check_static_flag(opts$indexhtml, "indexhtml")
  check_static_flag(opts$fallthrough, "fallthrough")
  if (!is.null(opts$html_charset) &&
      (!is.character(opts$html_charset) || length(opts$html_charset) != 1 ||
       is.na(opts$html_charset))) {
    stop("`html_charset` option must be a single string.", call. = FALSE)
  }
  check_static_flag(opts$exclude, "exclude")
  if (!is.null(opts$symlinks)) check_symlinks(opts$symlinks)
  if (is.list(opts$headers) || is.character(opts$headers)) {
    # Assigning the unlisted value (NULL for an empty list) and then a typed empty vector
    # mirrors httpuv, down to where the `headers` element ends up in the list.
    if (is.list(opts$headers)) opts$headers <- unlist(opts$headers, recursive = FALSE)
    if (length(opts$headers) == 0) opts$headers <- c(a = "a")[0]
    if (!is.character(opts$headers) || any_unnamed(opts$headers) || anyNA(opts$headers)) {
      stop("`headers` option must be a named list or character vector.", call. = FALSE)
    }
  }
  if (!is.null(opts$validation)) {
    opts$validation <- parse_validation(opts$validation)
  }
  attr(opts, "normalized") <- TRUE
  opts
}

# `'"name" == "value"'` -> c("==", "name", "value"); "" or character(0) -> no rule.
parse_validation <- function(v) {
  # Already parsed (e.g. options read back from a server): keep as is.
  if (is.character(v) && length(v) == 3 && identical(v[1], "==") && !anyNA(v)) {
    return(v)
  }
  if (!is.character(v) || length(v) > 1) {
    stop("`validation` option must be a character vector with zero or one element.",
         call. = FALSE)
  }
  if (length(v) == 0 || identical(v, "")) {
    return(character(0))
  }
  expr <- if (is.na(v)) NULL else tryCatch(str2lang(v), error = function(e) NULL)
  is_string <- function(x) is.character(x) && length(x) == 1 && !is.na(x)
  ok <- is.call(expr) && length(expr) == 3 && identical(expr[[1]], as.name("==")) &&
    is_string(expr[[2]]) && is_string(expr[[3]])
  if (!ok) {
    stop("`validation` must be a string of the form: '\"xxx\" == \"yyy\"'", call. = FALSE)
  }
  c("==", expr[[2]], expr[[3]])
}

any_unnamed <- function(x) {
  if (length(x) == 0) return(FALSE)
  nms <- names(x)
  is.null(nms) || any(is.na(nms) | !nzchar(nms))
}

as_static_path <- function(x) {
  if (inherits(x, "staticPath")) return(x)
  if (is.character(x)) return(staticPath(x))
  stop("Cannot convert object of class ", class(x)[1], " to a staticPath object.",
       call. = FALSE)
}

# A named list or character vector of paths -> named list of staticPath objects, names
# as URL prefixes ("/" added in front, trailing "/" removed).
normalize_static_paths <- function(paths) {
  if (length(paths) == 0) {
    return(list())
  }
  if (any_unnamed(paths) || (!is.character(paths) && !is.list(paths))) {
    stop("paths must be a named character vector, a named list containing strings and ",
         "staticPath objects, or NULL.", call. = FALSE)
  }
  prefixes <- enc2utf8(names(paths))
  prefixes <- ifelse(startsWith(prefixes, "/"), prefixes, paste0("/", prefixes))
  prefixes <- sub("(.)/+$", "\\1", prefixes)
  paths <- lapply(paths, as_static_path)
  names(paths) <- prefixes
  paths
}

format_static_options <- function(x, empty) {
  fmt <- function(opt) {
    if (length(opt) == 0) {
      empty
    } else if (!is.null(names(opt))) {
      paste0("\n", paste0("    \"", names(opt), "\" = \"", opt, "\"", collapse = "\n"))
    } else {
      paste(as.character(opt), collapse = " ")
    }
  }
  lines <- c(
    paste0("  Use index.html:    ", fmt(x$indexhtml)),
    paste0("  Fallthrough to R:  ", fmt(x$fallthrough)),
    paste0("  HTML charset:      ", fmt(x$html_charset)),
    paste0("  Extra headers:     ", fmt(x$headers)),
    paste0("  Validation params: ", fmt(x$validation)),
    paste0("  Exclude path:      ", fmt(x$exclude)),
    # rookd's extension, shown when present (staticPathOptions() always sets it; a
    # staticPath only when given), so httpuv's objects print as httpuv prints them.
    if (!is.null(x$symlinks)) {
      paste0("  Symlinks:          ", fmt(x$symlinks))
    }
  )
  paste0(paste(lines, collapse = "\n"), "\n")
}

#' @export
format.staticPath <- function(x, ...) {
  paste0("<staticPath>\n", "  Local path:        ", x$path, "\n",
         format_static_options(x$options, "<inherit>"))
}

#' @export
format.staticPathOptions <- function(x, ...) {
  paste0("<staticPathOptions>\n", format_static_options(x, "<none>"))
}

#' @export
print.staticPath <- function(x, ...) {
  cat(format(x, ...), sep = "\n")
  invisible(x)
}

#' @export
print.staticPathOptions <- function(x, ...) {
  cat(format(x, ...), sep = "\n")
  invisible(x)
}

# The app's static paths and options, read once when the server starts (as httpuv's
# AppWrapper does); the bridge finds them in the app environment.
app_static_paths <- function(app, env) {
  env$.staticPaths <- normalize_static_paths(app_field(app, "staticPaths"))
  opts <- app_field(app, "staticPathOptions")
  if (is.null(opts)) {
    opts <- staticPathOptions()
  } else if (inherits(opts, "staticPathOptions")) {
    opts <- normalize_static_path_options(opts)
  } else {
    stop("staticPathOptions must be an object of class staticPathOptions.", call. = FALSE)
  }
  env$.staticPathOptions <- opts
  invisible(env)
}

# Errors from the bridge, without the .Call wrapper as the call.
static_call <- function(expr) {
  tryCatch(expr, error = function(e) stop(conditionMessage(e), call. = FALSE))
}

# The static-path methods of a server object (httpuv's Server class). Once the server is
# stopped the getters return NULL and the setters do nothing, as in httpuv.
add_static_path_methods <- function(self, id) {
  self$getStaticPaths <- function() {
    if (!self$isRunning()) return(NULL)
    rookd_static_paths(id)
  }
  self$setStaticPath <- function(..., .list = NULL) {
    if (!self$isRunning()) return(invisible())
    paths <- normalize_static_paths(c(list(...), .list))
    invisible(static_call(rookd_static_set_paths(id, paths)))
  }
  self$removeStaticPath <- function(path) {
    if (!self$isRunning()) return(invisible())
    invisible(static_call(rookd_static_remove_paths(id, as.character(path))))
  }
  self$getStaticPathOptions <- function() {
    if (!self$isRunning()) return(NULL)
    rookd_static_options(id)
  }
  self$setStaticPathOption <- function(..., .list = NULL) {
    if (!self$isRunning()) return(invisible())
    opts <- c(list(...), .list)
    if (any_unnamed(opts)) stop("All items must be named.", call. = FALSE)
    # As in httpuv, the first of two same-named options wins.
    opts <- normalize_static_path_options(opts[unique(names(opts))])
    unknown <- setdiff(names(opts), names(formals(staticPathOptions)))
    if (length(unknown)) {
      stop("Unknown options: ", paste(unknown, collapse = ", "), call. = FALSE)
    }
    invisible(static_call(rookd_static_set_options(id, opts)))
  }
  invisible(self)
}

#' Serve a directory
#'
#' Starts a server for one static directory, served at `/` entirely by rookd's I/O
#' threads; requests outside it get `404`. In the foreground (the default) it serves
#' until interrupted (Esc or Ctrl-C, or [interrupt()]); with `background = TRUE` it
#' returns the server at once and serves whenever R is idle.
#'
#' @param dir The directory to serve; the working directory by default.
#' @param host The address to listen on (see [startServer()]).
#' @param port The port; `NULL` picks 7446 if it is free, else a random free port.
#'   Otherwise a whole number from 1 to 65535 that is free on `host` (as httpuv, `0`
#'   is refused: the URL printed must be the real one); a port in use is an error of
#'   class `rookd_unavailable_port` (and `httpuv_unavailable_port`).
#' @param ... Options for the directory, passed to [staticPath()]: `indexhtml`,
#'   `fallthrough`, `html_charset`, `headers`, `validation`, `symlinks`.
#' @param background Return the running server at once instead of serving until
#'   interrupted. Stop it with [stopServer()] or [stopAllServers()].
#' @param browse Open the site in a web browser (by default when interactive).
#' @param tls `NULL` (HTTP) or a [tlsConfig()] to serve HTTPS.
#' @return With `background = TRUE`, the server (invisibly); otherwise `TRUE` (as
#'   httpuv) when interrupted, after stopping the server.
#' @seealso [staticPath()], [runServer()]
#' @examples
#' dir <- tempfile("site")
#' dir.create(dir)
#' writeLines("<h1>Hello</h1>", file.path(dir, "index.html"))
#' s <- runStaticServer(dir, port = randomPort(), background = TRUE, browse = FALSE)
#' s$stop()
#' @export
runStaticServer <- function(dir = getwd(), host = "127.0.0.1", port = NULL, ...,
                            background = FALSE, browse = interactive(), tls = NULL) {
  root <- staticPath(dir, ...)
  check_host(host)
  if (is.null(port)) {
    port <- if (isTRUE(rookd_port_available(host, 7446L))) 7446L else randomPort(host = host)
  } else {
    # The same checks, in the same order and words, as httpuv's runStaticServer().
    stopifnot(
      "`port` must be an integer" = is.numeric(port),
      "`port` must be an integer" = port == as.integer(port),
      "`port` must be a single integer" = length(port) == 1,
      "`port` must be a positive integer" = port > 0,
      "`port` must be less than 65536" = port < 65536
    )
    if (!isTRUE(rookd_port_available(host, as.integer(port)))) {
      unavailable_port(paste("Port", port, "is not available on host", host))
    }
  }
  # As httpuv: only `staticPaths`; other paths get httpuv's plain 404.
  server <- startServer(host, port, list(staticPaths = list("/" = root)), tls = tls)
  url_host <- if (grepl(":", host, fixed = TRUE)) paste0("[", host, "]") else host
  url <- sprintf("%s://%s:%d", if (is.null(tls)) "http" else "https", url_host, server$getPort())
  message("Serving: '", dir, "'")
  message("View at: ", url)
  if (isTRUE(browse)) {
    tryCatch(utils::browseURL(url), error = function(e) {
      warning("Could not open browser due to error in `utils::browseURL()`: ",
              conditionMessage(e), call. = FALSE)
    })
  }
  if (isTRUE(background)) {
    return(invisible(server))
  }
  on.exit(server$stop(), add = TRUE)
  message("Press Esc or Ctrl + C to stop the server")
  service(0)
}
