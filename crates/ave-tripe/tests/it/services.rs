//! Service providers and submitters, relayed by the simulator: jobs, failures, HELP and
//! QUIT, cancellation, losing a service to a later version, a provider going away, and
//! interoperation with an independent Python provider and submitter.

use ave_test_support::python::{Peer, python3};
use ave_tripe::{
    Client, Error, Event, FailKind, JobEnd, JobError, Note, OptionParser, Service, ServiceProvider,
    ServiceRunner, StopReason, handler, run_services, timespec,
};
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{LIMIT, connect, peer_script, python, sim::Sim, within};

/// Signals from the `wait` command's jobs: started, and dropped (aborted or finished);
/// and every job's end as the provider reports it (when [`start_provider`] runs it).
struct Signals {
    started: mpsc::UnboundedReceiver<String>,
    dropped: mpsc::UnboundedReceiver<String>,
    ends: mpsc::UnboundedReceiver<(String, JobEnd)>,
    ends_tx: mpsc::UnboundedSender<(String, JobEnd)>,
}

/// The test service: `say`, `fail`, `boom`, `err`, `secs` and `wait`.
fn echo_service(version: &str) -> (Service, Signals) {
    let (started_tx, started) = mpsc::unbounded_channel();
    let (dropped_tx, dropped) = mpsc::unbounded_channel();
    let service = Service::new("echo", version)
        .command("say", 1, None, "WORD ...", |job, args| async move {
            for word in args {
                job.info([word]).await?;
            }
            Ok(())
        })
        .command("fail", 0, None, "[TOKEN ...]", |_, args| async move {
            Err(JobError::fail(std::iter::once("echo-failed".to_owned()).chain(args)))
        })
        .command("boom", 0, Some(0), "", |_, _| async move { panic!("handler exploded") })
        .command("err", 0, Some(0), "", |_, _| async move {
            std::fs::read("/nonexistent/ave-tripe-test")?;
            Ok(())
        })
        .command("secs", 1, None, "[-plus TIME] TIME", |job, args| async move {
            let mut options = OptionParser::new(args, &["-plus"]);
            let mut plus = 0;
            while let Some(option) = options.next_option()? {
                if option == "-plus" {
                    plus += timespec(&options.value()?)?.as_secs();
                }
            }
            let rest = options.rest(Some(1), Some(1))?;
            job.info([(timespec(&rest[0])?.as_secs() + plus).to_string()]).await?;
            Ok(())
        })
        .command("wait", 0, Some(0), "", move |job, _| {
            let (started, dropped) = (started_tx.clone(), dropped_tx.clone());
            async move {
                struct Guard(mpsc::UnboundedSender<String>, String);
                impl Drop for Guard {
                    fn drop(&mut self) {
                        let _ = self.0.send(self.1.clone());
                    }
                }
                let _guard = Guard(dropped, job.id().to_owned());
                let _ = started.send(job.id().to_owned());
                // Runs until cancelled; then it may still clean up, and whatever it returns
                // is not sent.
                job.cancelled().await;
                assert!(job.is_cancelled());
                Err(JobError::fail(["not-sent"]))
            }
        });
    let (ends_tx, ends) = mpsc::unbounded_channel();
    (service, Signals { started, dropped, ends, ends_tx })
}

/// A provider of the test service on its own connection, running in a task.
async fn start_provider(sim: &Sim, version: &str) -> (JoinHandle<StopReason>, Signals) {
    let (service, signals) = echo_service(version);
    let mut provider = ServiceProvider::new(connect(sim).await).unwrap();
    let ends = signals.ends_tx.clone();
    provider.on_job_end(move |job, end| {
        let _ = ends.send((job.id().to_owned(), end.clone()));
    });
    within(provider.claim(service)).await.unwrap();
    assert_eq!(provider.services(), ["echo"]);
    (tokio::spawn(async move { provider.run().await }), signals)
}

async fn submit(client: &Client, args: &[&str]) -> Result<Vec<Vec<String>>, Error> {
    within(client.svcsubmit("echo", None, args).unwrap().collect()).await
}

fn words(error: &Error) -> Vec<String> {
    error.failure().unwrap_or_else(|| panic!("not a FAIL: {error:?}")).words()
}

