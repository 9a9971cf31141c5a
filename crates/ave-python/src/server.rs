//! The server side: a Python `Control` subclass served by the Rust `Control`.
//!
//! The threading model: the Rust server runs on a runtime thread of its own and does all
//! the network work (accepting, handshakes, reading and validating requests, writing
//! replies) without the GIL. Every call of a Python method, and every hook, is queued to
//! the thread that called `run()`, which executes them one at a time with the GIL, in the
//! order they arrived, and releases the GIL while it waits for the next one. So Python
//! code runs as in the original (one thing at a time, no locks needed), while a slow
//! method on one connection never stops other connections' requests from being read and
//! queued. That thread also runs Python signal handlers at least every 100 ms.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddr, TcpStream},
    sync::{Mutex, MutexGuard, PoisonError, mpsc},
    thread,
    time::Duration,
};

use ave::{
    exceptions::AveException,
    network::{
        Address, Control, Error, Service,
        connection::Connection,
        control::{ConnectionId, ConnectionInfo, ControlHandle, RawArgs, RpcResult, Stopped},
        process::Pid,
    },
};
use pyo3::{
    exceptions::{PyException, PyValueError},
    prelude::*,
    types::{PyDict, PyTuple},
};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::{convert, errors, sys};

/// What the serving thread is asked to do.
enum Job {
    Call { method: String, conn: ConnectionId, address: Address, args: RawArgs, reply: Reply },
    New(ConnectionInfo),
    Lost(ConnectionInfo),
    Idle,
    Joined(i32, i32),
    Done(Result<Stopped, Error>),
}

type Reply = oneshot::Sender<RpcResult<Value>>;

/// How the serving thread waits between jobs: at most this long before it runs Python's
/// signal handlers.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// A connection as Python code sees it: `self.current_connection`, the keys of
/// `self.established`, the argument of the hooks.
#[pyclass(module = "ave._native", frozen)]
pub(crate) struct Peer {
    id: u64,
    host: String,
    port: u16,
}

#[pymethods]
impl Peer {
    /// The server's number for the connection.
    #[getter]
    fn id(&self) -> u64 {
        self.id
    }

    /// The peer's `(host, port)`.
    #[getter]
    fn address(&self) -> (String, u16) {
        (self.host.clone(), self.port)
    }

    /// The peer's port.
    #[getter]
    fn port(&self) -> u16 {
        self.port
    }

    fn __repr__(&self) -> String {
        format!("Connection(address=('{}', {}))", self.host, self.port)
    }
}

/// The running server, as `Control` methods reach it while `run()` serves.
#[pyclass(module = "ave._native", frozen)]
pub(crate) struct Server {
    control: ControlHandle,
    runtime: tokio::runtime::Handle,
}

#[pymethods]
impl Server {
    /// Ends the event loop; the server closes every connection without a message.
    fn stop(&self) {
        self.control.stop();
    }

    /// Shuts down, sending `details` (an exception's details dict) to every connection.
    #[pyo3(signature = (details=None))]
    fn shutdown(&self, details: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let details = match details.filter(|d| !d.is_none()) {
            Some(d) => Some(AveException::from_wire(&convert::to_value_arg(d)?)),
            None => None,
        };
        self.control.shutdown(details);
        Ok(())
    }

    /// Closes the listener; existing connections are served on.
    fn stop_listening(&self, py: Python<'_>) {
        let control = self.control.clone();
        let (done, wait) = mpsc::channel();
        self.runtime.spawn(async move {
            control.stop_listening().await;
            let _ = done.send(());
        });
        let _ = py.detach(move || wait.recv());
    }

    /// Whether the listener is open.
    #[getter]
    fn listening(&self) -> bool {
        self.control.is_listening()
    }

    /// The listening port (0 without a listener).
    #[getter]
    fn port(&self) -> u16 {
        self.control.local_addr().map_or(0, |a| a.port())
    }

    /// Reaps the child `pid` from the event loop; `joined_process` runs when it ends.
    fn join_later(&self, py: Python<'_>, pid: i32) -> PyResult<()> {
        let pid = Pid::from_raw(pid).ok_or_else(|| PyValueError::new_err("not a pid"))?;
        self.control.join_later_pid(pid).map_err(|e| errors::network(py, &e))
    }

