"""Calls per second with 64 connections: a Python service on the bindings, against the
same service on a Python 3 port of the original's poll loop (with and without
TCP_NODELAY), and against the Rust ``ave serve``.

Run by ``cargo xtask python bench`` (release builds). Every server serves ``upper`` on
loopback; the load comes from client processes that each keep their share of the 64
connections busy (one call in flight per connection, closed loop) for a fixed time. The
servers run one after the other, alternating, and each figure is the median of its
rounds. Prints one JSON object with the rates and the three ratios.

Usage: python rpc_throughput.py AVE_BIN [--seconds S] [--rounds N] [--clients P]
"""

import argparse
import hashlib
import hmac
import json
import multiprocessing
import os
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

CONNECTIONS = 64
KEY = b'benchkey'
REQUEST = json.dumps({'method': 'upper', 'params': {'vargs': ['hello world'], 'kwargs': {}},
                      'async': False, 'resource': None}).encode()
FRAME = struct.pack('>L', len(REQUEST)) + REQUEST


# --- the Python 3 port of the original poll loop (spec/ave-common.md 1.3, 3.7) ---

class Service(object):
    def upper(self, message):
        return message.upper()


def poll_loop(port_pipe, nodelay):
    """A single-threaded poll() server shaped like the original Control: non-blocking
    sockets, a partial-frame state machine that reads only the missing bytes, the header
    and the payload written with separate send() calls, and each response queued until
    the socket reports POLLOUT."""
    service = Service()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(('127.0.0.1', 0))
    listener.listen(socket.SOMAXCONN)
    listener.setblocking(False)
    os.write(port_pipe, b'%d\n' % listener.getsockname()[1])
    poller = select.poll()
    IN, OUT = select.POLLIN | select.POLLPRI, select.POLLOUT
    ERR = select.POLLERR | select.POLLHUP | select.POLLNVAL
    poller.register(listener, IN | ERR)
    conns = {}

    class Conn(object):
        def __init__(self, sock):
            self.sock, self.head, self.body, self.out = sock, b'', b'', None
            self.state, self.salt = 'accepting', None

        def get(self):
            try:
                if len(self.head) < 4:
                    self.head += self.sock.recv(4 - len(self.head)) or self.closed()
                    if len(self.head) < 4:
                        return None
                size = struct.unpack('>L', self.head)[0]
                if len(self.body) < size:
                    self.body += self.sock.recv(size - len(self.body)) or self.closed()
                    if len(self.body) < size:
                        return None
            except BlockingIOError:
                return None
            payload, self.head, self.body = self.body, b'', b''
            return payload

        def closed(self):
            raise ConnectionError('closed')

        def put(self, payload):
            self.sock.send(struct.pack('>L', len(payload)))
            self.sock.send(payload)

    def drop(fd):
        poller.unregister(fd)
        conns.pop(fd).sock.close()

    while True:
        for fd, events in poller.poll(-1):
            if fd == listener.fileno():
                sock, _ = listener.accept()
                sock.setblocking(False)
                if nodelay:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conns[sock.fileno()] = Conn(sock)
                poller.register(sock, OUT | ERR)
                continue
            conn = conns.get(fd)
            if conn is None:
                continue
            try:
                if events & ERR:
                    drop(fd)
                elif conn.state == 'accepting' and events & OUT:
                    conn.salt = os.urandom(20)
                    conn.put(b'#CHALLENGE#' + conn.salt)
                    conn.state = 'authenticating'
                    poller.modify(fd, IN | ERR)
                elif conn.state == 'authenticating' and events & IN:
                    digest = conn.get()
                    if digest is not None:
                        good = hmac.new(KEY, conn.salt, hashlib.md5).digest() == digest
                        conn.out = json.dumps({'authenticated': good}).encode()
                        conn.state = 'established'
                        poller.modify(fd, OUT | ERR)
                elif conn.state == 'established' and events & IN:
                    payload = conn.get()
                    if payload is not None:
                        request = json.loads(payload)
                        params = request['params']
                        method = getattr(service, request['method'])
                        result = method(*params['vargs'], **params['kwargs'])
                        conn.out = json.dumps({'result': result}).encode()
                        poller.modify(fd, OUT | ERR)
                elif events & OUT and conn.out is not None:
                    conn.put(conn.out)
                    conn.out = None
                    poller.modify(fd, IN | ERR)
            except (ConnectionError, OSError):
                drop(fd)


# --- the Python service on the bindings ---

def bindings_server(port_pipe):
    from ave.network.connection import find_free_port
    from ave.network.control import Control

    class Bench(Control):
        @Control.rpc
        def upper(self, message):
            return message.upper()

    sock, port = find_free_port()
    os.write(port_pipe, b'%d\n' % port)
    Bench(None, KEY, sock).run()


