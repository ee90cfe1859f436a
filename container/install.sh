#!/bin/sh
# The image's install steps, kept in one script so that CI can run them
# without a container engine: ROOT is / in the image, a scratch directory
# in CI. Creates the postern user (when ROOT is /), the queue and
# configuration directories, and the Postfix command names as links.
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
