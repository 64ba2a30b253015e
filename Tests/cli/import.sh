#!/usr/bin/env bash
# momin image import against the real binary and e2fsprogs (docs/images.md, "Importing"):
# python3 makes a docker save archive and an OCI layout (two layers: a whiteout and an opaque
# directory in the second), both are imported and read back with debugfs, a second import
# reuses the image, and hostile archives (a `..` entry, a write through a symlink) are refused
# with exit 2 and leave nothing in the store. Needs root; no network.
#
#   Tests/cli/import.sh PATH/TO/momin
prefix=import
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 9
momin=$(absolute "${1:?usage: import.sh PATH/TO/momin}")
export MOMIN_CACHE=$work/cache
store=$MOMIN_CACHE/images

if [ "$(id -u)" -ne 0 ]; then fail "setup" "must run as root (lchown)"; finish; fi

python3 - "$work" <<'PY'
import hashlib, io, json, os, sys, tarfile
work = sys.argv[1]
def layer(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name); info.mtime = 1600000000
            if kind == "dir": info.type = tarfile.DIRTYPE; info.mode = 0o755
            elif kind == "sym": info.type = tarfile.SYMTYPE; info.linkname = data
            else: info.size = len(data); info.mode = 0o4755 if name.endswith("su") else 0o644
            t.addfile(info, io.BytesIO(data) if kind == "file" else None)
    return buf.getvalue()
lower = layer([("etc", "dir", b""), ("etc/motd", "file", b"lower\n"), ("etc/gone", "file", b"x"),
               ("opt", "dir", b""), ("opt/old", "file", b"old\n"), ("bin", "dir", b""), ("bin/su", "file", b"su")])
upper = layer([("etc/.wh.gone", "file", b""), ("opt/.wh..wh..opq", "file", b""), ("opt/new", "file", b"new\n"),
               ("etc/motd", "file", b"upper\n")])
sha = lambda b: hashlib.sha256(b).hexdigest()
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(lower), "sha256:" + sha(upper)]}}).encode()
def add(t, name, data):
    info = tarfile.TarInfo(name); info.size = len(data); t.addfile(info, io.BytesIO(data))
# docker save: manifest.json, the config by its digest, one directory per layer.
with tarfile.open(work + "/docker.tar", "w", format=tarfile.USTAR_FORMAT) as t:
    add(t, sha(config) + ".json", config)
    add(t, "l1/layer.tar", lower); add(t, "l2/layer.tar", upper)
    add(t, "manifest.json", json.dumps([{"Config": sha(config) + ".json", "RepoTags": ["t:1"], "Layers": ["l1/layer.tar", "l2/layer.tar"]}]).encode())
# An OCI layout directory (the upper layer gzip-compressed) and a tar of it.
import gzip
upper_gz = gzip.compress(upper, mtime=0)
layout = work + "/layout"
os.makedirs(layout + "/blobs/sha256")
def blob(data):
    open(layout + "/blobs/sha256/" + sha(data), "wb").write(data)
    return "sha256:" + sha(data)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blob(lower), "size": len(lower)},
               {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(upper_gz), "size": len(upper_gz)}]}).encode()
open(layout + "/index.json", "w").write(json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": blob(manifest), "size": len(manifest), "platform": {"architecture": "amd64", "os": "linux"}}]}))
open(layout + "/oci-layout", "w").write('{"imageLayoutVersion": "1.0.0"}')
with tarfile.open(work + "/oci.tar", "w") as t: t.add(layout, arcname=".")
# Hostile archives: a `..` entry, and a write through a symlink.
def hostile(path, entries):
    data = layer(entries)
    c = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(data)]}}).encode()
    with tarfile.open(path, "w") as t:
        add(t, "config.json", c); add(t, "l/layer.tar", data)
        add(t, "manifest.json", json.dumps([{"Config": "config.json", "Layers": ["l/layer.tar"]}]).encode())
