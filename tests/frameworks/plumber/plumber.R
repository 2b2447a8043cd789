# A small plumber API, run on rookd by tests/frameworks/run.sh through
# rookd::with_rookd(pr$run(...)): the API itself knows nothing of rookd.

#* Which server is answering: TRUE when httpuv is routed to rookd
#* @get /server
#* @serializer unboxedJSON
function() {
  list(rookd = rookd::is_rookd_active(),
       startServer_is_rookd = identical(topenv(environment(httpuv::startServer)),
                                        asNamespace("rookd")))
}

#* Echo a query parameter
#* @get /echo
#* @serializer unboxedJSON
function(msg = "") {
  list(msg = msg)
}

#* Sum of a JSON body's a and b
#* @post /json
#* @serializer unboxedJSON
function(a, b) {
  list(sum = as.numeric(a) + as.numeric(b))
}

#* A form body
#* @post /form
#* @serializer unboxedJSON
function(name, city) {
  list(greeting = paste0("hello ", name, " from ", city))
}

#* A multipart body: the uploaded file's name, size and first line, and a text field
#* @post /upload
#* @serializer unboxedJSON
function(req) {
  parts <- req$body
  f <- parts$upload
  list(filename = f$filename, size = length(f$value),
       first_line = strsplit(rawToChar(f$value), "\n", fixed = TRUE)[[1]][1],
       note = if (is.raw(parts$note$value)) rawToChar(parts$note$value) else parts$note$parsed)
}

#* A PNG plot
#* @get /plot
#* @serializer png list(width = 200, height = 150)
function() {
  plot(1:10, main = "rookd")
}

#* An R error: plumber answers 500
#* @get /error
function() {
  stop("deliberate failure")
}

#* Sets a cookie
#* @get /setcookie
#* @serializer unboxedJSON
function(res, value = "chocolate") {
  res$setCookie("flavour", value)
  list(set = value)
}

#* Reads the cookie back
#* @get /getcookie
#* @serializer unboxedJSON
function(req) {
  list(flavour = req$cookies$flavour %||% "")
}

#* An async endpoint: a promise resolved 0.3 s later by the later event loop
#* @get /async
#* @serializer unboxedJSON
function() {
  promises::promise(function(resolve, reject) {
    later::later(function() resolve(list(async = TRUE, answer = 42)), 0.3)
  })
}

`%||%` <- function(a, b) if (is.null(a)) b else a
