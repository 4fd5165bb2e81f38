#!/bin/sh
# Build the Debian package of the appliance: the built tree under /opt/xks (production
# dependencies only, pkcs11js compiled for this architecture), the systemd unit xks@.service, `xks` on PATH,
# an example configuration in /etc/xks (a conffile: dpkg keeps an operator's edits on upgrade;
# NAME.yaml and secrets/ are the operator's own and never touched). Needs: dpkg-deb, npm, a built
# tree (npm run build). Usage: appliance/packaging/deb/build.sh [OUTDIR]   (default: build/)
set -eu
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=$(mkdir -p "${1:-$ROOT/build}" && cd "${1:-$ROOT/build}" && pwd)
VERSION=$(node -p "require('$ROOT/package.json').version")
ARCH=$(dpkg --print-architecture)
NAME=xks-appliance
[ -f "$ROOT/dist/appliance/cli/main.js" ] || { echo "build.sh: no built tree: run npm run build first" >&2; exit 1; }

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
PKG="$STAGE/pkg"
APP="$PKG/opt/xks"
mkdir -p "$APP" "$PKG/DEBIAN" "$PKG/lib/systemd/system" "$PKG/usr/bin" "$PKG/etc/xks" "$PKG/usr/share/doc/$NAME"

# The application: compiled JavaScript (no tests), the CLI entry, data files, production modules.
cp -a "$ROOT/bin" "$ROOT/package.json" "$ROOT/package-lock.json" "$ROOT/README.md" "$APP/"
rm -f "$APP/bin/setup"
mkdir -p "$APP/dist"
for d in appliance gateway xks haproxy; do cp -a "$ROOT/dist/$d" "$APP/dist/"; done
find "$APP/dist" -name '*.map' -delete
# JSON data the code reads from the package root (e.g. appliance/certs/kms-trusted-roots.json).
(cd "$ROOT" && find appliance gateway xks haproxy -name '*.json' -exec cp --parents {} "$APP/" \;)
cp -a "$ROOT/docs" "$APP/docs"
# Production dependencies only, as installed (pkcs11js already compiled by npm ci): no network.
(cd "$ROOT" && npm ls --omit=dev --all --parseable) | tail -n +2 | while read -r dir; do
    rel=${dir#"$ROOT"/}
    mkdir -p "$APP/$(dirname "$rel")"
    cp -a "$dir" "$APP/$rel"
done

cp "$ROOT/appliance/systemd/xks@.service" "$PKG/lib/systemd/system/xks@.service"
ln -s /opt/xks/bin/xks "$PKG/usr/bin/xks"
cp "$ROOT/appliance/packaging/deb/xks.yaml.example" "$PKG/etc/xks/xks.yaml.example"
cp "$ROOT/appliance/packaging/deb/copyright" "$PKG/usr/share/doc/$NAME/copyright"
for s in postinst prerm postrm; do install -m 0755 "$ROOT/appliance/packaging/deb/$s" "$PKG/DEBIAN/$s"; done
echo /etc/xks/xks.yaml.example > "$PKG/DEBIAN/conffiles"
SIZE=$(du -sk "$PKG" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" "$ROOT/appliance/packaging/deb/control" > "$PKG/DEBIAN/control"

# Owned by root, readable by all; the service user gets only what postinst gives it.
chmod -R u+rwX,go+rX,go-w "$APP"
DEB="$OUT/${NAME}_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zgzip --build "$PKG" "$DEB" >/dev/null
echo "$DEB"