hostile(work + "/dotdot.tar", [("../../escape", "file", b"x")])
hostile(work + "/symlink.tar", [("etc", "sym", "/etc"), ("etc/momin-planted", "file", b"x")])
PY

out=$("$momin" image import "$work/docker.tar" --name dock 2>"$work/err"); status=$?
digest=$(sed -n 's/^imported image dock sha256:\([0-9a-f]\{64\}\) .*/\1/p' <<<"$out")
image=$store/sha256/$digest.ext4
[ "$status" -eq 0 ] && [ -n "$digest" ] && [ "${out##*: }" = "$image" ] && [ "$(sha256sum < "$image" | cut -d' ' -f1)" = "$digest" ] \
  && e2fsck -fn "$image" >/dev/null 2>&1
check "import: a docker save archive becomes a clean image under its SHA-256" $? "status $status: $out $(tail -c 300 "$work/err")"

motd=$(debugfs -R 'cat /etc/motd' "$image" 2>/dev/null)
etc=$(debugfs -R 'ls /etc' "$image" 2>/dev/null | tr -s ' \n' ' ')
opt=$(debugfs -R 'ls /opt' "$image" 2>/dev/null | tr -s ' \n' ' ')
su=$(debugfs -R 'stat /bin/su' "$image" 2>/dev/null | sed -n 's/.*Mode: *\([0-7]*\).*/\1/p')
[ "$motd" = "upper" ] && [[ $etc != *gone* ]] && [[ $opt == *new* ]] && [[ $opt != *old* ]] && [ "$su" = "0755" ]
check "import: layers in order, whiteout and opaque directory honoured, setuid cleared" $? "motd '$motd' etc '$etc' opt '$opt' su '$su'"

out=$("$momin" image import "$work/docker.tar" --name dock 2>&1); status=$?
[ "$status" -eq 0 ] && [[ $out == "reusing image dock sha256:$digest (built "*"): $image" ]]
check "import: the same file again reuses the image" $? "status $status: $out"

out=$("$momin" image import "$work/layout" --name layout 2>"$work/err"); status=$?
oci=$(sed -n 's/^imported image layout sha256:\([0-9a-f]\{64\}\) .*/\1/p' <<<"$out")
[ "$status" -eq 0 ] && [ -n "$oci" ] && [ "$(debugfs -R 'cat /opt/new' "$store/sha256/$oci.ext4" 2>/dev/null)" = "new" ] \
  && [ -z "$(debugfs -R 'stat /etc/gone' "$store/sha256/$oci.ext4" 2>/dev/null)" ]
check "import: an OCI layout directory with a gzip layer" $? "status $status: $out $(tail -c 300 "$work/err")"

out=$("$momin" image import "$work/oci.tar" --name ocitar 2>"$work/err"); status=$?
[ "$status" -eq 0 ] && grep -q '"format" : "oci-archive"' <(cat "$store"/sha256/*.json)
check "import: a tar of the OCI layout" $? "status $status: $out $(tail -c 300 "$work/err")"

before=$(find "$store/sha256" | sort)
expect_refusal "import: a '..' entry is bad input naming it" "tar entry '../../escape' at byte 0: path refused: it has a '..' component" \
  "$momin" image import "$work/dotdot.tar" --name bad
expect_refusal "import: a write through a symlink is refused" "tar entry 'etc/momin-planted' at byte 512: it would write through etc" \
  "$momin" image import "$work/symlink.tar" --name bad
[ "$before" = "$(find "$store/sha256" | sort)" ] && [ -z "$(ls -A "$store/tmp")" ] && ! grep -q '"bad"' "$store/names.json" \
  && [ ! -e /etc/momin-planted ] && [ ! -e "$work/../escape" ]
check "import: refused imports leave nothing in the store or outside it" $? "$(ls -A "$store/tmp")"

out=$("$momin" image import --help 2>&1); status=$?
[ "$status" -eq 0 ] && grep -q -- "--max-size" <<<"$out" && [ "$(find "$store/sha256" | sort)" = "$before" ]
check "import --help: prints help and does nothing" $? "status $status"
finish
