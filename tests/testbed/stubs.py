"""Recording stubs for the commands a testbed node cannot really run.

Each node gets its own bin directory (first on sshd's PATH and sudo's secure_path) holding these
POSIX sh scripts with the node's state directory written in. Every call appends its argv to
STATE/calls.log. The stubs keep just enough state for facts to reflect what they "did":
apt-get installs into STATE/dpkg/<pkg> (only from repositories configured in the node's /etc and
fetched by `apt-get update`), dpkg-query and apt-mark read it back, systemctl enables and masks units
the way systemd does (symlinks in the node's /etc) and runs a unit's ExecStart on start, modprobe
"loads" modules that lsmod then lists. sysctl, ip and file writes are never stubbed: they run for real.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from testbed.kube_stubs import KUBEADM, KUBECTL

HEADER = """#!/bin/sh
# v6kube testbed stub for {name}: records its arguments, keeps state in STATE.
STATE={state}
line={name}
for a in "$@"; do line="$line $a"; done
printf '%s\\n' "$line" >> "$STATE/calls.log"
"""

APT_GET = r"""
cmd=
pkgs=
skip=
allow_held=
lock_wait=
for a in "$@"; do
  if [ -n "$skip" ]; then
    case "$a" in DPkg::Lock::Timeout=*) lock_wait=${a#*=} ;; esac
    skip=; continue
  fi
  case "$a" in
    -o|-c|-t) skip=1 ;;
    --allow-change-held-packages) allow_held=1 ;;
    -*) ;;
    *) if [ -z "$cmd" ]; then cmd=$a; else pkgs="$pkgs $a"; fi ;;
  esac
done
sleep_if_asked() {
  if [ -s "$STATE/apt-get.delay" ]; then sleep "$(cat "$STATE/apt-get.delay")"; fi
}
take_dpkg_lock() {  # like dpkg's frontend lock: fail at once unless told how long to wait
  exec 8>"$STATE/dpkg.lock"
  if [ -n "$lock_wait" ]; then
    flock -w "$lock_wait" 8 || { echo "E: Could not get lock /var/lib/dpkg/lock-frontend after ${lock_wait}s" >&2; exit 100; }
  else
    flock -n 8 || { echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (unattended-upgr)" >&2; exit 100; }
  fi
}
case "$cmd" in
  update)
    sleep_if_asked
    : > "$STATE/apt-lists.new"
    # deb822 .sources files as one-line entries (one stanza each here), then every .list line
    for sources in /etc/apt/sources.list.d/*.sources; do
      [ -f "$sources" ] || continue
      awk '/^URIs:/ { sub(/^URIs: */, ""); u = $0 } /^Suites:/ { sub(/^Suites: */, ""); s = $0 }
        /^Components:/ { sub(/^Components: */, ""); c = $0 } /^Signed-By:/ { sub(/^Signed-By: */, ""); k = $0 }
        END { if (u != "") printf "deb [signed-by=%s] %s %s %s\n", k, u, s, c }' "$sources"
    done > "$STATE/apt-sources.lines"
    for list in "$STATE/apt-sources.lines" /etc/apt/sources.list.d/*.list; do
      [ -f "$list" ] || continue
      while read -r line; do
        case "$line" in deb*) ;; *) continue ;; esac
        key=$(printf '%s\n' "$line" | sed -n 's/.*signed-by=\([^] ]*\).*/\1/p')
        if [ -n "$key" ] && [ ! -s "$key" ]; then
          echo "W: GPG error: $line: The following signatures couldn't be verified because the public key is not available: NO_PUBKEY" >&2
          echo "E: The repository '$line' is not signed." >&2
          exit 100
        fi
        printf '%s\n' "$line" >> "$STATE/apt-lists.new"
      done < "$list"
    done
    mv "$STATE/apt-lists.new" "$STATE/apt-lists"
    echo "Reading package lists... Done"
    ;;
  install)
    take_dpkg_lock
    sleep_if_asked
    if [ -s "$STATE/apt-get.fail" ]; then cat "$STATE/apt-get.fail" >&2; exit 100; fi  # an injected fault
    mkdir -p "$STATE/dpkg"
    for spec in $pkgs; do
      name=${spec%%=*}
      want=
      case "$spec" in *=*) want=${spec#*=} ;; esac
      case "$name" in
        kubelet|kubeadm|kubectl|kubernetes-cni|cri-tools)
          minor=$(sed -n 's,.*pkgs\.k8s\.io/core:/stable:/v1\.\([0-9]*\)/deb/.*,\1,p' "$STATE/apt-lists" 2>/dev/null | head -n 1)
          if [ -z "$minor" ]; then echo "E: Unable to locate package $name" >&2; exit 100; fi
          version="1.$minor.4-1.1" ;;
        containerd.io)
          if ! grep -q 'download\.docker\.com/linux/' "$STATE/apt-lists" 2>/dev/null; then
            echo "E: Unable to locate package $name" >&2; exit 100
          fi
          version="2.1.5-1" ;;
        *) version="0.stub-1" ;;
      esac
      if [ -n "$want" ]; then
        # shellcheck disable=SC2254
        case "$version" in $want) ;; *) echo "E: Version '$want' for '$name' was not found" >&2; exit 100 ;; esac
      fi
      if [ -f "$STATE/holds/$name" ] && [ -f "$STATE/dpkg/$name" ] && [ "$(cat "$STATE/dpkg/$name")" != "$version" ] && [ -z "$allow_held" ]; then
        echo "E: Held packages were changed and -y was used without --allow-change-held-packages." >&2
        exit 100
      fi
      if [ "$name" = containerd.io ] && [ ! -e /etc/containerd/config.toml ]; then
        # The real package ships this conffile, with the CRI plugin disabled.
        mkdir -p /etc/containerd
        printf '%s\n' '#   Copyright 2018-2022 Docker Inc.' '' 'disabled_plugins = ["cri"]' > /etc/containerd/config.toml
      fi
      printf '%s\n' "$version" > "$STATE/dpkg/$name"
      echo "Setting up $name ($version) ..."
    done
    ;;
  *) ;;
