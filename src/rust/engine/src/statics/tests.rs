//! Table-level tests: matching, options, and the request pipeline without sockets.
use super::*;

#[test]
fn table_is_send_sync() {
    fn f<T: Send + Sync + Clone + Default>() {}
    f::<StaticPaths>();
}
