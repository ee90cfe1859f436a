#!/bin/sh
# The image's install steps, kept in one script so that CI can run them
# without a container engine: ROOT is / in the image, a scratch directory
# in CI. Creates the postern user (when ROOT is /), the queue and
# configuration directories, the Postfix command names as links, and lets
# the binary bind ports below 1024 as its non-root user
# (cap_net_bind_service: Kubernetes and older engines do not lower
# net.ipv4.ip_unprivileged_port_start for the container).
set -eu
ROOT=${1:?usage: install.sh ROOT}
if [ "$ROOT" = / ]; then
  useradd --system --uid 10025 --user-group --home-dir /var/spool/postern --shell /usr/sbin/nologin postern
fi
mkdir -p "$ROOT/var/spool/postern" "$ROOT/etc/postern" "$ROOT/usr/bin" "$ROOT/usr/sbin"
chmod 700 "$ROOT/var/spool/postern"
if [ "$ROOT" = / ]; then
  chown postern:postern /var/spool/postern
fi
ln -sf /usr/sbin/postern "$ROOT/usr/sbin/sendmail"
for name in sendmail mailq newaliases postqueue postsuper postcat postconf postmap postalias qshape postlog; do
  ln -sf /usr/sbin/postern "$ROOT/usr/bin/$name"
done
if [ -f "$ROOT/usr/sbin/postern" ]; then
  setcap cap_net_bind_service=+ep "$ROOT/usr/sbin/postern"
fi
