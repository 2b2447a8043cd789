#' Run httpuv code on rookd, unchanged
#'
#' `use_rookd()` routes httpuv's API to rookd for the rest of the session, so that an
#' existing app or framework (Shiny, plumber, ...) that calls httpuv runs on rookd's
#' server without a single change. `with_rookd(expr)` does the same for one call and
#' always undoes it when `expr` returns or fails. `unuse_rookd()` (or
#' `use_rookd(FALSE)`) undoes it.
#'
#' Loading or attaching rookd changes nothing: only these functions touch httpuv.
#'
#' @section What it touches:
#' For each function httpuv exports that rookd also has (every export but the
#' `WebSocket` class generator: `startServer`, `startDaemonizedServer`,
#' `startPipeServer`, `runServer`, `service`, `interrupt`, `stopServer`,
#' `stopDaemonizedServer`, `stopAllServers`, `listServers`, `randomPort`, `ipFamily`,
#' `staticPath`, `staticPathOptions`, `excludeStaticPath`, `encodeURI`,
#' `encodeURIComponent`, `decodeURI`, `decodeURIComponent`, `rawToBase64`,
#' `getRNGState`), the binding holding httpuv's function is replaced by rookd's in:
#' \enumerate{
#'   \item httpuv's namespace (what `httpuv::startServer` finds);
#'   \item the attached `package:httpuv` environment, if `library(httpuv)` was called
#'     (what a bare `startServer` finds);
#'   \item the imports environment of every loaded namespace that imported it (Shiny
#'     imports `startServer`, `service`, ... this way). Namespaces loaded later import
#'     rookd's function from httpuv's namespace anyway.
#' }
#' httpuv's namespace is loaded first if it is not. Undoing puts httpuv's original
#' function objects back into every binding that holds a routed rookd function (also
#' in namespaces loaded while the route was on) and relocks the bindings it unlocked.
#' Servers started through the route are rookd servers and keep running after the
#' route is undone; stop them with `stopServer()` or `stopAllServers()` (rookd's or,
#' while routed, httpuv's name).
#'
#' Routed calls use rookd's defaults (see [rookdOptions()]) except `options`, which
#' `use_rookd()` and `with_rookd()` take: for instance
#' `rookdOptions(query_string_question_mark = TRUE)` for code that needs httpuv's form
#' of `QUERY_STRING` (Shiny and plumber do not).
#'
#' @param enable `TRUE` to route httpuv to rookd, `FALSE` to undo (as `unuse_rookd()`).
#' @param options Options ([rookdOptions()]) given to the servers that routed
#'   `startServer()`, `startDaemonizedServer()`, `startPipeServer()` and `runServer()`
#'   calls start.
#' @param expr An expression to evaluate with httpuv routed to rookd.
#' @return `use_rookd()`: invisibly, a function with no arguments that undoes what this
#'   call did: it removes the route, or, if the route was already on before the call,
#'   only puts the previous `options` back (it does nothing once the route is undone). `with_rookd()`: the value of `expr`. `unuse_rookd()`: invisibly,
#'   `TRUE` if a route was undone, `FALSE` if none was on.
#' @examples
#' if (requireNamespace("httpuv", quietly = TRUE)) {
#'   app <- function(req) list(status = 200L, headers = list(), body = "hi")
#'   with_rookd({
#'     s <- httpuv::startServer("127.0.0.1", 0, app)   # a rookd server
#'     print(s)
#'     httpuv::stopServer(s)
#'   })
#'   identical(httpuv::startServer, rookd::startServer)  # FALSE: httpuv is back
#'
#'   undo <- use_rookd()
#'   is_rookd_active()
#'   undo()
#'   is_rookd_active()
#' }
#' @export
use_rookd <- function(enable = TRUE, options = rookdOptions()) {
  if (!is.logical(enable) || length(enable) != 1 || is.na(enable)) {
    stop("`enable` must be TRUE or FALSE.", call. = FALSE)
  }
  if (!enable) {
    unuse_rookd()
    return(invisible(function() invisible(FALSE)))
  }
  options <- as_rookd_options(options)
  if (!requireNamespace("httpuv", quietly = TRUE)) {
    stop("use_rookd() routes httpuv's functions to rookd, but httpuv is not installed; ",
         "code that does not use httpuv can call rookd's functions directly.", call. = FALSE)
  }
  if (!is.null(.globals$route)) {
    # Already routed (a with_rookd() inside use_rookd(), say): only the options change,
    # and this call's undo puts the previous ones back.
    previous <- .globals$route$options
    token <- .globals$route$token
    .globals$route$options <- options
    return(invisible(function() {
      if (identical(.globals$route$token, token)) .globals$route$options <- previous
      invisible(FALSE)
    }))
  }
  ns <- asNamespace("httpuv")
  names <- intersect(routed_names, getNamespaceExports("httpuv"))
  originals <- mget(names, envir = ns, inherits = FALSE)
  replacements <- lapply(names, routed_function)
  names(replacements) <- names
  token <- new.env(parent = emptyenv())
  .globals$route <- list(originals = originals, replacements = replacements,
                         options = options, token = token)
  swap_bindings(from = originals, to = replacements)
  invisible(function() {
    if (identical(.globals$route$token, token)) unuse_rookd() else invisible(FALSE)
  })
}