    /// Serves the connected socket `fd` (duplicated) as an established connection with
    /// `identity`; returns its connection number.
    #[pyo3(signature = (fd, host, port, identity=None))]
    fn add_connection(
        &self,
        py: Python<'_>,
        fd: i32,
        host: &str,
        port: u16,
        identity: Option<String>,
    ) -> PyResult<u64> {
        let stream = TcpStream::from(sys::dup_fd(fd)?);
        let _entered = self.runtime.enter();
        let conn = Connection::from_std(stream).map_err(|e| errors::network(py, &e))?;
        let id = self
            .control
            .add_connection(conn, Some(Address::new(host, port)), identity)
            .map_err(|e| errors::network(py, &e))?;
        Ok(id.get())
    }

    /// Stops serving the connection `id` (the socket is closed here).
    fn remove_connection(&self, py: Python<'_>, id: u64) -> PyResult<()> {
        let Some(info) = self.find(id) else {
            return Err(PyValueError::new_err(format!("no such connection: {id}")));
        };
        let control = self.control.clone();
        let (done, wait) = mpsc::channel();
        self.runtime.spawn(async move {
            let _ = done.send(control.remove_connection(info.id).await.map(drop));
        });
        match py.detach(move || wait.recv()) {
            Ok(result) => result.map_err(|e| errors::network(py, &e)),
            Err(_) => Ok(()),
        }
    }

    /// Gives the connection `id` an identity (it must have none yet).
    fn set_connection_authkey(&self, py: Python<'_>, id: u64, key: &str) -> PyResult<()> {
        let info = self.find(id).ok_or_else(|| PyException::new_err("not established"))?;
        self.control.set_connection_authkey(info.id, key).map_err(|e| errors::network(py, &e))
    }

    /// The identity of the connection `id`.
    fn get_connection_authkey(&self, py: Python<'_>, id: u64) -> PyResult<Option<String>> {
        let info = self.find(id).ok_or_else(|| PyException::new_err("not established"))?;
        self.control.get_connection_authkey(info.id).map_err(|e| errors::network(py, &e))
    }

    /// The pids deferred with `join_later` and not reaped yet.
    fn deferred_joins(&self) -> Vec<i32> {
        self.control.deferred_joins().into_iter().map(Pid::get).collect()
    }
}

impl Server {
    fn find(&self, id: u64) -> Option<ConnectionInfo> {
        self.control.connections().into_iter().find(|c| c.id.get() == id)
    }
}

/// One RPC method of the Python class: its name and access rules.
type MethodSpec = (String, bool, Option<Vec<String>>);

/// The service: every `@rpc` method forwards its calls to the serving thread.
fn service(
    name: &str,
    methods: Vec<MethodSpec>,
    hidden: Vec<String>,
    jobs: &mpsc::Sender<Job>,
) -> Service {
    let mut builder = Service::builder(name);
    for (method, auth, preauth) in methods {
        let jobs = jobs.clone();
        let owned = method.clone();
        builder = builder.rpc_raw(&method, move |ctx, args| {
            let (reply, answer) = oneshot::channel();
            let job = Job::Call {
                method: owned.clone(),
                conn: ctx.connection(),
                address: ctx.address().clone(),
                args,
                reply,
            };
            let sent = jobs.send(job);
            async move {
                if sent.is_err() {
                    return Err(AveException::exit("the service is stopping"));
                }
                answer.await.unwrap_or_else(|_| Err(AveException::exit("the service is stopping")))
            }
        });
        if auth {
            builder = builder.auth();
        }
        if let Some(accounts) = preauth {
            builder = builder.preauth(accounts);
        }
    }
    for name in hidden {
        builder = builder.hidden(&name);
    }
    let new = jobs.clone();
    let lost = jobs.clone();
    let idle = jobs.clone();
    let joined = jobs.clone();
    builder
        .on_new_connection(move |_, info| {
            let _ = new.send(Job::New(info.clone()));
        })
        .on_lost_connection(move |_, info| {
            let _ = lost.send(Job::Lost(info.clone()));
        })
        .on_idle(move |_| {
            let _ = idle.send(Job::Idle);
        })
        .on_joined_process(move |_, pid, status| {
            let _ = joined.send(Job::Joined(pid.get(), status.raw()));
        })
        .build()
}

/// The server's settings, as `Control.run()` passes them.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub(crate) struct Settings {
    name: String,
    methods: Vec<MethodSpec>,
    hidden: Vec<String>,
    fd: Option<i32>,
    port: Option<u16>,
    authkey: Option<String>,
    alt_keys: Vec<(String, Option<String>)>,
    interval: Option<f64>,
    home: Option<String>,
}

