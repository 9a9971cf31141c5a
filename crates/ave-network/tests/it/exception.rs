//! The original's `exception` tests: exceptions and server traces carried over RPC,
//! through a proxy chain too.

use ave_exceptions::Kind;
use ave_network::{RemoteControl, diagnostic};
use serde_json::json;

use crate::{Server, T, diagnostic as start_diagnostic};

#[tokio::test]
async fn t1_plain_exception_trace() {
    let (server, _) = start_diagnostic(|b| b);
    let remote = RemoteControl::new(server.address(), None).with_timeout(T);
    let err = remote
        .call("raise_plain_exception", ("Lorem ipsum dolor sit amet, etc",))
        .await
        .unwrap_err();
    let e = err.remote().unwrap();
    assert_eq!(e.type_name(), "Exception");
    assert!(e.has_trace());
    let trace = e.trace().unwrap();
    assert_eq!(trace[0].function, "raise_plain_exception");
    assert!(trace[0].file.ends_with("diagnostic.rs"), "{:?}", trace[0]);
    assert!(
        e.to_string()
            .starts_with("Lorem ipsum dolor sit amet, etc\nServer side traceback:\n  File \"")
    );
}

#[tokio::test]
async fn t2_t3_ave_exception_keeps_its_fields() {
    let (server, _) = start_diagnostic(|b| b);
    let remote = RemoteControl::new(server.address(), None).with_timeout(T);
    let err = remote
        .call("raise_ave_exception", (json!({"message": "cow", "extras": "cat"}),))
        .await
        .unwrap_err();
    let e = err.remote().unwrap();
    assert_eq!(e.kind(), Kind::AveException);
    assert_eq!(e.field("extras"), Some(&json!("cat")));
    assert_eq!(e.trace().unwrap()[0].function, "raise_ave_exception");

    let err =
        remote.call("raise_ave_exception", (json!({"message": "deep"}), 3)).await.unwrap_err();
    let functions: Vec<String> =
        err.remote().unwrap().trace().unwrap().into_iter().map(|f| f.function).collect();
    assert_eq!(functions, ["raise_ave_exception"; 4]);

    // A type chosen by the raiser is kept, and a trace it brings is not replaced.
    let err = remote
        .call(
            "raise_ave_exception",
            (json!({"message": "m", "type": "Busy", "trace": [["far.py", 9, "origin", null]]}),),
        )
        .await
        .unwrap_err();
    let e = err.remote().unwrap();
    assert_eq!(e.type_name(), "Busy");
    assert_eq!(e.trace().unwrap()[0].function, "origin");
}

#[tokio::test]
async fn t4_proxy_chain_keeps_the_origin_trace() {
    let (origin, _) = start_diagnostic(|b| b);
    let proxee = RemoteControl::new(origin.address(), None).with_timeout(T);
    let proxy =
        Server::start(diagnostic::service(diagnostic::Options::new().proxee(proxee)), |b| b);
    let remote = RemoteControl::new(proxy.address(), None).with_timeout(T);
    let err = remote.call("raise_ave_exception", (json!({"message": "cow"}),)).await.unwrap_err();
    let e = err.remote().unwrap();
    assert_eq!(e.message(), "proxied: cow");
    assert_eq!(e.trace().unwrap()[0].function, "raise_ave_exception");
    assert_eq!(e.trace().unwrap().len(), 1, "the origin's trace, not a new one");
}

#[tokio::test]
async fn a_panicking_method_answers_and_the_connection_lives() {
    let service = ave_network::Service::builder("p")
        .rpc("boom", ave_network::control::Params::none(), |_, ()| async {
            if true {
                panic!("kaboom");
            }
            Ok(())
        })
        .rpc("ok", ave_network::control::Params::none(), |_, ()| async { Ok("fine") })
        .build();
    let server = Server::start(service, |b| b);
    let remote = RemoteControl::new(server.address(), None).with_timeout(T);
    let err = remote.call("boom", ()).await.unwrap_err();
    assert!(err.to_string().contains("kaboom"), "{err}");
    assert_eq!(remote.call("ok", ()).await.unwrap(), "fine");
}