esac
exit 0
"""

APT_MARK = r"""
cmd=$1
[ $# -gt 0 ] && shift
case "$cmd" in
  hold)
    mkdir -p "$STATE/holds"
    for p in "$@"; do
      if [ ! -f "$STATE/dpkg/$p" ]; then echo "E: Unable to locate package $p" >&2; exit 100; fi
      if [ -f "$STATE/holds/$p" ]; then echo "$p was already set on hold."; else : > "$STATE/holds/$p"; echo "$p set on hold."; fi
    done ;;
  unhold)
    for p in "$@"; do rm -f "$STATE/holds/$p"; echo "Canceled hold on $p."; done ;;
  showhold)
    for p in "$STATE"/holds/*; do [ -e "$p" ] && echo "${p##*/}"; done ;;
esac
exit 0
"""

DPKG_QUERY = r"""
fmt='${binary:Package}\t${Version}\n'
show=
skip=
pkgs=
for a in "$@"; do
  if [ -n "$skip" ]; then fmt=$a; skip=; continue; fi
  case "$a" in
    -W|--show) show=1 ;;
    -f|--showformat) skip=1 ;;
    -f=*|--showformat=*) fmt=${a#*=} ;;
    -*) ;;
    *) pkgs="$pkgs $a" ;;
  esac
done
[ -n "$show" ] || exit 0
status=0
for p in $pkgs; do
  if [ -f "$STATE/dpkg/$p" ]; then
    read -r v < "$STATE/dpkg/$p"
    out=$(printf '%s' "$fmt" | sed -e "s/\${Package}/$p/g" -e "s/\${binary:Package}/$p/g" \
      -e "s/\${Version}/$v/g" -e 's/\${db:Status-Status}/installed/g' \
      -e 's/\${db:Status-Abbrev}/ii /g' -e 's/\${Status}/install ok installed/g')
    printf '%b' "$out"
  else
    echo "dpkg-query: no packages found matching $p" >&2
    status=1
  fi
done
exit $status
"""

SYSTEMCTL = r"""
cmd=
now=
units=
for a in "$@"; do
  case "$a" in
    --now) now=1 ;;
    -*) ;;
    *) if [ -z "$cmd" ]; then cmd=$a; else
         case "$a" in *.*) ;; *) a="$a.service" ;; esac  # like systemd: "containerd" is containerd.service
         units="$units $a"
       fi ;;
  esac
