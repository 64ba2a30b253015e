# shellcheck shell=bash
# Shared helpers for the scripts in Scripts/. Source it, don't run it:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
#
# Defines MOMIN_ROOT (the repository) and MOMIN_CACHE (downloads and build outputs that stay
# out of git, default ~/.cache/momin), and the functions ensure_apt, ensure_kernel,
# ensure_guest_image, build_momin and host_has_hw_virt. Progress messages go to stderr;
# stdout carries only what a function is documented to print.

MOMIN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MOMIN_CACHE=${MOMIN_CACHE:-$HOME/.cache/momin}
case $MOMIN_CACHE in /*) ;; *) MOMIN_CACHE=$PWD/$MOMIN_CACHE ;; esac
export MOMIN_ROOT MOMIN_CACHE

# The toolchain lives at /opt/swift on the project's machines; elsewhere it must be on PATH.
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  PATH=/opt/swift/usr/bin:$PATH
fi

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Runs a command as root, through sudo when we are not root.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "needs root for: $*"
  fi
}

_momin_apt_updated=
apt_update_once() {
  [ -n "$_momin_apt_updated" ] && return 0
  log "apt-get update"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  _momin_apt_updated=1
}

# ensure_apt PKG...: installs the packages that are not installed yet, and nothing else.
ensure_apt() {
  local pkg missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  apt_update_once
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >&2
}

# The concrete package behind Debian's linux-image-cloud-amd64 metapackage,
# e.g. linux-image-6.1.0-56-cloud-amd64. MOMIN_KERNEL_PACKAGE overrides it. The answer is
# remembered until apt's package lists change (asking apt-cache costs most of a second).
kernel_package() {
  if [ -n "${MOMIN_KERNEL_PACKAGE:-}" ]; then echo "$MOMIN_KERNEL_PACKAGE"; return; fi
  local pkg remembered=$MOMIN_CACHE/kernel/package
  if [ -s "$remembered" ] && [ "$remembered" -nt /var/lib/apt/lists ]; then
    cat "$remembered"
    return
  fi
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [ -z "$pkg" ]; then
    apt_update_once
    pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
          awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  fi
  [ -n "$pkg" ] || die "cannot resolve linux-image-cloud-amd64 to a kernel package"
  mkdir -p "${remembered%/*}" && echo "$pkg" > "$remembered"
  echo "$pkg"
}

# ensure_kernel: fetches Debian's stock cloud kernel with apt-get download and unpacks it into
# $MOMIN_CACHE/kernel/<version>/ (never installs it on the host). Exports MOMIN_KERNEL_VERSION,
# MOMIN_VMLINUZ (the bzImage) and MOMIN_KERNEL_MODULES (lib/modules/<version> in the tree).
ensure_kernel() {
  local pkg version dir tmp
  pkg=$(kernel_package)
  version=${pkg#linux-image-}
  dir=$MOMIN_CACHE/kernel/$version
  if [ ! -e "$dir/.complete" ]; then
    log "fetching $pkg"
    mkdir -p "$MOMIN_CACHE" || die "cannot create $MOMIN_CACHE"
    tmp=$(mktemp -d "$MOMIN_CACHE/kernel.XXXXXX") || die "mktemp failed"
    # apt's _apt sandbox user cannot write into a private directory; as root, skip the sandbox.
    local sandbox=()
    [ "$(id -u)" -eq 0 ] && sandbox=(-o APT::Sandbox::User=root)
    (cd "$tmp" && apt-get download -q "${sandbox[@]}" "$pkg" >&2) ||
      { rm -rf "$tmp"; die "apt-get download $pkg failed"; }
    dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/tree" || { rm -rf "$tmp"; die "unpacking $pkg failed"; }
    # The package leaves modules.dep to depmod at install time; generate it in the tree.
    ensure_apt kmod
    /sbin/depmod -b "$tmp/tree" -F "$tmp/tree/boot/System.map-$version" "$version" ||
      { rm -rf "$tmp"; die "depmod failed"; }
    rm -rf "$dir" && mkdir -p "${dir%/*}" && mv "$tmp/tree" "$dir" && rm -rf "$tmp"
    touch "$dir/.complete"
  fi
  MOMIN_KERNEL_VERSION=$version
  MOMIN_VMLINUZ=$dir/boot/vmlinuz-$version
  MOMIN_KERNEL_MODULES=$dir/lib/modules/$version
  if [ ! -f "$MOMIN_VMLINUZ" ] || [ ! -f "$MOMIN_KERNEL_MODULES/modules.dep" ]; then
    die "$dir does not hold a kernel and its modules.dep"
  fi
  export MOMIN_KERNEL_VERSION MOMIN_VMLINUZ MOMIN_KERNEL_MODULES
}

# A hash of everything the guest image is made from: the kernel version, the busybox binary,
# Scripts/guest-image, this file, the Guest package sources, the Doors module and the Swift
# toolchain version.
guest_image_inputs() {
  {
    echo "$MOMIN_KERNEL_VERSION"
    sha256sum /bin/busybox "$MOMIN_ROOT/Scripts/guest-image" "$MOMIN_ROOT/Scripts/lib/common.sh"
    (cd "$MOMIN_ROOT/Guest" && find Package.swift Sources python/momin_hands.py -type f -print0 | LC_ALL=C sort -z |
       xargs -0 sha256sum)
    # momin-init (also the hands client) links the root package's Doors module.
    (cd "$MOMIN_ROOT" && find Sources/Doors -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    swift --version 2>/dev/null
  } | sha256sum | cut -d' ' -f1
}

# ensure_guest_image: runs Scripts/guest-image when its output is missing or its inputs changed
# (it records them in $MOMIN_CACHE/guest/inputs).
# Exports MOMIN_GUEST_DIR ($MOMIN_CACHE/guest, holding vmlinuz, initrd.cpio and manifest).
ensure_guest_image() {
  MOMIN_GUEST_DIR=$MOMIN_CACHE/guest
  export MOMIN_GUEST_DIR
  ensure_apt busybox-static cpio file binutils
  ensure_kernel
  local want
  want=$(guest_image_inputs)
  if [ -f "$MOMIN_GUEST_DIR/vmlinuz" ] && [ -f "$MOMIN_GUEST_DIR/initrd.cpio" ] &&
     [ "$(cat "$MOMIN_GUEST_DIR/inputs" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  "$MOMIN_ROOT/Scripts/guest-image" >&2 || die "Scripts/guest-image failed"
}

# build_momin: builds the momin CLI and its VMM process momin-vmm (release, Swift stdlib linked
# statically, side by side) and prints the path of momin.
build_momin() {
  command -v swift >/dev/null 2>&1 || die "swift not found (expected at /opt/swift or on PATH)"
  (cd "$MOMIN_ROOT" &&
     swift build -c release --static-swift-stdlib --product momin >&2 &&
     swift build -c release --static-swift-stdlib --product momin-vmm >&2 &&
     swift build -c release --static-swift-stdlib --product momin-jailer >&2) || die "building momin failed"
  echo "$MOMIN_ROOT/.build/release/momin"
}

# host_has_hw_virt: true when the CPU offers VMX or SVM, i.e. /dev/kvm can run stock kernels.
# The QEMU that runs the nested rig's L2: qemu-system-x86 from Debian's bookworm-backports
# (10.0), fetched with `apt-get download` and unpacked into the cache, never installed. With
# bookworm's QEMU 7.2 the emulated SVM now and then stopped L2 as a whole (docs/rig.md). Prints
# the path of a wrapper that runs it with its own modules and firmware (SeaBIOS from the
# system's seabios package, which qemu-system-x86 brings). MOMIN_RIG_QEMU overrides it.
ensure_rig_qemu() {
  if [ -n "${MOMIN_RIG_QEMU:-}" ]; then echo "$MOMIN_RIG_QEMU"; return; fi
  local dir=$MOMIN_CACHE/qemu wrapper=$MOMIN_CACHE/qemu/bin/qemu-system-x86_64
  if [ -x "$wrapper" ] && "$wrapper" --version >/dev/null 2>&1; then echo "$wrapper"; return; fi
  ensure_apt qemu-system-x86 seabios
  log "fetching QEMU for the rig from bookworm-backports into $dir"
  rm -rf "$dir" && mkdir -p "$dir/apt/lists/partial" "$dir/debs" "$dir/bin"
  echo "deb ${MOMIN_DEBIAN_MIRROR:-http://deb.debian.org/debian} bookworm-backports main" > "$dir/apt/sources.list"
  local apt=(apt-get -o Dir::Etc::SourceList="$dir/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
             -o Dir::State::Lists="$dir/apt/lists" -o APT::Sandbox::User=root)
  local deb fetched=1
  "${apt[@]}" update -qq >&2 \
    && (cd "$dir/debs" && "${apt[@]}" download -qq qemu-system-x86/bookworm-backports \
          qemu-system-common/bookworm-backports qemu-system-data/bookworm-backports >&2) || fetched=
  if [ -n "$fetched" ]; then
    for deb in "$dir"/debs/*.deb; do dpkg -x "$deb" "$dir/root" || fetched=; done
  fi
  if [ -z "$fetched" ]; then
    # Said on the terminal (fd 4 in Scripts/rig), not only in a log: this QEMU is known to
    # freeze L2 now and then.
    rm -rf "$dir"
    local warning="rig: warning: cannot fetch QEMU 10 from bookworm-backports; L2 runs on the system's QEMU"
    warning+=" $(qemu-system-x86_64 --version | sed -n '1s/.*version \([^ ]*\).*/\1/p'), which stops now and then (docs/rig.md)"
    if { true >&4; } 2>/dev/null; then echo "$warning" >&4; else echo "$warning" >&2; fi
    command -v qemu-system-x86_64
    return
  fi
  cat > "$wrapper" <<WRAPPER