# --- the load ---

def _read_exact(sock, n):
    data = b''
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError('closed')
        data += chunk
    return data


def _handshake(port):
    sock = socket.create_connection(('127.0.0.1', port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    size, = struct.unpack('>L', _read_exact(sock, 4))
    challenge = _read_exact(sock, size)
    digest = hmac.new(KEY, challenge[11:], hashlib.md5).digest()
    sock.sendall(struct.pack('>L', len(digest)) + digest)
    size, = struct.unpack('>L', _read_exact(sock, 4))
    _read_exact(sock, size)
    sock.setblocking(False)
    return sock


def load(port, count, seconds, start_at, out):
    """Keeps `count` connections busy from `start_at` for `seconds`; reports the calls
    answered in that window."""
    socks = [_handshake(port) for _ in range(count)]
    poller = select.poll()
    buffers = {}
    for s in socks:
        poller.register(s, select.POLLIN)
        buffers[s.fileno()] = [s, b'']
    while time.time() < start_at:
        time.sleep(0.001)
    end = start_at + seconds
    done = 0
    for s in socks:
        s.sendall(FRAME)
    while True:
        now = time.time()
        if now >= end:
            break
        for fd, _ in poller.poll(int((end - now) * 1000) + 1):
            entry = buffers[fd]
            entry[1] += entry[0].recv(65536)
            data = entry[1]
            while len(data) >= 4:
                size, = struct.unpack('>L', data[:4])
                if len(data) < 4 + size:
                    break
                data = data[4 + size:]
                done += 1
                entry[0].sendall(FRAME)
            entry[1] = data
    out.put(done)
    for s in socks:
        s.close()


def measure(port, seconds, clients):
    out = multiprocessing.Queue()
    start_at = time.time() + 1.0 + 0.05 * CONNECTIONS
    share = [CONNECTIONS // clients + (1 if i < CONNECTIONS % clients else 0)
             for i in range(clients)]
    procs = [multiprocessing.Process(target=load, args=(port, n, seconds, start_at, out))
             for n in share]
    for p in procs:
        p.start()
    total = sum(out.get(timeout=60 + seconds) for _ in procs)
    for p in procs:
        p.join(10)
    return total / seconds


def start_server(kind, ave_bin, tmp):
    if kind == 'ave serve':
        port_file = os.path.join(tmp, 'port')
        if os.path.exists(port_file):
            os.unlink(port_file)
        proc = subprocess.Popen([ave_bin, 'serve', '--port-file', port_file, '--authkey',
                                 KEY.decode(), '--home', tmp],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError('ave serve did not start')
            time.sleep(0.02)
        return proc, int(open(port_file).read())
    r, w = os.pipe()
    target = {'bindings': (bindings_server, (w,)),
              'poll loop': (poll_loop, (w, False)),
              'poll loop + TCP_NODELAY': (poll_loop, (w, True))}[kind]
    proc = multiprocessing.Process(target=target[0], args=target[1])
    proc.start()
    os.close(w)
    line = b''
    while not line.endswith(b'\n'):
        chunk = os.read(r, 64)
        if not chunk:
            raise RuntimeError('%s did not start' % kind)
        line += chunk
    os.close(r)
    return proc, int(line)


def stop_server(proc):
    if isinstance(proc, subprocess.Popen):
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    else:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('ave_bin')
    parser.add_argument('--seconds', type=float, default=3.0)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--clients', type=int, default=2)
    args = parser.parse_args()
    kinds = ['bindings', 'poll loop + TCP_NODELAY', 'poll loop', 'ave serve']
    rates = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for kind in kinds:
                proc, port = start_server(kind, args.ave_bin, tmp)
                try:
                    rates[kind].append(measure(port, args.seconds, args.clients))
                finally:
                    stop_server(proc)
                print('%-24s %10.0f calls/s' % (kind, rates[kind][-1]), file=sys.stderr)
    median = {k: statistics.median(v) for k, v in rates.items()}
    report = {
        'connections': CONNECTIONS, 'seconds': args.seconds, 'rounds': args.rounds,
        'calls_per_second': median,
        'bindings_vs_poll_loop_nodelay': median['bindings'] / median['poll loop + TCP_NODELAY'],
        'bindings_vs_poll_loop': median['bindings'] / median['poll loop'],
        'bindings_vs_ave_serve': median['bindings'] / median['ave serve'],
    }
    print(json.dumps(report, indent=2))


if __name__ == '__main__':
    main()