#[tokio::test]
async fn jobs_are_answered_with_tripe_py_conventions() {
    let sim = Sim::start();
    let (provider, _signals) = start_provider(&sim, "1.0").await;
    let client = connect(&sim).await;

    assert_eq!(submit(&client, &["say", "a b", "c", ""]).await.unwrap(), [["a b"], ["c"], [""]]);
    // Service and command names are case-insensitive.
    let lines =
        within(client.svcsubmit("ECHO", None, ["SAY", "x"]).unwrap().collect()).await.unwrap();
    assert_eq!(lines, [["x"]]);
    assert!(
        sim.received()
            .iter()
            .any(|l| l == "SVCSUBMIT -background J00000 -- echo say \"a b\" c \"\"")
    );

    let error = submit(&client, &["fail", "why not"]).await.unwrap_err();
    assert_eq!(words(&error), ["echo-failed", "why not"]);
    let error = submit(&client, &["frobnicate", "x"]).await.unwrap_err();
    assert_eq!(words(&error), ["unknown-svc-command", "frobnicate"]);
    let error = submit(&client, &["say"]).await.unwrap_err();
    assert_eq!(words(&error), ["bad-svc-syntax", "echo", "say", "WORD", "..."]);
    let error = submit(&client, &["boom"]).await.unwrap_err();
    assert_eq!(words(&error), ["svc-internal-error", "panic", "handler exploded"]);
    let error = submit(&client, &["err"]).await.unwrap_err();
    assert_eq!(error.failure().unwrap().kind(), FailKind::SvcInternalError);
    assert_eq!(error.failure().unwrap().args[0], "Error");

    assert_eq!(submit(&client, &["secs", "2m"]).await.unwrap(), [["120"]]);
    assert_eq!(submit(&client, &["secs", "-plus", "1h", "--", "5"]).await.unwrap(), [["3605"]]);
    let error = submit(&client, &["secs", "soon"]).await.unwrap_err();
    assert_eq!(words(&error), ["bad-time-spec", "soon"]);
    let error = submit(&client, &["secs", "-minus", "5"]).await.unwrap_err();
    assert_eq!(words(&error), ["bad-svc-syntax", "echo", "secs", "[-plus", "TIME]", "TIME"]);

    assert_eq!(sim.services(), [("echo".to_owned(), "1.0".to_owned())]);
    assert!(!provider.is_finished());
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn help_lists_the_commands_and_quit_stops_the_provider() {
    let sim = Sim::start();
    let (provider, _signals) = start_provider(&sim, "1.0").await;
    let client = connect(&sim).await;
    within(client.watch(&["-A+n"])).await.unwrap();
    let mut events = client.events();

    let help = submit(&client, &["help"]).await.unwrap();
    let names: Vec<&str> = help.iter().map(|l| l[0].as_str()).collect();
    assert_eq!(names, ["boom", "err", "fail", "help", "quit", "say", "secs", "wait"]);
    assert_eq!(help[5], ["say", "WORD", "..."]);

    assert_eq!(submit(&client, &["quit"]).await.unwrap(), Vec::<Vec<String>>::new());
    assert_eq!(within(provider).await.unwrap(), StopReason::QuitRequested);
    let note = within(events.recv()).await.unwrap();
    assert_eq!(
        note,
        Event::Note(Note::User(vec!["svc-quit".into(), "echo".into(), "admin-request".into()]))
    );
    // The provider's connection closed and the server released the service.
    assert!(sim.wait_until(LIMIT, |s| s.services().is_empty()).await);
    let error = submit(&client, &["say", "x"]).await.unwrap_err();
    assert_eq!(words(&error), ["unknown-service", "echo"]);
}

#[tokio::test]
async fn cancelled_jobs_see_the_cancellation_and_end_once() {
    let sim = Sim::start();
    let (provider, mut signals) = start_provider(&sim, "1.0").await;
    let client = connect(&sim).await;

    // The submitter cancels with BGCANCEL: the provider gets SVCCANCEL, the handler sees
    // the cancellation and returns, and nothing more is sent for the job.
    let mut job = client.svcsubmit("echo", None, ["wait"]).unwrap();
    let started = within(signals.started.recv()).await.unwrap();
    within(job.cancel()).await.unwrap();
    assert!(matches!(within(job.next_info()).await, Err(Error::Cancelled { .. })));
    assert_eq!(within(signals.dropped.recv()).await.unwrap(), started);
    assert_eq!(within(signals.ends.recv()).await.unwrap(), (started.clone(), JobEnd::Cancelled));

    // A submitter that disconnects cancels its jobs too.
    let other = connect(&sim).await;
    let abandoned = other.svcsubmit("echo", None, ["wait"]).unwrap();
    let second = within(signals.started.recv()).await.unwrap();
    drop((abandoned, other));
    assert_eq!(within(signals.dropped.recv()).await.unwrap(), second);
    assert_eq!(within(signals.ends.recv()).await.unwrap(), (second.clone(), JobEnd::Cancelled));
    assert_eq!(sim.service_jobs(), 0);
    for line in sim.received() {
        assert!(!line.contains(&started) || !line.starts_with("SVCFAIL"), "sent {line}");
        assert!(!line.contains(&second) || !line.starts_with("SVCFAIL"), "sent {line}");
    }

    // The provider carries on; every other end is reported once too.
    assert_eq!(submit(&client, &["say", "still", "here"]).await.unwrap(), [["still"], ["here"]]);
    assert_eq!(within(signals.ends.recv()).await.unwrap().1, JobEnd::Ok);
    assert!(submit(&client, &["fail", "x"]).await.is_err());
    assert_eq!(
        within(signals.ends.recv()).await.unwrap().1,
        JobEnd::Failed(JobError::fail(["echo-failed", "x"]))
    );
    assert!(signals.ends.try_recv().is_err());
    assert!(!provider.is_finished());
}

#[tokio::test]
async fn losing_the_service_cancels_its_jobs() {
    let sim = Sim::start();
    let (old, mut signals) = start_provider(&sim, "1.0").await;
    let client = connect(&sim).await;
    let _job = client.svcsubmit("echo", None, ["wait"]).unwrap();
    let started = within(signals.started.recv()).await.unwrap();
    let (_new, _new_signals) = start_provider(&sim, "2.0").await;
    assert_eq!(within(signals.dropped.recv()).await.unwrap(), started);
    assert_eq!(within(signals.ends.recv()).await.unwrap(), (started, JobEnd::Cancelled));
    assert_eq!(within(old).await.unwrap(), StopReason::Idle);
}

#[tokio::test]
async fn a_service_can_make_its_own_jobs() {
    let sim = Sim::start();
    let (log_tx, mut log) = mpsc::unbounded_channel();
    // The factory sees every job: it answers one command itself and runs the table for
    // the others.
    let service = echo_service("1.0").0.job_factory(move |job, args| {
        let log = log_tx.clone();
        async move {
            let _ = log.send(format!("{} {}", job.command(), args.join(" ")));
            if job.command() == "whoami" {
                return job.info(["factory", job.id()]).await.map_err(JobError::from);
            }
            job.run_command(args).await
        }
    });
    let running = tokio::spawn(run_services(sim.path().to_path_buf(), [service]));
    assert!(sim.wait_until(LIMIT, |s| !s.services().is_empty()).await);
    let client = connect(&sim).await;
    let lines = submit(&client, &["whoami"]).await.unwrap();
    assert_eq!(lines[0][0], "factory");
    assert_eq!(submit(&client, &["say", "a"]).await.unwrap(), [["a"]]);
    let error = submit(&client, &["nope"]).await.unwrap_err();
    assert_eq!(words(&error), ["unknown-svc-command", "nope"]);
    assert_eq!(within(log.recv()).await.unwrap(), "whoami ");
    assert_eq!(within(log.recv()).await.unwrap(), "say a");
    submit(&client, &["quit"]).await.unwrap();
    assert_eq!(within(running).await.unwrap().unwrap(), StopReason::QuitRequested);
}

#[tokio::test]
async fn the_runner_takes_a_table_and_runs_init_then_claims_then_setup() {
    let sim = Sim::start();
    let (steps_tx, mut steps) = mpsc::unbounded_channel();
    let init_steps = steps_tx.clone();
    let table = [(
        "Table",
        "3.0",
        vec![(
            "join",
            1,
            None,
            "WORD...",
            handler(|job, args: Vec<String>| async move {
                job.info([args.join("+")]).await?;
                Ok::<(), JobError>(())
            }),
        )],
    )];
    let socket = sim.path().to_path_buf();
    let runner = ServiceRunner::new(&socket)
        .services(table)
        .init(move || {
            // Before connecting: no connection yet.
            let _ = init_steps.send("init".to_owned());
            Ok(())
        })
        .setup(move |provider| {
            Box::pin(async move {
                let services = provider.services().join(",");
                let _ = steps_tx.send(format!("setup {services}"));
                Ok(())
            })
        });
    let provider = within(runner.start()).await.unwrap();
    assert_eq!(within(steps.recv()).await.unwrap(), "init");
    assert_eq!(within(steps.recv()).await.unwrap(), "setup Table");
    assert_eq!(sim.services(), [("Table".to_owned(), "3.0".to_owned())]);
    let mut provider = provider;
    let running = tokio::spawn(async move { provider.run().await });
    let client = connect(&sim).await;
    let lines = within(client.svcsubmit("table", None, ["join", "a", "b"]).unwrap().collect())
        .await
        .unwrap();
    assert_eq!(lines, [["a+b"]]);
    within(client.svcsubmit("table", None, ["quit"]).unwrap().collect()).await.unwrap();
    assert_eq!(within(running).await.unwrap(), StopReason::QuitRequested);

    // A failing init stops before connecting.
    let error = within(ServiceRunner::new(&socket).init(|| Err(Error::EmptyCommand)).start())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::EmptyCommand));
}

