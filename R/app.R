# Turning what users pass as `app` into the environment the bridge evaluates in.

app_field <- function(app, name) {
  # Reference class objects signal an error for unknown fields; lists and envs give NULL.
  tryCatch(app[[name]], error = function(e) NULL)
}

# An environment holding the app's `call`, and `onHeaders` / `onWSOpen` if it has them.
# The bridge evaluates `call(req)` in it, so an error reads "Error in call(req) : ...".
as_rookd_app <- function(app) {
  if (is.function(app)) {
    app <- list(call = app)
  }
  if (!is.list(app) && !is.environment(app)) {
    stop("`app` must be a function, a list or an environment with a `call` function, ",
         "or a reference class object with a `call` method; got ", class(app)[1], ".",
         call. = FALSE)
  }
  call <- if (methods::is(app, "envRefClass")) {
    tryCatch(app$call, error = function(e) NULL)
  } else {
    app_field(app, "call")
  }
  if (is.null(call)) {
    # As httpuv: an app without `call` (only `staticPaths`, say) is valid; whatever its
    # static paths do not serve gets httpuv's 404.
    call <- not_found_app
  } else if (!is.function(call)) {
    stop("`app$call` must be a function: a Rook app needs `call = function(req) ...` ",
         "returning list(status, headers, body).", call. = FALSE)
  }
  env <- new.env(parent = globalenv())
  env$call <- call
  on_headers <- app_field(app, "onHeaders")
  if (!is.null(on_headers)) {
    if (!is.function(on_headers)) stop("`app$onHeaders` must be a function.", call. = FALSE)
    env$onHeaders <- on_headers
  }
  on_ws_open <- app_field(app, "onWSOpen")
  if (!is.null(on_ws_open)) {
    if (!is.function(on_ws_open)) stop("`app$onWSOpen` must be a function.", call. = FALSE)
    env$onWSOpen <- on_ws_open
  }
  app_static_paths(app, env)
  env
}

# httpuv's answer for a request that an app without `call` does not serve statically.
not_found_app <- function(req) {
  list(status = 404L, headers = list("Content-Type" = "text/plain"), body = "404 Not Found\n")
}