/// Serves the Python object `obj` until the server stops; returns why it stopped
/// (`stop`, `exit`, `shutdown`, `signal` or `replaced`).
#[pyfunction]
pub(crate) fn serve(py: Python<'_>, obj: Bound<'_, PyAny>, settings: Settings) -> PyResult<String> {
    let (jobs, queue) = mpsc::channel::<Job>();
    let queue = Mutex::new(queue);
    let service = service(&settings.name, settings.methods, settings.hidden, &jobs);
    let listener = settings.fd.map(sys::owned_fd).transpose()?;
    let (ready, started) =
        mpsc::channel::<Result<(ControlHandle, tokio::runtime::Handle), String>>();
    let Settings { name, port, authkey, alt_keys, interval, home, .. } = settings;
    let thread = thread::Builder::new()
        .name(format!("{name}-rt"))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready.send(Err(format!("cannot start the runtime: {e}")));
                    return;
                }
            };
            let built = runtime.block_on(async {
                let mut builder = Control::builder(service).name(name);
                builder = match listener {
                    Some(fd) => builder.listener_fd(fd),
                    None => {
                        builder.bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port.unwrap_or(0))))
                    }
                };
                builder = builder.authkey(authkey.as_deref());
                for (account, key) in &alt_keys {
                    builder = builder.account(account, key.as_deref());
                }
                builder = builder.interval(crate::client::seconds(interval));
                if let Some(home) = home {
                    builder = builder.home(home);
                }
                builder.build()
            });
            let control = match built {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready.send(Err(errors::chain(&e)));
                    return;
                }
            };
            let _ = ready.send(Ok((control.handle(), runtime.handle().clone())));
            let result = runtime.block_on(control.run());
            let _ = jobs.send(Job::Done(result));
        })
        .map_err(|e| errors::plain(&e))?;
    let (control, runtime) = match py.detach(move || started.recv()) {
        Ok(Ok(pair)) => pair,
        Ok(Err(message)) => {
            let _ = py.detach(|| thread.join());
            return Err(PyException::new_err(message));
        }
        Err(_) => {
            let _ = py.detach(|| thread.join());
            return Err(PyException::new_err("the server thread ended before it started"));
        }
    };
    let server = Bound::new(py, Server { control: control.clone(), runtime })?;
    obj.setattr("_ave_server", &server)?;
    let outcome = Worker::new(py, &obj).run(&queue);
    if outcome.is_err() {
        control.stop();
        // Drain until the server reports its end, so no reply is left waiting.
        while let Ok(job) = py.detach(|| lock(&queue).recv()) {
            if let Job::Done(_) = job {
                break;
            }
        }
    }
    let _ = py.detach(|| thread.join());
    obj.setattr("_ave_server", py.None())?;
    let stopped = outcome?;
    Ok(match stopped {
        Ok(Stopped::Stop) => "stop".to_owned(),
        Ok(Stopped::Exit(_)) => "exit".to_owned(),
        Ok(Stopped::Shutdown(_)) => "shutdown".to_owned(),
        Ok(Stopped::Signal(_)) => "signal".to_owned(),
        Ok(Stopped::Replaced) => "replaced".to_owned(),
        Ok(_) => "stopped".to_owned(),
        Err(e) => return Err(errors::network(py, &e)),
    })
}

/// The serving thread's state: the Python object and its connections.
struct Worker<'py, 'a> {
    py: Python<'py>,
    obj: &'a Bound<'py, PyAny>,
    peers: HashMap<u64, Bound<'py, Peer>>,
    established: Option<Bound<'py, PyDict>>,
    details: Option<Bound<'py, PyAny>>,
    exit: Option<Bound<'py, PyAny>>,
}

impl<'py, 'a> Worker<'py, 'a> {
    fn new(py: Python<'py>, obj: &'a Bound<'py, PyAny>) -> Worker<'py, 'a> {
        let established =
            obj.getattr("established").ok().and_then(|d| d.cast_into::<PyDict>().ok());
        let details =
            py.import("ave.network.control").and_then(|m| m.getattr("_exception_details")).ok();
        let exit = py.import("ave.exceptions").and_then(|m| m.getattr("Exit")).ok();
        Worker { py, obj, peers: HashMap::new(), established, details, exit }
    }