#[tokio::test]
async fn a_later_version_takes_the_service_away() {
    let sim = Sim::start();
    let (old, _old_signals) = start_provider(&sim, "1.0").await;
    let watcher = connect(&sim).await;
    within(watcher.watch(&["-A+n"])).await.unwrap();
    let mut events = watcher.events();

    // The same version elsewhere is refused.
    let mut same = ServiceProvider::new(connect(&sim).await).unwrap();
    let error = within(same.claim(echo_service("1.0").0)).await.unwrap_err();
    assert_eq!(words(&error), ["service-exists", "echo", "1.0"]);

    // A later one takes over; the old provider, left with nothing, stops.
    let (new, _new_signals) = start_provider(&sim, "1.10").await;
    assert_eq!(within(old).await.unwrap(), StopReason::Idle);
    assert_eq!(
        within(events.recv()).await.unwrap(),
        Event::Note(Note::SvcClaim { service: "echo".into(), version: "1.10".into() })
    );
    assert_eq!(sim.services(), [("echo".to_owned(), "1.10".to_owned())]);
    assert_eq!(submit(&watcher, &["say", "new"]).await.unwrap(), [["new"]]);
    within(watcher.svcensure("echo", Some("1.9"))).await.unwrap();
    assert!(!new.is_finished());
}