done
case "$cmd" in is-enabled|is-active) ;; *) mkdir -p "$STATE/systemd/enabled" "$STATE/systemd/active" ;; esac
unit_file() { if [ -f "/etc/systemd/system/$1" ]; then echo "/etc/systemd/system/$1"; fi; }
unit_exists() {
  [ -f "/etc/systemd/system/$1" ] && return 0
  case "$1" in
    swap.target|systemd-resolved.service|systemd-networkd.service|ssh.service) return 0 ;;
    containerd.service) [ -f "$STATE/dpkg/containerd.io" ] ;;
    kubelet.service) [ -f "$STATE/dpkg/kubelet" ] ;;
    *) return 1 ;;
  esac
}
masked() { [ -L "/etc/systemd/system/$1" ] && [ "$(readlink "/etc/systemd/system/$1")" = /dev/null ]; }
enabled() {
  if [ -f "/etc/systemd/system/$1" ]; then
    wanted_by=$(sed -n 's/^WantedBy=//p' "/etc/systemd/system/$1")
    [ -n "$wanted_by" ] && [ -L "/etc/systemd/system/$wanted_by.wants/$1" ]
  else
    [ -f "$STATE/systemd/enabled/$1" ]
  fi
}
# The network manager stand-in: like systemd-networkd when it starts, delete every route it did not
# configure itself (it configures none here; "proto kernel" routes stay) unless a networkd.conf
# (drop-in) says ManageForeignRoutes=no. The node's own routes are real, so this is what they see.
networkd_start() {
  keep=$(cat /etc/systemd/networkd.conf /etc/systemd/networkd.conf.d/*.conf 2>/dev/null |
    sed -n 's/^[[:space:]]*ManageForeignRoutes[[:space:]]*=[[:space:]]*//p' | tail -n 1)
  case "$keep" in no|false|0|off) return 0 ;; esac
  for proto in boot static; do ip -6 route flush proto "$proto"; done
}
start() {
  if masked "$1"; then echo "Failed to start $1: Unit $1 is masked." >&2; exit 1; fi
  if [ "$1" = systemd-networkd.service ]; then networkd_start; fi
  f=$(unit_file "$1")
  if [ -n "$f" ]; then
    exe=$(sed -n 's/^ExecStart=//p' "$f" | head -n 1)
    # Like systemd: run the unit's ExecStart (a oneshot service finishes before start returns).
    if [ -n "$exe" ] && ! sh -c "$exe"; then
      echo "Job for $1 failed because the control process exited with error code." >&2; exit 1
    fi
  fi
  : > "$STATE/systemd/active/$1"
}
need_unit() {
  if ! unit_exists "$1"; then echo "Failed to $cmd $1: Unit $1 not found." >&2; exit 5; fi
}
case "$cmd" in
  daemon-reload) ;;
  enable)
    for u in $units; do
      need_unit "$u"
      f=$(unit_file "$u")
      if [ -n "$f" ]; then
        wanted_by=$(sed -n 's/^WantedBy=//p' "$f" | head -n 1)
        if [ -n "$wanted_by" ] && [ ! -L "/etc/systemd/system/$wanted_by.wants/$u" ]; then
          mkdir -p "/etc/systemd/system/$wanted_by.wants"
          ln -s "$f" "/etc/systemd/system/$wanted_by.wants/$u"
          echo "Created symlink /etc/systemd/system/$wanted_by.wants/$u -> $f."
        fi
      else
        : > "$STATE/systemd/enabled/$u"
      fi
      if [ -n "$now" ]; then start "$u"; fi
    done ;;
  disable)
    for u in $units; do rm -f "$STATE/systemd/enabled/$u" /etc/systemd/system/*.wants/"$u"; done ;;
  mask)
    for u in $units; do
      if ! masked "$u"; then
        mkdir -p /etc/systemd/system
        ln -sf /dev/null "/etc/systemd/system/$u"
        echo "Created symlink /etc/systemd/system/$u -> /dev/null."
      fi
    done ;;
  unmask)
    for u in $units; do if masked "$u"; then rm -f "/etc/systemd/system/$u"; fi; done ;;
  start|restart|reload|reload-or-restart)
    for u in $units; do need_unit "$u"; start "$u"; done ;;
  try-restart)  # only what runs
    for u in $units; do if [ -f "$STATE/systemd/active/$u" ]; then start "$u"; fi; done ;;
  stop)
    for u in $units; do rm -f "$STATE/systemd/active/$u"; done ;;
  is-enabled)
    status=0
    for u in $units; do
      if masked "$u"; then echo masked; status=1
      elif ! unit_exists "$u"; then echo "Failed to get unit file state for $u: No such file or directory" >&2; status=1
      elif enabled "$u"; then echo enabled
      else
        case "$u" in *.target) echo static ;; *) echo disabled; status=1 ;; esac
      fi
    done
    exit $status ;;
  is-active)
    status=0
    for u in $units; do
      if [ -f "$STATE/systemd/active/$u" ]; then echo active; else echo inactive; status=3; fi
    done
    exit $status ;;
  *) ;;
esac
exit 0
"""

MODPROBE = r"""
remove=
mkdir -p "$STATE/modules"
for a in "$@"; do
  case "$a" in
    -r|--remove) remove=1 ;;
    -*) ;;
    *) if [ -n "$remove" ]; then rm -f "$STATE/modules/$a"; else : > "$STATE/modules/$a"; fi ;;
  esac
done
exit 0
"""

LSMOD = r"""
echo "Module                  Size  Used by"
awk '{ printf "%-24s%7s  %s\n", $1, $2, $3 }' /proc/modules
for m in "$STATE"/modules/*; do
  [ -e "$m" ] || continue
  printf '%-24s%7s  %s\n' "${m##*/}" 16384 0