#' @rdname use_rookd
#' @export
unuse_rookd <- function() {
  route <- .globals$route
  if (is.null(route)) return(invisible(FALSE))
  swap_bindings(from = route$replacements, to = route$originals)
  .globals$route <- NULL
  invisible(TRUE)
}

#' @rdname use_rookd
#' @export
with_rookd <- function(expr, options = rookdOptions()) {
  undo <- use_rookd(TRUE, options = options)
  on.exit(undo(), add = TRUE)
  expr
}

#' @rdname use_rookd
#' @return `is_rookd_active()`: `TRUE` while httpuv is routed to rookd.
#' @export
is_rookd_active <- function() !is.null(.globals$route)

# httpuv's exports that have a rookd counterpart. `WebSocket` (an R6 class generator
# that apps never instantiate themselves) is left alone.
routed_names <- c(
  "startServer", "startDaemonizedServer", "startPipeServer", "runServer", "service",
  "interrupt", "stopServer", "stopDaemonizedServer", "stopAllServers", "listServers",
  "randomPort", "ipFamily", "staticPath", "staticPathOptions", "excludeStaticPath",
  "encodeURI", "encodeURIComponent", "decodeURI", "decodeURIComponent", "rawToBase64",
  "getRNGState"
)

# The function a routed name points to. Those that start servers get the route's
# options; the rest are rookd's own function objects.
routed_function <- function(name) {
  switch(name,
    startServer = ,
    startDaemonizedServer = function(host, port, app, quiet = FALSE) {
      if (!is.null(.globals$worker_socket)) return(worker_pipe_server(app))
      startServer(host, port, app, quiet = quiet, options = route_options())
    },
    startPipeServer = function(name, mask, app, quiet = FALSE) {
      startPipeServer(name, mask, app, quiet = quiet, options = route_options())
    },
    runServer = function(host, port, app, interruptIntervalMs = NULL) {
      if (!is.null(.globals$worker_socket)) {
        server <- worker_pipe_server(app)
        on.exit(stopServer(server))
        return(service(0))
      }
      runServer(host, port, app, interruptIntervalMs = interruptIntervalMs,
                options = route_options())
    },
    get(name, envir = topenv(), inherits = FALSE)
  )
}

route_options <- function() .globals$route$options %||% rookdOptions()

# In a pool worker (worker_main()), a routed startServer()/runServer() serves on the
# worker's Unix socket (mode 0600 in the pool's 0700 directory), whatever host and port
# the framework asked for.
worker_pipe_server <- function(app) {
  startPipeServer(.globals$worker_socket, strtoi("077", 8L), app, options = route_options())
}

`%||%` <- function(a, b) if (is.null(a)) b else a

# Replace, wherever it is bound, each function in `from` by its namesake in `to`: in
# httpuv's namespace, the attached package:httpuv, and the imports env of every loaded
# namespace. A binding is only touched when it holds exactly the `from` object, so
# a namespace's own function of the same name is never replaced.
swap_bindings <- function(from, to) {
  envs <- list(asNamespace("httpuv"))
  if ("package:httpuv" %in% search()) envs <- c(envs, list(as.environment("package:httpuv")))
  for (pkg in loadedNamespaces()) {
    # base's namespace has the global env as parent, not an imports env: leave it alone.
    if (pkg %in% c("httpuv", "base")) next
    envs <- c(envs, list(parent.env(asNamespace(pkg))))
  }
  for (env in envs) {
    for (name in names(from)) {
      if (!exists(name, envir = env, inherits = FALSE)) next
      if (!identical(get(name, envir = env, inherits = FALSE), from[[name]])) next
      rebind(env, name, to[[name]])
    }
  }
  invisible()
}

rebind <- function(env, name, value) {
  locked <- bindingIsLocked(name, env)
  # Namespace bindings are locked: unlock this one binding, relock it at once.
  if (locked) unlockBinding(name, env)
  assign(name, value, envir = env)
  if (locked) lockBinding(name, env)
}
