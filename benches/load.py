#!/usr/bin/env python3
"""Side-by-side load benchmark: postern and Postfix, each relaying what
Postfix's smtp-source sends to Postfix's smtp-sink, on loopback.

For every case and every run, each MTA gets a fresh queue directory, a fresh
sink and the same smtp-source load; runs alternate between the two MTAs and
the medians are reported, with the ratio postern/Postfix from the same run.

Measured per run:
  accepted/s   messages / time until smtp-source has had every 250
  e2e/s        messages / time until the sink has received every message
  cpu ms/msg   CPU time of the MTA's whole process tree, start to stop,
               per message (a cgroup's CPU accounting where the machine
               offers one, else getrusage of a wrapper that waits for it)
  peak MB      peak resident memory of the MTA's process tree (sum of the
               proportional set sizes of its processes, sampled every 20 ms;
               the Python wrapper that accounts the CPU is not counted)
  idle MB      the same, after start and before the load

Both MTAs sync the queue file before answering 250 (Postfix's default;
postern always). Run as root (Postfix's master needs it): benches/load.sh.

Both sides get the same settings, printed at the start of the run: no
reverse lookups of clients (smtpd_peername_lookup = no; --lookups turns them
on for both, each MTA's default), the log to a file
of their own, the queue file synced before 250, the same warm-up (WARMUP
messages through the MTA and the sink before the measured load), and the
same state of the machine before each run (dirty pages written back, the
page cache dropped, so that one run's writeback does not land in the next).
Every run is printed; the summary gives the median and the range (min-max)
of each side.

The latency cases ("lat-200", "lat-1000") send at a fixed rate over
SESSIONS kept connections, each message numbered; a sink of this script
notes when each number arrives, and the result is the distribution (p50,
p99, max) of arrival at the sink minus the 250 that accepted it.

The STARTTLS case ("4k-tls") gives both MTAs the same certificate (EC
P-256, made for the run) and the same client: smtp-source speaks no TLS, so
a Python client of SESSIONS threads does STARTTLS on every connection (a
full handshake each time, no resumption) and sends the same messages.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CASES = {
    "4k": dict(size=4096, msgs=4000, rcpts=1, reuse=False),
    "4k-reuse": dict(size=4096, msgs=4000, rcpts=1, reuse=True),
    "100k": dict(size=102400, msgs=1500, rcpts=1, reuse=False),
    "10rcpt": dict(size=4096, msgs=1500, rcpts=10, reuse=False),
    "4k-tls": dict(size=4096, msgs=1500, rcpts=1, reuse=False, tls=True),
    "lat-200": dict(size=4096, msgs=2000, rcpts=1, reuse=True, rate=200),
    "lat-1000": dict(size=4096, msgs=5000, rcpts=1, reuse=True, rate=1000),
}
SESSIONS = 20
DEADLINE = 300  # seconds a run may take, at most
WARMUP = 200  # messages through each MTA before the measured load
LOOKUPS = ["no"]  # smtpd_peername_lookup for both (--lookups: yes)

# Runs a command in a CPU accounting group of its own (when the machine
# has one to offer) and reports the CPU time of its whole tree: the group's
# total counts every process that ever ran in it, also those a daemon did
# not wait for; without a group, what getrusage says of waited-for children.
WRAPPER = r"""
import json, os, resource, subprocess, sys
out, group = sys.argv[1], sys.argv[2]
if group != "-":
    with open(group, "w") as f:
        f.write(str(os.getpid()))
p = subprocess.run(sys.argv[3:])
r = resource.getrusage(resource.RUSAGE_CHILDREN)
open(out, "w").write(json.dumps({"cpu": r.ru_utime + r.ru_stime}))
"""

CGROUP_V1 = "/sys/fs/cgroup/cpuacct"
CGROUP_V2 = "/sys/fs/cgroup"


class CpuGroup:
    """A cgroup that accounts the CPU of everything started in it."""

    def __init__(self, name):
        self.dir = None
        for base, procs in ((CGROUP_V1, "tasks"), (CGROUP_V2, "cgroup.procs")):
            path = os.path.join(base, name)
            try:
                os.mkdir(path)
            except OSError:
                continue
            if os.path.exists(os.path.join(path, procs)):
                self.dir, self.procs, self.v1 = path, os.path.join(path, procs), base == CGROUP_V1
                return
            os.rmdir(path)

    def seconds(self):
        if self.dir is None:
            return None
        if self.v1:
            with open(os.path.join(self.dir, "cpuacct.usage")) as f:
                return int(f.read()) / 1e9
        with open(os.path.join(self.dir, "cpu.stat")) as f:
            for line in f:
                if line.startswith("usage_usec"):
                    return int(line.split()[1]) / 1e6
        return None

    def remove(self):
        if self.dir is not None:
            try:
                os.rmdir(self.dir)
            except OSError:
                pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, deadline=30):
    end = time.time() + deadline
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(512).startswith(b"220"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answers on port {port}")


def descendants(root):
    """The pids of root and everything below it."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_rss(root):
    """Resident memory of the processes below `root` (the CPU wrapper,
    itself not counted): the sum of each process's proportional share
    (PSS), so that pages shared between Postfix's processes are counted
    once."""
    total = 0
    for pid in descendants(root)[1:]:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


