//! Unit tests of the method table and the did-you-mean.

use ave::network::{Service, control::Params, diagnostic};

use crate::methods::*;

#[test]
fn misspelt_names_find_the_method_meant() {
    let methods = diagnostic::service(diagnostic::Options::new()).methods();
    assert_eq!(closest("uper", &methods), Some("upper"));
    assert_eq!(closest("sync_pnig", &methods), Some("sync_ping"));
    assert_eq!(closest("WHOAMI", &methods), Some("whoami"));
    assert_eq!(closest("reboot_the_lab", &methods), None);
    assert_eq!(distance("kitten", "sitting"), 3);
    assert_eq!(distance("", "abc"), 3);
}

#[test]
fn the_table_shows_parameters_and_access() {
    let service = Service::builder("t")
        .rpc("ping", Params::none().optional(["alt"]), |_, (_alt,): (Option<String>,)| async {
            Ok(1)
        })
        .rpc("secret", Params::none(), |_, ()| async { Ok(2) })
        .auth()
        .rpc("admin_only", ave::network::control::params(["what"]), |_, (_w,): (String,)| async {
            Ok(3)
        })
        .preauth(["admin", "root"])
        .rpc_raw("any", |_, _| async { Ok(4) })
        .build();
    assert_eq!(
        table(&service.methods(), "  "),
        "  admin_only(what)  the keys of admin, root\n\
         \x20 any(...)          everyone\n\
         \x20 ping([alt])       everyone\n\
         \x20 secret()          authenticated callers\n"
    );
}