#!/bin/sh
export QEMU_MODULE_DIR=$dir/root/usr/lib/x86_64-linux-gnu/qemu
exec $dir/root/usr/bin/qemu-system-x86_64 -L $dir/root/usr/share/qemu -L /usr/share/seabios -L /usr/share/qemu "\$@"
WRAPPER
  chmod +x "$wrapper"
  "$wrapper" --version >&2 || die "the QEMU unpacked in $dir does not run"
  echo "$wrapper"
}

# free_ports N: N TCP ports on 127.0.0.1 that are free now (the kernel's picks), on one line.
free_ports() {
  python3 -c 'import socket, sys
s = [socket.socket() for _ in range(int(sys.argv[1]))]
for one in s: one.bind(("127.0.0.1", 0))
print(*(one.getsockname()[1] for one in s))' "$1"
}

host_has_hw_virt() {
  grep -qwE 'vmx|svm' /proc/cpuinfo
}

# Writes an uncompressed newc cpio of directory $1 to file $2, with a sorted file list, all
# owners root and all timestamps fixed, so equal inputs give equal archives.
make_cpio() {
  local root=$1 out=$2
  find "$root" -exec touch -h -d @0 {} +
  (cd "$root" && find . -mindepth 1 -printf '%P\0' | LC_ALL=C sort -z |
     cpio --null --create --format=newc --reproducible --owner=0:0 --quiet) > "$out"
}
