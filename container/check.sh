#!/usr/bin/env bash
# What CI can check of the container without an engine: the image's install
# steps run into a scratch root and leave working command links, and the
# compose file parses with the services and settings it promises.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/postern}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 755 "$root"
install -D -m 755 "$bin" "$root/usr/sbin/postern"
sh container/install.sh "$root"
# The non-root user binds a port below 1024 through the file capability.
getcap "$root/usr/sbin/postern" | grep -q cap_net_bind_service \
  || { echo "container: the binary lacks cap_net_bind_service"; exit 1; }
if [ "$(id -u)" = 0 ]; then
  port=$(python3 -c 'import socket
for p in range(1000, 900, -1):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); print(p); break
    except OSError: pass')
  run=$(mktemp -d)
  chmod 755 "$run"
  install -d -o nobody -g nogroup "$run/queue"
  printf 'queue_directory = "%s/queue"\nsmtpd_listen = "127.0.0.1:%s"\nadmin_listen = "127.0.0.1:0"\nmaillog_file = "%s/queue/log"\n' "$run" "$port" "$run" > "$run/postern.toml"
  setpriv --reuid=nobody --regid=nogroup --clear-groups "$root/usr/sbin/postern" start -c "$run" &
  pid=$!
  ok=
  for _ in $(seq 100); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; then ok=1; break; fi
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$run"
  [ -n "$ok" ] || { echo "container: user nobody could not bind port $port"; exit 1; }
fi
for name in sendmail mailq newaliases postqueue postsuper postcat postconf postmap postalias qshape postlog; do
  link="$root/usr/bin/$name"
  [ "$(readlink "$link")" = /usr/sbin/postern ] || { echo "container: $name is not a link to postern"; exit 1; }
  # The binary answers to each name.
  ln -sf "$PWD/$bin" "$root/$name"
done
out=$("$root/postconf" -c "$root/etc/postern" -d myorigin)
[ "$out" = 'myorigin = $myhostname' ] || { echo "container: postconf through its link: $out"; exit 1; }
# Every POSTERN_* variable the Dockerfile and the compose file set must be a parameter.
# (POSTERN_SERVICES__NAME__PARAM sets PARAM for one service.)
grep -ohE 'POSTERN_[A-Z_]+' Dockerfile docker-compose.yml | sort -u | while read -r var; do
  name=$(echo "${var#POSTERN_}" | tr 'A-Z' 'a-z' | sed -E 's/^services__[a-z0-9]+__//')
  if ! "$bin" postconf -c "$root/etc/postern" "$name" >/dev/null 2>&1; then
    echo "container: $var names no parameter"; exit 1
  fi
done
python3 - <<'PY'
import sys, yaml
compose = yaml.safe_load(open("docker-compose.yml"))
services = compose["services"]
assert "postern" in services and "app" in services, "services"
env = services["postern"]["environment"]
assert env["POSTERN_RELAYHOST"].startswith("["), "relayhost"
assert services["postern"]["healthcheck"]["test"][:2] == ["CMD", "postern"], "healthcheck"
assert "postern-queue" in compose["volumes"], "volume"
assert env["POSTERN_SUBMISSION_LISTEN"].endswith(":587"), "submission"
assert env["POSTERN_SMTPD_SASL_TYPE"] == "postern", "AUTH back end"
grace = services["postern"]["stop_grace_period"]
assert int(grace.rstrip("s")) > int(env["POSTERN_SHUTDOWN_GRACE_PERIOD"].rstrip("s")), "stop period"
relay = services["dev-relay"]["environment"]
assert relay["POSTERN_CAPTURE_MODE"] == "yes", "capture mode"
assert relay["POSTERN_SMTPD_LISTEN"].endswith(":1025"), "catcher SMTP port"
assert "127.0.0.1:8025:8025" in services["dev-relay"]["ports"], "catcher UI port"
print("container: docker-compose.yml parses")
PY
# The image's settings, and each compose service's, are a configuration
# postern starts with (compose's ${VAR:-default} taken at its default).
python3 - "$bin" <<'PY'
import os, re, subprocess, sys, tempfile, yaml
binary = sys.argv[1]
def expand(v):
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v))
image = {}
text = open("Dockerfile").read().replace("\\\n", " ")
for line in text.splitlines():
    if line.startswith("ENV "):
        for k, v in re.findall(r"(POSTERN_[A-Z_]+)=(\S+)", line):
            image[k] = v
compose = yaml.safe_load(open("docker-compose.yml"))
for name, service in compose["services"].items():
    if service.get("build") != ".":
        continue
    env = dict(image)
    env.update({k: expand(v) for k, v in service["environment"].items()})
    with tempfile.TemporaryDirectory() as d:
        env["POSTERN_QUEUE_DIRECTORY"] = os.path.join(d, "queue")
        env["POSTERN_MAILLOG_FILE"] = os.path.join(d, "log")
        conf = os.path.join(d, "conf")
        os.mkdir(conf)
        out = subprocess.run([binary, "check", "-c", conf], env=dict(os.environ, **env),
                             capture_output=True, text=True)
        assert out.returncode == 0, f"{name}: {out.stderr}"
    print(f"container: the {name} service's configuration is valid")
PY
echo "container: install steps and links work"
