#!/usr/bin/env python3
"""An independent TrIPE admin peer (Python 3, stdlib only), written from
spec/tripe-admin.md for the interoperability tests of ave-tripe.

Modes:
  split                 stdin: one JSON string per line; stdout: the words of each
                        (mLib str_qword rules), one JSON list per line.
  quote                 stdin: one JSON list of words per line; stdout: the command
                        line tripe.py 2010 would send (single-quote style).
  provider SOCKET       claim service `pyecho 1.0` and answer its jobs:
                          echo ARGS...  one SVCINFO per argument, then SVCOK
                          fail WHY      SVCFAIL py-failed WHY
                          quit          SVCOK, then exit
                        prints READY once the claim succeeded.
  submit SOCKET SVC ARGS...
                        submit a background job and print one JSON line per event:
                        ["INFO", words...], then ["OK"] or ["FAIL", tokens...].
  benchloop SOCKET PEER one connection, driven from stdin, one request per line:
                          rtt N    send VERSION N times, one at a time;
                          bg JOBS  start JOBS background PINGs of PEER, then wait for
                                   all of them to end;
                        print the seconds each request took, one line each.
"""

import json
import re
import socket
import sys
import time

SPACE = " \t\n\x0b\x0c\r"


def next_word(text):
    """mLib str_qword with quoting: (word, rest) or None."""
    i, n = 0, len(text)
    while i < n and text[i] in SPACE:
        i += 1
    if i == n:
        return None
    word = []
    quote = None
    while i < n:
        c = text[i]
        i += 1
        if c == "\\":
            if i < n:
                word.append(text[i])
                i += 1
        elif quote is not None:
            if c == quote:
                quote = None
            else:
                word.append(c)
        elif c in "'\"":
            quote = c
        elif c in SPACE:
            break
        else:
            word.append(c)
    while i < n and text[i] in SPACE:
        i += 1
    return "".join(word), text[i:]


def split(text):
    words = []
    while True:
        got = next_word(text)
        if got is None:
            return words
        word, text = got
        words.append(word)


BARE = re.compile(r"^[^\\'\"\s]+$")


def quotify(word):
    """tripe.py 2010's client quoting."""
    if BARE.match(word) and not any(c in word for c in SPACE):
        return word
    return "'" + re.sub(r"([\\'])", r"\\\1", word) + "'"


class Admin:
    """A minimal admin connection: one command at a time, service lines queued."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.pending = []

    def line(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        raw, self.buf = self.buf.split(b"\n", 1)
        return raw.decode("utf-8", "replace").rstrip("\r")

    def command(self, *words):
        """Send one command; return (code, words) of its end (OK, FAIL or BGDETACH)
        and the INFO lines. Service and broadcast lines are queued."""
        self.sock.sendall((" ".join(quotify(w) for w in words) + "\n").encode())
        infos = []
        while True:
            text = self.line()
            if text is None:
                raise EOFError("server closed the connection")
            got = next_word(text)
            if got is None:
                continue
            code, rest = got
            args = split(rest)
            if code == "INFO":
                infos.append(args)
            elif code in ("OK", "FAIL", "BGDETACH"):
                return code, args, infos
            else:
                self.pending.append((code, args))

    def event(self):
        if self.pending:
            return self.pending.pop(0)
        while True:
            text = self.line()
            if text is None:
                return None
            got = next_word(text)
            if got is not None:
                code, rest = got
                return code, split(rest)


def provider(path):
    admin = Admin(path)
    code, args, _ = admin.command("SVCCLAIM", "pyecho", "1.0")
    if code != "OK":
        print("CLAIM-FAILED", json.dumps(args), flush=True)
        return 1
    print("READY", flush=True)
    while True:
        event = admin.event()
        if event is None:
            return 0
        code, args = event
        if code != "SVCJOB":
            continue
        jid, _service, cmd, rest = args[0], args[1], args[2], args[3:]
        if cmd == "echo":
            for word in rest:
                admin.command("SVCINFO", jid, word)
            admin.command("SVCOK", jid)
        elif cmd == "fail":
            admin.command("SVCFAIL", jid, "py-failed", *rest)
        elif cmd == "quit":
            admin.command("SVCOK", jid)
            return 0
        else:
            admin.command("SVCFAIL", jid, "unknown-svc-command", cmd)


def submit(path, service, args):
    admin = Admin(path)
    code, words, _ = admin.command("SVCSUBMIT", "-background", "J1", "--", service, *args)
    if code == "FAIL":
        print(json.dumps(["FAIL"] + words), flush=True)
        return 0
    while True:
        event = admin.event()
        if event is None:
            print(json.dumps(["EOF"]), flush=True)
            return 1
        code, words = event
        if code == "BGINFO" and words[:1] == ["J1"]:
            print(json.dumps(["INFO"] + words[1:]), flush=True)
        elif code == "BGOK" and words[:1] == ["J1"]:
            print(json.dumps(["OK"]), flush=True)
            return 0
        elif code == "BGFAIL" and words[:1] == ["J1"]:
            print(json.dumps(["FAIL"] + words[1:]), flush=True)
            return 0


def benchloop(path, peer):
    admin = Admin(path)
    seq = 0
    for request in sys.stdin:
        what, count = request.split()
        count = int(count)
        started = time.perf_counter()
        if what == "rtt":
            for _ in range(count):
                code, _, infos = admin.command("VERSION")
                assert code == "OK" and len(infos) == 1
        elif what == "bg":
            live = set()
            for _ in range(count):
                tag = "J%05d" % seq
                seq += 1
                code, _, _ = admin.command("PING", "-background", tag, "--", peer)
                assert code == "BGDETACH"
                live.add(tag)
            while live:
                code, words = admin.event()
                if code in ("BGOK", "BGFAIL"):
                    live.discard(words[0])
        else:
            print("unknown request", what, file=sys.stderr)
            return 2
        print(time.perf_counter() - started, flush=True)
    return 0


def main(argv):
    mode = argv[1]
    if mode == "split":
        for line in sys.stdin:
            print(json.dumps(split(json.loads(line))), flush=True)
        return 0
    if mode == "quote":
        for line in sys.stdin:
            print(json.dumps(" ".join(quotify(w) for w in json.loads(line))), flush=True)
        return 0
    if mode == "provider":
        return provider(argv[2])
    if mode == "submit":
        return submit(argv[2], argv[3], argv[4:])
    if mode == "benchloop":
        return benchloop(argv[2], argv[3])
    print("unknown mode", mode, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