    /// Runs jobs until the server reports its end.
    fn run(&mut self, queue: &Mutex<mpsc::Receiver<Job>>) -> PyResult<Result<Stopped, Error>> {
        loop {
            let first = self.py.detach(|| lock(queue).recv_timeout(SIGNAL_CHECK));
            let mut job = match first {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.py.check_signals()?;
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(PyException::new_err("the server thread ended"));
                }
            };
            // Everything already queued runs under this one hold of the GIL.
            loop {
                if let Job::Done(result) = job {
                    return Ok(result);
                }
                self.handle(job);
                match lock(queue).try_recv() {
                    Ok(next) => job = next,
                    Err(_) => break,
                }
            }
            self.py.check_signals()?;
        }
    }

    fn peer(&mut self, id: ConnectionId, address: &Address) -> Bound<'py, Peer> {
        let py = self.py;
        self.peers
            .entry(id.get())
            .or_insert_with(|| {
                let (host, port) = split_address(address);
                Bound::new(py, Peer { id: id.get(), host, port }).expect("a Peer object")
            })
            .clone()
    }

    fn hook<A: pyo3::call::PyCallArgs<'py>>(&self, name: &str, args: A) {
        if let Err(e) = self.obj.call_method1(name, args) {
            e.print(self.py);
        }
    }

    fn handle(&mut self, job: Job) {
        match job {
            Job::Call { method, conn, address, args, reply } => {
                let peer = self.peer(conn, &address);
                let result = self.call(&method, &peer, args);
                let _ = reply.send(result);
            }
            Job::New(info) => {
                let peer = self.peer(info.id, &info.address);
                if let Some(established) = &self.established {
                    let _ = established.set_item(&peer, info.identity.as_deref());
                }
                self.hook("new_connection", (peer, info.identity));
            }
            Job::Lost(info) => {
                let peer = self.peer(info.id, &info.address);
                self.peers.remove(&info.id.get());
                if let Some(established) = &self.established {
                    let _ = established.del_item(&peer);
                }
                self.hook("lost_connection", (peer, info.identity));
            }
            Job::Idle => self.hook("idle", ()),
            Job::Joined(pid, status) => self.hook("_ave_joined", (pid, status)),
            Job::Done(_) => {}
        }
    }

    fn call(&self, method: &str, peer: &Bound<'py, Peer>, args: RawArgs) -> RpcResult<Value> {
        let py = self.py;
        let attempt = (|| -> PyResult<Bound<'py, PyAny>> {
            self.obj.setattr("current_connection", peer)?;
            let function = self.obj.getattr(method)?;
            let vargs =
                args.vargs.iter().map(|v| convert::to_py(py, v)).collect::<PyResult<Vec<_>>>()?;
            let vargs = PyTuple::new(py, vargs)?;
            let kwargs = PyDict::new(py);
            for (k, v) in &args.kwargs {
                kwargs.set_item(k, convert::to_py(py, v)?)?;
            }
            function.call(vargs, Some(&kwargs))
        })();
        match attempt {
            Ok(result) => convert::to_value(&result)
                .map_err(|e| AveException::custom("Exception", e.message())),
            Err(e) => Err(self.exception(e)),
        }
    }

    /// A Python exception in its wire form (`ave.network.control._exception_details`).
    fn exception(&self, e: PyErr) -> AveException {
        let py = self.py;
        let value = e.value(py);
        let traceback = e.traceback(py);
        let details = self
            .details
            .as_ref()
            .and_then(|f| f.call1((value, traceback)).ok())
            .and_then(|d| convert::to_value(&d).ok());
        // An `Exit` the method raised (its own, or one it relays) stops the server, as in
        // the original; exceptions rebuilt from data never do by themselves.
        let is_exit =
            self.exit.as_ref().is_some_and(|exit| value.is_instance(exit).unwrap_or(false));
        match details {
            Some(details) if is_exit => AveException::from_wire(&details).into_stop_request(),
            Some(details) => AveException::from_wire(&details),
            None => {
                let type_name = value
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_else(|_| "Exception".to_owned());
                let message = value.str().map(|s| s.to_string()).unwrap_or_default();
                AveException::custom(type_name, message)
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn split_address(address: &Address) -> (String, u16) {
    match address.to_json() {
        Value::Array(parts) if parts.len() == 2 => (
            parts[0].as_str().unwrap_or_default().to_owned(),
            parts[1].as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or(0),
        ),
        _ => (address.to_string(), 0),
    }
}