#[tokio::test]
async fn a_provider_that_goes_away_fails_its_jobs() {
    let sim = Sim::start();
    let (service, mut signals) = echo_service("1.0");
    let mut provider = ServiceProvider::new(connect(&sim).await).unwrap();
    within(provider.claim(service)).await.unwrap();
    let quit = provider.quit_handle();
    let running = tokio::spawn(async move {
        let reason = provider.run().await;
        (reason, provider)
    });
    let client = connect(&sim).await;
    let job = client.svcsubmit("echo", None, ["wait"]).unwrap();
    within(signals.started.recv()).await.unwrap();

    quit.quit();
    let (reason, provider) = within(running).await.unwrap();
    assert_eq!(reason, StopReason::QuitRequested);
    assert!(provider.running_jobs().is_empty());
    drop(provider);
    let error = within(job.collect()).await.unwrap_err();
    assert_eq!(words(&error), ["provider-failed"]);
}

#[tokio::test]
async fn the_provider_stops_when_its_connection_does() {
    let sim = Sim::start();
    let (provider, _signals) = start_provider(&sim, "1.0").await;
    sim.drop_connections();
    assert_eq!(within(provider).await.unwrap(), StopReason::ConnectionClosed);

    // With nothing claimed, there is nothing to do.
    let mut idle = ServiceProvider::new(connect(&sim).await).unwrap();
    assert_eq!(within(idle.run()).await, StopReason::Idle);
}

