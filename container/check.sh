#!/usr/bin/env bash
# What CI can check of the container without an engine: the image's install
# steps run into a scratch root and leave working command links, and the
# compose file parses with the services and settings it promises.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/postern}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
sh container/install.sh "$root"
for name in sendmail mailq newaliases postqueue postsuper postcat postconf postmap postalias qshape postlog; do
  link="$root/usr/bin/$name"
  [ "$(readlink "$link")" = /usr/sbin/postern ] || { echo "container: $name is not a link to postern"; exit 1; }
  # The binary answers to each name.
  ln -sf "$PWD/$bin" "$root/$name"
done
out=$("$root/postconf" -c "$root/etc/postern" -d myorigin)
[ "$out" = 'myorigin = $myhostname' ] || { echo "container: postconf through its link: $out"; exit 1; }
# Every POSTERN_* variable the Dockerfile and the compose file set must be a parameter.
grep -ohE 'POSTERN_[A-Z_]+' Dockerfile docker-compose.yml | sort -u | while read -r var; do
  name=$(echo "${var#POSTERN_}" | tr 'A-Z' 'a-z')
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
print("container: docker-compose.yml parses")
PY
echo "container: install steps and links work"