class Sampler(threading.Thread):
    """Peak RSS of a process tree until stopped."""

    def __init__(self, root):
        super().__init__(daemon=True)
        self.root, self.peak, self.running = root, 0, True

    def run(self):
        while self.running:
            self.peak = max(self.peak, tree_rss(self.root))
            time.sleep(0.02)

    def stop(self):
        self.running = False
        self.join()
        return self.peak


def make_cert(workdir):
    """A self-signed server certificate for both MTAs: (cert, key)."""
    cert, key = os.path.join(workdir, "cert.pem"), os.path.join(workdir, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=bench.localdomain", "-keyout", key, "-out", cert],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.chmod(key, 0o644)
    return cert, key


def run_workers(worker, sessions, errors):
    """Runs `sessions` threads of `worker` to their end; raises if any
    message failed."""
    threads = [threading.Thread(target=worker) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} messages failed: {errors[0]}")


def tls_source(port, sessions, msgs, size):
    """What smtp-source does, over STARTTLS: `sessions` threads, a new
    connection and handshake per message, until `msgs` are accepted."""
    import smtplib
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    body = "Subject: load\r\n\r\n" + ("x" * 78 + "\r\n") * max(1, size // 80)
    left = [msgs]
    lock = threading.Lock()
    errors = []

    def worker():
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
                    s.starttls(context=context)
                    s.sendmail("load@source.example", ["sink@sink.example"], body)
            except Exception as e:  # noqa: BLE001 - reported after the run
                errors.append(repr(e))

    run_workers(worker, sessions, errors)


class TimingSink:
    """An SMTP sink that notes when each numbered message (X-Seq: N)
    arrives; counts like Sink."""

    def __init__(self):
        import asyncio

        self.port = free_port()
        self.count = 0
        self.arrived = {}
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def session(reader, writer):
            writer.write(b"220 sink ESMTP\r\n")
            try:
                while True:
                    line = await reader.readline()
                    if not line:
                        break
                    verb = line[:4].upper()
                    if verb == b"DATA":
                        writer.write(b"354 go\r\n")
                        seq = None
                        while True:
                            data = await reader.readline()
                            if data in (b".\r\n", b""):
                                break
                            if seq is None and data.startswith(b"X-Seq: "):
                                seq = int(data[7:].strip())
                        if seq is not None:
                            self.arrived.setdefault(seq, time.monotonic())
                        self.count += 1
                        writer.write(b"250 ok\r\n")
                    elif verb == b"QUIT":
                        writer.write(b"221 bye\r\n")
                        await writer.drain()
                        break
                    else:
                        writer.write(b"250 ok\r\n")
                    await writer.drain()
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            writer.close()

        def serve():
            asyncio.set_event_loop(self.loop)
            server = self.loop.run_until_complete(asyncio.start_server(session, "127.0.0.1", self.port))
            self.server = server
            ready.set()
            self.loop.run_forever()

        threading.Thread(target=serve, daemon=True).start()
        ready.wait()

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)


def paced_source(port, sessions, msgs, size, rate, offset=0):
    """Sends `msgs` numbered messages at `rate` per second over `sessions`
    kept connections; returns {number: time of its 250}."""
    import smtplib

    pad = ("x" * 78 + "\r\n") * max(1, size // 80)
    acked = {}
    lock = threading.Lock()
    nxt = [0]
    errors = []
    start = time.monotonic() + 0.2

    def worker():
        s = smtplib.SMTP("127.0.0.1", port, timeout=60)
        try:
            while True:
                with lock:
                    i = nxt[0]
                    if i >= msgs:
                        return
                    nxt[0] += 1
                due = start + i / rate
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                seq = offset + i
                body = f"Subject: paced\r\nX-Seq: {seq}\r\n\r\n" + pad
                try:
                    s.sendmail("load@source.example", ["sink@sink.example"], body)
                    acked[seq] = time.monotonic()
                except Exception as e:  # noqa: BLE001 - reported after the run
                    errors.append(repr(e))
        finally:
            try:
                s.quit()
            except Exception:  # noqa: BLE001
                pass

    run_workers(worker, sessions, errors)
    return acked


def percentile(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def filesystem(path):
    """The type and mount options of the filesystem holding `path` (they
    decide what a sync and an unlink cost: a journal or not, discard)."""
    best = ("?", "?", "")
    path = os.path.realpath(path)
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, kind, opts = line.split()[:4]
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[2]):
                best = (kind, opts, mnt)
    journal = ""
    if best[0] == "ext4":
        try:
            out = subprocess.run(["findmnt", "-no", "SOURCE", best[2]], capture_output=True, text=True).stdout.strip()
            feats = subprocess.run(["dumpe2fs", "-h", out], capture_output=True, text=True).stdout
            journal = ", journal" if "has_journal" in feats else ", no journal"
        except OSError:
            pass
    return f"{best[0]} ({best[1]}{journal}) at {best[2]}"


def settle():
    """The same machine state before each run: dirty pages written back,
    the page cache dropped (root only), a moment of quiet."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass
    time.sleep(1)


class Sink:
    """smtp-sink on loopback, counting what arrives."""

    def __init__(self):
        self.port = free_port()
        self.count = 0
        self.proc = subprocess.Popen(
            ["smtp-sink", "-u", "nobody", "-c", f"127.0.0.1:{self.port}", "1024"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        threading.Thread(target=self._read, daemon=True).start()
        wait_port(self.port)

    def _read(self):
        buf = b""
        while True:
            chunk = self.proc.stdout.read1(4096)
            if not chunk:
                return
            buf += chunk
            for m in re.finditer(rb"mesg=(\d+)", buf):
                self.count = int(m.group(1))
            buf = buf[-64:]

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Mta:
    """One MTA instance in its own directory, started under the CPU wrapper."""

    def __init__(self, root, sink_port):
        self.root = root
        self.port = free_port()
        self.sink_port = sink_port
        self.cpu_file = os.path.join(root, "cpu.json")
        self.group = CpuGroup(os.path.basename(root))

    def start(self):
        procs = self.group.procs if self.group.dir else "-"
        self.wrapper = subprocess.Popen(
            [sys.executable, "-c", WRAPPER, self.cpu_file, procs] + self.command(),
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.root, "stderr"), "w"),
        )
        wait_port(self.port)

    def cpu_now(self):
        """CPU seconds of the group so far (None without a group): the
        measured load's share is the difference, without start, warm-up
        and stop."""
        return self.group.seconds()

    def cpu_quiet(self):
        """CPU seconds once the MTA has finished what the load left it
        (removing delivered files): when 100 ms pass with under 1 ms used,
        at most 5 s."""
        last = self.cpu_now()
        if last is None:
            return None
        end = time.time() + 5
        while time.time() < end:
            time.sleep(0.1)
            now = self.cpu_now()
            if now - last < 0.001:
                return now
            last = now
        return last

    def finish(self):
        """Stops the MTA; returns its CPU seconds."""
        if getattr(self, "cpu", None) is not None:
            return self.cpu
        self.stop()
        try:
            self.wrapper.wait(timeout=60)
        except subprocess.TimeoutExpired:
            for pid in reversed(descendants(self.wrapper.pid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            self.wrapper.wait()
        # Processes the daemon did not wait for may still be ending.
        end = time.time() + 10
        while self.group.dir and time.time() < end:
            with open(self.group.procs) as f:
                if not f.read().strip():
                    break
            time.sleep(0.05)
        cpu = self.group.seconds()
        self.group.remove()
        if cpu is None:
            with open(self.cpu_file) as f:
                cpu = json.load(f)["cpu"]
        self.cpu = cpu
        return cpu


class Postern(Mta):
    name = "postern"

    def __init__(self, root, sink_port, binary, cert=None):
        super().__init__(root, sink_port)
        self.binary = binary
        tls = [
            'smtpd_tls_security_level = "may"',
            f'smtpd_tls_cert_file = "{cert[0]}"',
            f'smtpd_tls_key_file = "{cert[1]}"',
        ] if cert else []
        os.makedirs(os.path.join(root, "conf"))
        with open(os.path.join(root, "conf", "postern.toml"), "w") as f:
            f.write(
                "\n".join(
                    [
                        f'queue_directory = "{root}/queue"',
                        f'smtpd_listen = "127.0.0.1:{self.port}"',
                        'admin_listen = "127.0.0.1:0"',
                        f'maillog_file = "{root}/maillog"',
                        'myhostname = "bench.localdomain"',
                        'mydestination = ""',
                        f'relayhost = "[127.0.0.1]:{sink_port}"',
                        'smtp_tls_security_level = "none"',
                        # Client names are not looked up by either MTA.
                        f'smtpd_peername_lookup = "{LOOKUPS[0]}"',
                    ]
                    + tls
                    + [""]
                )
            )

    def command(self):
        return [self.binary, "start", "-c", f"{self.root}/conf"]

    def stop(self):
        subprocess.run(
            [self.binary, "stop", "-c", f"{self.root}/conf"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


POSTFIX_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix(Mta):
    name = "postfix"

    def __init__(self, root, sink_port, cert=None):
        super().__init__(root, sink_port)
        self.conf = os.path.join(root, "conf")
        tls = (
            f"smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {cert[0]}\nsmtpd_tls_key_file = {cert[1]}\n"
            if cert
            else "smtpd_tls_security_level = none\n"
        )
        os.makedirs(self.conf)
        main = f"""\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.localdomain
mydestination =
relayhost = [127.0.0.1]:{sink_port}
mynetworks = 127.0.0.0/8
smtp_tls_security_level = none
smtpd_peername_lookup = {LOOKUPS[0]}
{tls}maillog_file = {root}/maillog
maillog_file_prefixes = {root}
alias_maps =
alias_database =
local_recipient_maps =
"""
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(main)
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            tlsmgr = "tlsmgr    unix  -       -       n       1000?   1       tlsmgr\n" if cert else ""
            f.write(f"127.0.0.1:{self.port} inet n - n - - smtpd\n" + POSTFIX_SERVICES + tlsmgr)
        for d in ("queue", "data"):
            os.makedirs(os.path.join(root, d))
        shutil.chown(os.path.join(root, "data"), "postfix")
        os.chmod(root, 0o755)

    def command(self):
        return ["postfix", "-c", self.conf, "start-fg"]

    def stop(self):
        subprocess.run(
            ["postfix", "-c", self.conf, "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def source_args(case, msgs, port):
    args = ["smtp-source", "-s", str(SESSIONS), "-m", str(msgs)]
    args += ["-l", str(case["size"]), "-f", "load@source.example", "-t", "sink@sink.example"]
    if case["rcpts"] > 1:
        args += ["-r", str(case["rcpts"])]
    if case["reuse"]:
        args.append("-d")
    return args + [f"127.0.0.1:{port}"]


def wait_count(sink, n, kind):
    end = time.time() + DEADLINE
    while sink.count < n and time.time() < end:
        time.sleep(0.01)
    if sink.count < n:
        raise RuntimeError(f"{kind}: the sink got {sink.count} of {n}")


def run_once(kind, case, binary, workdir, cert, baseline=None):
    settle()
    root = tempfile.mkdtemp(prefix=f"{kind}-", dir=workdir)
    os.chmod(root, 0o755)
    paced = "rate" in case
    sink = TimingSink() if paced else Sink()
    cert = cert if case.get("tls") else None
    if kind == "postern":
        mta = Postern(root, sink.port, binary, cert)
    elif baseline:
        mta = Postern(root, sink.port, baseline, cert)
    else:
        mta = Postfix(root, sink.port, cert)
    latency = {}
    try:
        mta.start()
        time.sleep(1)
        idle = tree_rss(mta.wrapper.pid)
        # The same warm-up for both: processes started, caches filled,
        # connections to the sink open.
        subprocess.run(source_args(dict(case, rcpts=1), WARMUP, mta.port), check=True, timeout=DEADLINE)
        wait_count(sink, WARMUP, kind)
        base = sink.count
        sampler = Sampler(mta.wrapper.pid)
        sampler.start()
        cpu_before = mta.cpu_now()
        start = time.time()
        if case.get("tls"):
            tls_source(mta.port, SESSIONS, case["msgs"], case["size"])
        elif paced:
            acked = paced_source(mta.port, SESSIONS, case["msgs"], case["size"], case["rate"], offset=10**6)
        else:
            subprocess.run(source_args(case, case["msgs"], mta.port), check=True, timeout=DEADLINE)
        accepted = time.time() - start
        wait_count(sink, base + case["msgs"], kind)
        delivered = time.time() - start
        peak = sampler.stop()
        cpu_load = mta.cpu_quiet()
        if paced:
            waits = [(sink.arrived[q] - t) * 1000 for q, t in acked.items() if q in sink.arrived]
            latency = {
                "p50_ms": percentile(waits, 50),
                "p99_ms": percentile(waits, 99),
                "max_ms": max(waits) if waits else float("nan"),
            }
        cpu = mta.finish()
        if cpu_before is not None and cpu_load is not None:
            cpu = cpu_load - cpu_before
    finally:
        sink.stop()
        try:
            mta.finish()
        except Exception:
            pass
    # The run's directory stays until the end: removing thousands of files
    # here would slow the next run's file creation (ext4 skips recently
    # freed inodes), whichever MTA it is.
    n = case["msgs"]
    out = {
        "accepted": n / accepted,
        "e2e": n / delivered,
        "cpu_ms": cpu * 1000 / n,
        "peak_mb": peak / 2**20,
        "idle_mb": idle / 2**20,
    }
    out.update(latency)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default="target/release/postern")
    parser.add_argument("--runs", type=int, default=3, help="runs per MTA and case (medians)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply message counts")
    parser.add_argument("--lookups", action="store_true", help="reverse lookups of clients on both sides")
    parser.add_argument(
        "--baseline",
        help="another postern binary to compare with in Postfix's place (an A/B of a change); "
        "its column is still headed postfix",
    )
    args = parser.parse_args()
    baseline = os.path.abspath(args.baseline) if args.baseline else None
    if args.lookups:
        LOOKUPS[0] = "yes"
    binary = os.path.abspath(args.binary)
    workdir = tempfile.mkdtemp(prefix="postern-load-")
    os.chmod(workdir, 0o755)
    results = {}
    spread = {}
    cert = make_cert(workdir)
    print(f"settings, both MTAs: smtpd_peername_lookup = {LOOKUPS[0]}; log to a file in the run's directory;")
    print(f"  queue file synced before 250; {WARMUP} warm-up messages; {SESSIONS} sessions;")
    print("  sync + drop_caches before every run; runs alternate; relay to a sink on loopback")
    print(f"  cases: " + "; ".join(f"{n} {CASES[n]}" for n in args.cases.split(",")))
    print(f"  machine: {os.cpu_count()} CPUs; queues on {filesystem(workdir)}", flush=True)
    if baseline:
        print(f"  A/B: {binary} against {baseline} (in the postfix column)", flush=True)
    try:
        for name in args.cases.split(","):
            case = dict(CASES[name])
            case["msgs"] = max(100, int(case["msgs"] * args.scale))
            runs = {"postern": [], "postfix": []}
            for i in range(args.runs):
                order = ("postern", "postfix") if i % 2 == 0 else ("postfix", "postern")
                for kind in order:
                    r = run_once(kind, case, binary, workdir, cert, baseline)
                    runs[kind].append(r)
                    print(f"  {name} run {i + 1} {kind}: " + ", ".join(f"{k}={v:.2f}" for k, v in r.items()), flush=True)
            results[name] = {
                kind: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for kind, rs in runs.items()
            }
            spread[name] = {
                kind: {k: (min(r[k] for r in rs), max(r[k] for r in rs)) for k in rs[0]} for kind, rs in runs.items()
            }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"{'case':10} {'metric':12} {'postern':>10} {'postfix':>10} {'ratio':>8}   {'postern range':>19} {'postfix range':>19}")
    for name, r in results.items():
        for metric in ("accepted", "e2e", "cpu_ms", "peak_mb", "idle_mb", "p50_ms", "p99_ms", "max_ms"):
            if metric not in r["postern"]:
                continue
            a, b = r["postern"][metric], r["postfix"][metric]
            ratio = a / b if b else float("nan")
            ra, rb = spread[name]["postern"][metric], spread[name]["postfix"][metric]
            print(
                f"{name:10} {metric:12} {a:10.2f} {b:10.2f} {ratio:8.2f}   "
                f"{ra[0]:9.2f}-{ra[1]:<9.2f} {rb[0]:9.2f}-{rb[1]:<9.2f}"
            )
    print(json.dumps({"medians": results, "ranges": spread}))


if __name__ == "__main__":
    main()
