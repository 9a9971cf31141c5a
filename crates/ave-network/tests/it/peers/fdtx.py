#!/usr/bin/env python3
"""An independent fdtx peer, written from spec/ave-common.md section 6 (stdlib only).

It speaks the original's message convention: one text chunk plus descriptors in one
sendmsg with a single SOL_SOCKET/SCM_RIGHTS control message, as libfdtx's fdtx_send
builds it; the receiver makes room for a fixed number of descriptors, as fdtx_recv.

Usage:
  fdtx.py send-broker SOCKET FILE...
      Connects to SOCKET and, for each FILE, opens it for writing and sends the broker's
      handover message: a 16-digit key ("1000000000000000" + index) plus exactly one
      descriptor. Then sends "foo\\0bar" without descriptors, and closes.
  fdtx.py recv SOCKET COUNT
      Connects to SOCKET and receives COUNT messages with recvmsg(32, CMSG_SPACE(2 * 4)),
      as the broker's get(32, 2). For each, prints one JSON line: the bytes (hex), the
      control messages (level, type, data length) and the number of descriptors; writes
      "star cream" to each descriptor received and closes it. Then expects end of
      stream and prints "eof".
"""

import array
import json
import os
import socket
import sys


def connect(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(path)
    return sock


def send_broker(path, files):
    sock = connect(path)
    for i, name in enumerate(files):
        key = ("1%015d" % i).encode("ascii")
        assert len(key) == 16
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        fds = array.array("i", [fd])
        sent = sock.sendmsg([key], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
        assert sent == len(key), sent
        os.close(fd)
    sock.sendall(b"foo\0bar")
    sock.close()


def recv(path, count):
    sock = connect(path)
    space = socket.CMSG_SPACE(2 * array.array("i").itemsize)
    for _ in range(count):
        data, ancdata, flags, _addr = sock.recvmsg(32, space)
        assert not flags & socket.MSG_CTRUNC, "control data truncated"
        cmsgs = []
        fds = []
        for level, kind, payload in ancdata:
            cmsgs.append([level, kind, len(payload)])
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(payload[: len(payload) - (len(payload) % got.itemsize)])
                fds.extend(got)
        for fd in fds:
            os.write(fd, b"star cream")
            os.fsync(fd)
            os.close(fd)
        print(json.dumps({
            "hex": data.hex(),
            "cmsgs": cmsgs,
            "fds": len(fds),
            "sol_socket": socket.SOL_SOCKET,
            "scm_rights": socket.SCM_RIGHTS,
        }), flush=True)
    rest = sock.recv(32)
    assert rest == b"", rest
    print("eof", flush=True)


def main():
    mode = sys.argv[1]
    if mode == "send-broker":
        send_broker(sys.argv[2], sys.argv[3:])
    elif mode == "recv":
        recv(sys.argv[2], int(sys.argv[3]))
    else:
        raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    main()
