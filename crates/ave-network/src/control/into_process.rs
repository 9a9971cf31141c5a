//! A `Control` served by a child process, the way the original's services are started:
//! build the `Control` (its listener is bound here, so the port is known at once), turn
//! it into a [`Process`], and start that.
//!
//! The child keeps the listening socket, gives itself the service's kernel name and the
//! parent-death signal (SIGTERM by default, a clean shutdown), builds its own current-thread tokio
//! runtime, reads SIGTERM and SIGUSR1 from a signalfd, and serves until the `Control`
//! stops; it then exits 0 (1 if serving failed). A synchronized start returns once all of
//! that is in place. The parent's copy of the listener is closed by `start`, so when the
//! child is gone, connects are refused.

use std::os::fd::AsFd;

use tokio::runtime::Runtime;

use crate::{
    Error,
    control::signals::ControlSignals,
    control::{Control, ControlHandle},
    process::{ChildContext, FdSet, Process, Target, TargetError},
};

impl Control {
    /// A [`Process`] that serves this `Control` in a child, named after it (the
    /// `Control`'s name, `ave-<service>` by default). Start it with
    /// [`Process::start`]; note the port first, the `Control` is moved.
    ///
    /// ```no_run
    /// use ave_network::{Control, diagnostic};
    ///
    /// let control = Control::builder(diagnostic::service(diagnostic::Options::new())).build()?;
    /// let port = control.port();
    /// let mut server = control.into_process();
    /// // Returns once the child serves, with its signal handling in place.
    /// server.start(false, true)?;
    /// // ... talk to 127.0.0.1:port ...
    /// server.terminate()?;
    /// assert!(server.join(None)?.success());
    /// # let _ = port;
    /// # Ok::<(), ave_network::Error>(())
    /// ```
    pub fn into_process(self) -> Process {
        let name = self.handle().name().to_owned();
        Process::new(ServeControl { control: Some(self), runtime: None }).name(name)
    }
}

impl ControlHandle {
    /// Clears the parent-death signal of this process (the original's
    /// `disable_death_signalling`): a `Control` started with
    /// [`Control::into_process`] then outlives its parent. It must be called on the
    /// thread that set it, which for such a `Control` is the one its methods run on.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the setting cannot be changed.
    pub fn disable_death_signalling(&self) -> Result<(), Error> {
        nix::sys::prctl::set_pdeathsig(None)
            .map_err(|e| Error::io("clear the parent-death signal", e.into()))
    }
}

/// The target of a `Control` served by a child.
struct ServeControl {
    control: Option<Control>,
    runtime: Option<Runtime>,
}

impl Target for ServeControl {
    fn close_fds(&mut self, child: &mut ChildContext, exclude: &FdSet) -> std::io::Result<()> {
        let mut exclude = exclude.clone();
        if let Some(listener) = self.control.as_ref().and_then(Control::listener_fd) {
            exclude.insert(listener.as_fd());
        }
        child.close_fds(&exclude)
    }

    fn initialize(&mut self, child: &mut ChildContext) -> Result<(), TargetError> {
        let control = self.control.as_ref().ok_or("the control was already served")?;
        child.set_process_name()?;
        child.perform_prctl(child.death_signal())?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let signals = {
            let _inside = runtime.enter();
            ControlSignals::signalfd()?
        };
        *crate::sync::lock(&control.handle().shared.signals) = Some(signals);
        self.runtime = Some(runtime);
        Ok(())
    }

    fn run(&mut self, child: &mut ChildContext) -> Result<(), TargetError> {
        let control = self.control.take().ok_or("the control was already served")?;
        let runtime = self.runtime.as_ref().ok_or("the runtime was not built")?;
        let stopped = runtime.block_on(control.run())?;
        child.log(format!("stopped: {stopped:?}"));
        Ok(())
    }
}