#[tokio::test]
async fn service_table_commands() {
    let sim = Sim::start();
    let client = connect(&sim).await;
    let error = within(client.svcensure("echo", None)).await.unwrap_err();
    assert_eq!(words(&error), ["unknown-service", "echo"]);

    let (service, _signals) = echo_service("2.1");
    let mut provider = ServiceProvider::new(connect(&sim).await).unwrap();
    within(provider.claim(service)).await.unwrap();
    within(client.svcensure("echo", None)).await.unwrap();
    within(client.svcensure("echo", Some("2.0.9"))).await.unwrap();
    let error = within(client.svcensure("echo", Some("2.10"))).await.unwrap_err();
    assert_eq!(words(&error), ["service-too-old", "echo", "2.1"]);
    let query = within(client.svcquery("echo")).await.unwrap();
    assert_eq!((query["name"].as_str(), query["version"].as_str()), ("echo", "2.1"));
    let list = within(client.svclist()).await.unwrap();
    assert_eq!((list[0].name.as_str(), list[0].version.as_str()), ("echo", "2.1"));
    let error = within(client.svcsubmit("echo", Some("3"), ["say", "x"]).unwrap().collect())
        .await
        .unwrap_err();
    assert_eq!(words(&error), ["service-too-old", "echo", "2.1"]);
    assert!(
        sim.received()
            .iter()
            .any(|l| l.starts_with("SVCSUBMIT -background J00000 -version 3 -- echo"))
    );

    // Only the provider may release, or answer jobs.
    let error = within(client.svcrelease("echo")).await.unwrap_err();
    assert_eq!(words(&error), ["not-service-provider", "echo"]);
    let error = within(client.svcok("j1")).await.unwrap_err();
    assert_eq!(words(&error), ["unknown-jobid", "j1"]);
    within(provider.release("echo")).await.unwrap();
    assert!(provider.services().is_empty());
    assert!(within(client.svclist()).await.unwrap().is_empty());
    let error = within(client.svcrelease("echo")).await.unwrap_err();
    assert_eq!(words(&error), ["unknown-service", "echo"]);
}

#[tokio::test]
async fn a_python_provider_serves_our_submitter() {
    let sim = Sim::start();
    // Killed on drop if the test fails before it exits.
    let mut peer = Peer::start(python3().arg(peer_script()).arg("provider").arg(sim.path()));
    let (peer, ready) = tokio::task::spawn_blocking(move || {
        let ready = peer.line(LIMIT);
        (peer, ready)
    })
    .await
    .unwrap();
    assert_eq!(ready.trim(), "READY");

    let client = connect(&sim).await;
    let lines = within(
        client.svcsubmit("pyecho", None, ["echo", "one two", "it's", ""]).unwrap().collect(),
    )
    .await
    .unwrap();
    assert_eq!(lines, [["one two"], ["it's"], [""]]);
    let error =
        within(client.svcsubmit("PyEcho", Some("1.0"), ["fail", "no way"]).unwrap().collect())
            .await
            .unwrap_err();
    assert_eq!(words(&error), ["py-failed", "no way"]);
    within(client.svcsubmit("pyecho", None, ["quit"]).unwrap().ok()).await.unwrap();
    let end = tokio::task::spawn_blocking(move || peer.finish(LIMIT)).await.unwrap();
    assert!(end.status.success());
}

#[tokio::test]
async fn our_provider_serves_a_python_submitter() {
    let sim = Sim::start();
    let (provider, _signals) = start_provider(&sim, "1.0").await;
    let path = sim.path().display().to_string();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            python(&args, "")
        })
    };
    let argv = |rest: &[&str]| -> Vec<String> {
        ["submit", path.as_str(), "echo"].iter().chain(rest).map(|s| (*s).to_owned()).collect()
    };
    let out = within(run(argv(&["say", "a b", "'q'"]))).await.unwrap();
    assert_eq!(out, "[\"INFO\", \"a b\"]\n[\"INFO\", \"'q'\"]\n[\"OK\"]\n");
    let out = within(run(argv(&["say"]))).await.unwrap();
    assert_eq!(out, "[\"FAIL\", \"bad-svc-syntax\", \"echo\", \"say\", \"WORD\", \"...\"]\n");
    assert!(!provider.is_finished());
}

#[tokio::test]
async fn run_services_claims_and_serves_until_quit() {
    let sim = Sim::start();
    let path = sim.path().to_path_buf();
    let (service, _signals) = echo_service("1.0");
    let running = tokio::spawn(run_services(path, [service]));
    let client = connect(&sim).await;
    assert!(sim.wait_until(LIMIT, |s| !s.services().is_empty()).await);
    assert_eq!(submit(&client, &["say", "hi"]).await.unwrap(), [["hi"]]);
    submit(&client, &["quit"]).await.unwrap();
    assert_eq!(within(running).await.unwrap().unwrap(), StopReason::QuitRequested);

    let error =
        within(run_services(sim.dir().join("missing"), [] as [Service; 0])).await.unwrap_err();
    assert!(matches!(error, Error::Connect { .. }));
}
