# Async responses: `call` may return a promise (promises package) of a response. The
# bridge hands it here; the request waits, while others are served, until it settles.
promise_then <- function(promise, token) {
  promises::then(
    promise,
    onFulfilled = function(value) {
      if (is.null(value)) {
        message("rookd: the app's promise resolved to NULL instead of a response")
      }
      rookd_async_settle(token, value)
    },
    onRejected = function(error) {
      message("rookd: error in the app's promise: ", conditionMessage(error))
      rookd_async_settle(token, NULL)
    }
  )
  invisible()
}
