//! A service of your own, and clients calling it: the typed builder, a `Control` on a free
//! loopback port, `RemoteControl` (async) and `BlockingRemoteControl` (for code without a
//! runtime).
//!
//! Run it with `cargo run -p ave-network --example service`. It ends by itself: the last
//! call asks the server to stop.

// An example program reports on stdout.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use ave_exceptions::AveException;
use ave_network::{
    client::{BlockingRemoteControl, RemoteControl},
    connection::Address,
    control::{Control, Params, Service, params},
};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Methods: a name, the parameters by name (required, then optional), and an async
    // handler that gets them as a typed tuple.
    let service = Service::builder("inventory")
        .rpc("add", params(["a", "b"]), |_ctx, (a, b): (i64, i64)| async move { Ok(a + b) })
        .rpc(
            "lookup",
            params(["serial"]).optional(["detail"]),
            |_ctx, (serial, detail): (String, Option<bool>)| async move {
                if serial.is_empty() {
                    // The caller receives this exception, its type and its fields.
                    return Err(AveException::custom("NoSuch", "no such equipment")
                        .with_field("serial", json!(serial)));
                }
                Ok(json!({"serial": serial, "detailed": detail.unwrap_or(false)}))
            },
        )
        .rpc("whoami", Params::none(), |ctx, ()| async move { Ok(ctx.identity()) })
        .auth() // the method above needs an authenticated caller
        .rpc("stop", Params::none(), |ctx, ()| async move {
            ctx.control().stop(); // the reply is still delivered
            Ok(())
        })
        .auth()
        .build();
    println!("methods: {:?}", service.method_names());

    // The server: 127.0.0.1 and a free port unless told otherwise.
    let control = Control::builder(service).authkey(Some("s3cret")).build()?;
    let address = Address::new("127.0.0.1", control.port());
    let server = tokio::spawn(control.run());
    println!("serving on {address}");

    // The async client: one connection, calls one after another.
    let timeout = Some(Duration::from_secs(10));
    let client = RemoteControl::new(address.clone(), Some("s3cret")).with_timeout(timeout);
    let sum = client.call("add", (2, 3)).await?;
    println!("add(2, 3) = {sum}");
    assert_eq!(sum, 5);
    println!("whoami() = {}", client.call("whoami", ()).await?);
    let missing = client.call("lookup", ("",)).await.unwrap_err();
    let exception = missing.remote().ok_or("expected the service's exception")?;
    println!("lookup(\"\") raised {}: {}", exception.type_name(), exception.message());
    assert_eq!(exception.field("serial"), Some(&json!("")));

    // The blocking client, for code without a runtime (here on a thread of its own).
    let blocking = tokio::task::spawn_blocking(move || -> Result<(), ave_network::Error> {
        let client = BlockingRemoteControl::new(address, Some("s3cret")).with_timeout(timeout);
        let found = client.call("lookup", ("CB5A1234", true))?;
        println!("lookup(\"CB5A1234\", true) = {found}");
        // A client without the key: the server lets it in without an identity.
        let anonymous = BlockingRemoteControl::new(client.address().clone(), None);
        let refused = anonymous.call("whoami", ()).unwrap_err();
        println!("whoami() without a key: {refused}");
        client.call("stop", ())?;
        Ok(())
    });
    blocking.await??;

    let stopped = server.await??;
    println!("the server stopped: {stopped:?}");
    Ok(())
}
