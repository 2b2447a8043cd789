# The .Call entry points of the Rust bridge (src/rust/bridge/src/lib.rs), kept by hand:
# extendr 0.9 has no wrapper generator that rextendr's current document() can call.
# Internal: users call the functions in server.R, service.R, websocket.R, utils.R.

rookd_init <- function(namespace, errors, tpl_read, tpl_read_lines, tpl_rewind, ws_new, ws_message, ws_closed) {
  .Call(wrap__rookd_init, namespace, errors, tpl_read, tpl_read_lines, tpl_rewind, ws_new, ws_message, ws_closed)
}
rookd_start <- function(kind, host, port, mask, app_env, options) {
  .Call(wrap__rookd_start, kind, host, port, mask, app_env, options)
}
rookd_stop <- function(id) .Call(wrap__rookd_stop, id)
rookd_server_info <- function(id) .Call(wrap__rookd_server_info, id)
rookd_running_ids <- function() .Call(wrap__rookd_running_ids)
rookd_input_read <- function(ptr, l) .Call(wrap__rookd_input_read, ptr, l)
rookd_input_read_lines <- function(ptr, n) .Call(wrap__rookd_input_read_lines, ptr, n)
rookd_input_rewind <- function(ptr) .Call(wrap__rookd_input_rewind, ptr)
rookd_ws_send <- function(handle, message) .Call(wrap__rookd_ws_send, handle, message)
rookd_ws_close <- function(handle, code, reason) .Call(wrap__rookd_ws_close, handle, code, reason)
rookd_ws_is_open <- function(handle) .Call(wrap__rookd_ws_is_open, handle)
rookd_stats <- function() .Call(wrap__rookd_stats)
rookd_shutdown <- function() .Call(wrap__rookd_shutdown)
rookd_port_available <- function(host, port) .Call(wrap__rookd_port_available, host, port)
rookd_ip_family <- function(ip) .Call(wrap__rookd_ip_family, ip)
rookd_uri <- function(x, op) .Call(wrap__rookd_uri, x, op)
rookd_base64 <- function(x) .Call(wrap__rookd_base64, x)
rookd_async_settle <- function(token, value) .Call(wrap__rookd_async_settle, token, value)
rookd_stream_settle <- function(token, value, ok) .Call(wrap__rookd_stream_settle, token, value, ok)
rookd_option_limits <- function() .Call(wrap__rookd_option_limits)
rookd_static_paths <- function(id) .Call(wrap__rookd_static_paths, id)
rookd_static_set_paths <- function(id, paths) .Call(wrap__rookd_static_set_paths, id, paths)
rookd_static_remove_paths <- function(id, prefixes) .Call(wrap__rookd_static_remove_paths, id, prefixes)
rookd_static_options <- function(id) .Call(wrap__rookd_static_options, id)
rookd_static_set_options <- function(id, update) .Call(wrap__rookd_static_set_options, id, update)
