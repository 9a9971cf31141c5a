"""AVE common subsystems for Python 3, on the Rust crates of the ``ave`` workspace.

The modules and names are those of the original ``ave-common`` package:

* :mod:`ave.cmd` -- run commands on a pseudoterminal (``run``, ``run_bg``);
* :mod:`ave.config` -- default configuration files, authentication keys, ``/etc/ave/user``;
* :mod:`ave.persona` -- drop privileges to a user (``become_user``);
* :mod:`ave.profile` -- hashable resource profiles (``Profile``);
* :mod:`ave.exceptions` -- the exception classes that travel over RPC;
* :mod:`ave.network.connection`, :mod:`ave.network.control`,
  :mod:`ave.network.process`, :mod:`ave.network.pipe`, :mod:`ave.network.fdtx`,
  :mod:`ave.network.exceptions` -- framed connections, the RPC server ``Control`` and
  client ``RemoteControl``, processes, pipes and descriptor transfer.

Services written for the original (subclasses of ``Control`` with ``@Control.rpc``
methods) run unchanged, apart from Python 2 syntax; the network work is done by Rust
without the GIL.
"""