done
exit 0
"""

SWAPOFF = r"""
exit 0
"""

CURL = r"""
# A minimal image has no curl until apt-get installs it.
[ -f "$STATE/dpkg/curl" ] || { echo "sh: 1: curl: not found" >&2; exit 127; }
out=
url=
skip=
for a in "$@"; do
  if [ -n "$skip" ]; then [ "$skip" = o ] && out=$a; skip=; continue; fi
  case "$a" in
    -o|--output) skip=o ;;
    --retry|--max-time|--connect-timeout|-H|--header|-A) skip=x ;;
    -*) ;;
    *) url=$a ;;
  esac
done
case "$url" in
  https://download.docker.com/*|https://pkgs.k8s.io/*|https://dl.k8s.io/*) ;;
  *) echo "curl: (6) Could not resolve host: $url" >&2; exit 6 ;;
esac
body="-----BEGIN PGP PUBLIC KEY BLOCK-----
stub key for $url
-----END PGP PUBLIC KEY BLOCK-----"
if [ -n "$out" ]; then printf '%s\n' "$body" > "$out"; else printf '%s\n' "$body"; fi
exit 0
"""

GPG = r"""
out=
skip=
yes=
dearmor=
input=
for a in "$@"; do
  if [ -n "$skip" ]; then out=$a; skip=; continue; fi
  case "$a" in
    -o|--output) skip=1 ;;
    --yes) yes=1 ;;
    --dearmor|--dearmour) dearmor=1 ;;
    -*) ;;
    *) input=$a ;;
  esac
done
[ -n "$dearmor" ] || exit 0
if [ -n "$out" ] && [ -e "$out" ] && [ -z "$yes" ]; then
  echo "gpg: signal caught ... File '$out' exists. Overwrite? (y/N) EOF" >&2; exit 2
fi
if [ -n "$input" ]; then data=$(cat "$input"); else data=$(cat); fi
case "$data" in *"BEGIN PGP PUBLIC KEY BLOCK"*) ;; *) echo "gpg: no valid OpenPGP data found." >&2; exit 2 ;; esac
if [ -n "$out" ]; then printf 'STUB-KEYRING %s\n' "$(printf '%s' "$data" | cksum)" > "$out"; fi
exit 0
"""

VERSIONED = r"""
case "$*" in
  *version*) echo "{name} v1.33.4 (v6kube testbed stub)" ;;
esac
exit 0
"""

STUBS = {
    "apt-get": APT_GET,
    "apt-mark": APT_MARK,
    "dpkg-query": DPKG_QUERY,
    "systemctl": SYSTEMCTL,
    "modprobe": MODPROBE,
    "lsmod": LSMOD,
    "swapoff": SWAPOFF,
    "curl": CURL,
    "gpg": GPG,
    "containerd": VERSIONED,
    "kubeadm": KUBEADM,
    "kubelet": VERSIONED,
    "kubectl": KUBECTL,
}


def install_stubs(bin_dir: Path, state_dir: Path) -> None:
    """Write every stub into `bin_dir`, recording into `state_dir`."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    for name, body in STUBS.items():
        path = bin_dir / name
        header = HEADER.format(name=name, state=shlex.quote(str(state_dir)))
        path.write_text(header + body.replace("{name}", name))
        path.chmod(0o755)
