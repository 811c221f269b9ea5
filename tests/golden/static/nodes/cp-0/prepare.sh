#!/usr/bin/env bash
# shellcheck disable=SC2016 # file contents are written verbatim, in single quotes
# Prepares node cp-0 for Kubernetes 1.33: swap off, kernel modules, IPv6
# forwarding, IPv6 resolvers, routes to the BGP peers, containerd 2.x, kubelet/kubeadm/kubectl.
# Written by `v6kube plan` from the same steps `v6kube create` runs over SSH. Safe to run again:
# every step checks first and changes only what differs. Run as root.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "prepare.sh: run this as root" >&2
  exit 1
fi
# shellcheck source=/dev/null
os=$(. /etc/os-release && printf '%s-%s' "${ID:-unknown}" "${VERSION_ID:-}")
case "$os" in
  ubuntu-22.04|ubuntu-24.04|debian-12) ;;
  *)
    echo "prepare.sh: unsupported operating system: $os (this script is for: ubuntu-22.04, ubuntu-24.04, debian-12)" >&2
    exit 1
    ;;
esac
arch=$(dpkg --print-architecture)
if [ "$arch" != amd64 ]; then
  echo "prepare.sh: this script is for amd64 servers, this one is $arch" >&2
  exit 1
fi

# Checks used by the steps: each is true when what it names already holds on this node.
# (v6kube.nodes decides the same things in Python from the facts it reads; keep the two in step.)
# Never pipe into `grep -q`: it exits at the first match, the producer then dies of SIGPIPE and
# pipefail turns a match into a failure. awk reads all its input and decides at END.
file_is() { [ -f "$1" ] && [ "$(cat "$1"; echo x)" = "${2}x" ]; }
nonempty() { [ -s "$1" ]; }
absent() { [ ! -e "$1" ]; }
sysctl_is() { [ "$(sysctl -n "$1" 2>/dev/null)" = "$2" ]; }
# No interface still ignores router advertisements because forwarding is on (accept_ra 1).
ra_kept() { ! grep -qsx 1 /proc/sys/net/ipv6/conf/*/accept_ra; }
module_loaded() {
  lsmod 2>/dev/null | awk -v m="$1" 'NR > 1 && $1 == m { found = 1 } END { exit !found }' ||
    grep -qsx ".*/$1\.ko" "/lib/modules/$(uname -r)/modules.builtin"
}
# shellcheck disable=SC2016 # dpkg-query's own ${...} format fields
package_installed() {
  case "$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$1" 2>/dev/null)" in
    "installed $2"*) return 0 ;;
    *) return 1 ;;
  esac
}
package_held() { apt-mark showhold 2>/dev/null | awk -v p="$1" '$0 == p { found = 1 } END { exit !found }'; }
swap_is_off() {
  [ "$(awk 'NR > 1' /proc/swaps | wc -l)" -eq 0 ] &&
    ! awk '$1 !~ /^#/ && $3 == "swap" { found = 1 } END { exit !found }' /etc/fstab 2>/dev/null
}
unit_is() { [ "$(systemctl is-enabled "$1" 2>/dev/null)" = "$2" ]; }
route_via() { ip -6 route show "$1" 2>/dev/null | awk -v gw="$2" 'index($0, " via " gw " ") { found = 1 } END { exit !found }'; }
resolved_in_use() {
  case "$(readlink /etc/resolv.conf 2>/dev/null)" in
    *run/systemd/resolve/*) return 0 ;;
    *) return 1 ;;
  esac
}
nameservers_are() {
  [ "$(awk '$1 == "nameserver" { print $2 }' /etc/resolv.conf 2>/dev/null)" = "$(printf '%s\n' "$@")" ]
}
# Whether the node has a route to at least one address of host $1 (IPv6 first; IPv4 only for a
# host without IPv6, or when the node has IPv4 itself). Lookups give up after 2 s without an answer.
host_routed() {
  for a in $({ RES_OPTIONS='timeout:2 attempts:1'; export RES_OPTIONS; getent hosts "$1"; getent ahostsv4 "$1"; } 2>/dev/null |
    awk '{ print $1 }' | sort -u); do
    if ip route get "$a" >/dev/null 2>&1; then return 0; fi
  done
  return 1
}

# Every host this node downloads from needs an address it has a route to (an IPv6-only node
# cannot reach a host that serves only IPv4): say which one before anything changes.
unreachable=
for host in download.docker.com pkgs.k8s.io prod-cdn.packages.k8s.io registry.k8s.io quay.io; do
  host_routed "$host" || unreachable="$unreachable $host"
done
if [ -n "$unreachable" ]; then
  echo "prepare.sh: no route to any address of:$unreachable (IPv4 or NAT64/DNS64 is needed for a host without IPv6); nothing was changed" >&2
  exit 1
fi

# --- swap-off: swap is off now and stays off after a reboot
if swap_is_off && unit_is swap.target masked; then
  echo 'ok: swap-off: swap is off now and stays off after a reboot'
else
  echo 'run: swap-off'
  swapoff -a
  awk '{ if ($1 !~ /^#/ && $3 == "swap") print "#" $0; else print }' /etc/fstab > /etc/fstab.v6kube-new
  cat /etc/fstab.v6kube-new > /etc/fstab
  rm -f /etc/fstab.v6kube-new
  systemctl mask swap.target
fi

# --- kernel-modules: br_netfilter and overlay are loaded and load at boot
if file_is /etc/modules-load.d/v6kube.conf '# Written by v6kube: kernel modules Kubernetes needs, loaded at boot.
br_netfilter
overlay
' && module_loaded br_netfilter && module_loaded overlay; then
  echo 'ok: kernel-modules: br_netfilter and overlay are loaded and load at boot'
else
  echo 'run: kernel-modules'
  install -d -m 0755 /etc/modules-load.d
  printf '%s' '# Written by v6kube: kernel modules Kubernetes needs, loaded at boot.
br_netfilter
overlay
' > /etc/modules-load.d/v6kube.conf.v6kube-new
  chmod 0644 /etc/modules-load.d/v6kube.conf.v6kube-new
  mv -f /etc/modules-load.d/v6kube.conf.v6kube-new /etc/modules-load.d/v6kube.conf
  modprobe br_netfilter
  modprobe overlay
fi

# --- sysctls: IPv6 forwarding is on (accept_ra 2), now and after a reboot
if file_is /etc/sysctl.d/90-v6kube.conf '# Written by v6kube. IPv6 forwarding for pods and services (kubeadm checks default.forwarding);
# accept_ra = 2 keeps router advertisements working with forwarding on.
net.ipv6.conf.all.forwarding = 1
net.ipv6.conf.default.forwarding = 1
net.ipv6.conf.all.accept_ra = 2
net.ipv6.conf.default.accept_ra = 2
' && sysctl_is net.ipv6.conf.all.forwarding 1 && sysctl_is net.ipv6.conf.default.forwarding 1 && sysctl_is net.ipv6.conf.all.accept_ra 2 && sysctl_is net.ipv6.conf.default.accept_ra 2 && ra_kept; then
  echo 'ok: sysctls: IPv6 forwarding is on (accept_ra 2), now and after a reboot'
else
  echo 'run: sysctls'
  install -d -m 0755 /etc/sysctl.d
  printf '%s' '# Written by v6kube. IPv6 forwarding for pods and services (kubeadm checks default.forwarding);
# accept_ra = 2 keeps router advertisements working with forwarding on.
net.ipv6.conf.all.forwarding = 1
net.ipv6.conf.default.forwarding = 1
net.ipv6.conf.all.accept_ra = 2
net.ipv6.conf.default.accept_ra = 2
' > /etc/sysctl.d/90-v6kube.conf.v6kube-new
  chmod 0644 /etc/sysctl.d/90-v6kube.conf.v6kube-new
  mv -f /etc/sysctl.d/90-v6kube.conf.v6kube-new /etc/sysctl.d/90-v6kube.conf
  sysctl -p /etc/sysctl.d/90-v6kube.conf
  for f in /proc/sys/net/ipv6/conf/*/accept_ra; do if [ "$(cat "$f")" = 1 ]; then echo 2 > "$f"; fi; done
fi

# --- resolvers-resolved: systemd-resolved uses the IPv6 resolvers 2001:4860:4860::8888, 2001:4860:4860::8844
if resolved_in_use; then
if file_is /etc/systemd/resolved.conf.d/v6kube-dns.conf '# Written by v6kube: IPv6 resolvers (pods on an IPv6-only network cannot reach IPv4 ones).
[Resolve]
DNS=2001:4860:4860::8888 2001:4860:4860::8844
'; then
  echo 'ok: resolvers-resolved: systemd-resolved uses the IPv6 resolvers 2001:4860:4860::8888, 2001:4860:4860::8844'
else
  echo 'run: resolvers-resolved'
  install -d -m 0755 /etc/systemd/resolved.conf.d
  printf '%s' '# Written by v6kube: IPv6 resolvers (pods on an IPv6-only network cannot reach IPv4 ones).
[Resolve]
DNS=2001:4860:4860::8888 2001:4860:4860::8844
' > /etc/systemd/resolved.conf.d/v6kube-dns.conf.v6kube-new
  chmod 0644 /etc/systemd/resolved.conf.d/v6kube-dns.conf.v6kube-new
  mv -f /etc/systemd/resolved.conf.d/v6kube-dns.conf.v6kube-new /etc/systemd/resolved.conf.d/v6kube-dns.conf
  systemctl restart systemd-resolved
fi
else
  echo 'skip: resolvers-resolved: systemd-resolved does not manage /etc/resolv.conf'
fi

# --- resolvers-resolv-conf: /etc/resolv.conf names the IPv6 resolvers 2001:4860:4860::8888, 2001:4860:4860::8844
if ! resolved_in_use; then
if nameservers_are 2001:4860:4860::8888 2001:4860:4860::8844; then
  echo 'ok: resolvers-resolv-conf: /etc/resolv.conf names the IPv6 resolvers 2001:4860:4860::8888, 2001:4860:4860::8844'
else
  echo 'run: resolvers-resolv-conf'
  { printf 'nameserver %s\n' 2001:4860:4860::8888 2001:4860:4860::8844; grep -v '^[[:space:]]*nameserver[[:space:]]' /etc/resolv.conf || true; } > /etc/resolv.conf.v6kube-new
  cat /etc/resolv.conf.v6kube-new > /etc/resolv.conf
  rm -f /etc/resolv.conf.v6kube-new
fi
else
  echo 'skip: resolvers-resolv-conf: systemd-resolved manages /etc/resolv.conf'
fi

# --- kubelet-resolvers: /etc/v6kube/resolv.conf (the pods' resolv.conf) names only the IPv6 resolvers
if file_is /etc/v6kube/resolv.conf '# Written by v6kube: the resolv.conf the kubelet gives to pods and CoreDNS. Only IPv6 resolvers:
# pods on an IPv6-only network cannot reach IPv4 ones.
nameserver 2001:4860:4860::8888
nameserver 2001:4860:4860::8844
'; then
  echo 'ok: kubelet-resolvers: /etc/v6kube/resolv.conf (the pods'"'"' resolv.conf) names only the IPv6 resolvers'
else
  echo 'run: kubelet-resolvers'
  install -d -m 0755 /etc/v6kube
  printf '%s' '# Written by v6kube: the resolv.conf the kubelet gives to pods and CoreDNS. Only IPv6 resolvers:
# pods on an IPv6-only network cannot reach IPv4 ones.
nameserver 2001:4860:4860::8888
nameserver 2001:4860:4860::8844
' > /etc/v6kube/resolv.conf.v6kube-new
  chmod 0644 /etc/v6kube/resolv.conf.v6kube-new
  mv -f /etc/v6kube/resolv.conf.v6kube-new /etc/v6kube/resolv.conf
fi

# --- networkd-keeps-routes: systemd-networkd leaves the routes it did not make (the peer routes, Calico's) alone
if file_is /etc/systemd/networkd.conf.d/v6kube-foreign-routes.conf '# Written by v6kube: systemd-networkd deletes the routes it did not configure when it starts
# (ManageForeignRoutes=yes by default), among them the routes to the BGP peers and Calico'"'"'s.
[Network]
ManageForeignRoutes=no
'; then
  echo 'ok: networkd-keeps-routes: systemd-networkd leaves the routes it did not make (the peer routes, Calico'"'"'s) alone'
else
  echo 'run: networkd-keeps-routes'
  install -d -m 0755 /etc/systemd/networkd.conf.d
  printf '%s' '# Written by v6kube: systemd-networkd deletes the routes it did not configure when it starts
# (ManageForeignRoutes=yes by default), among them the routes to the BGP peers and Calico'"'"'s.
[Network]
ManageForeignRoutes=no
' > /etc/systemd/networkd.conf.d/v6kube-foreign-routes.conf.v6kube-new
  chmod 0644 /etc/systemd/networkd.conf.d/v6kube-foreign-routes.conf.v6kube-new
  mv -f /etc/systemd/networkd.conf.d/v6kube-foreign-routes.conf.v6kube-new /etc/systemd/networkd.conf.d/v6kube-foreign-routes.conf
  systemctl try-restart systemd-networkd.service
fi

# --- peer-routes: the BGP peers are routed via the gateway 2001:db8:0:2a00::1
if route_via 2001:db8:ffff::e/128 2001:db8:0:2a00::1 && route_via 2001:db8:ffff::f/128 2001:db8:0:2a00::1; then
  echo 'ok: peer-routes: the BGP peers are routed via the gateway 2001:db8:0:2a00::1'
else
  echo 'run: peer-routes'
  ip -6 route replace 2001:db8:ffff::e/128 via 2001:db8:0:2a00::1
  ip -6 route replace 2001:db8:ffff::f/128 via 2001:db8:0:2a00::1
fi

# --- peer-routes-at-boot: v6kube-peer-routes.service restores the peer routes at boot
if file_is /etc/v6kube/peer-routes.sh '#!/bin/sh
# Written by v6kube: routes to the BGP peers via the gateway of the node. Run at boot by
# v6kube-peer-routes.service; tries again while the network is still coming up.
tries=0
until ip -6 route replace 2001:db8:ffff::e/128 via 2001:db8:0:2a00::1 && ip -6 route replace 2001:db8:ffff::f/128 via 2001:db8:0:2a00::1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "v6kube-peer-routes: no route to the BGP peers after 60 s via" 2001:db8:0:2a00::1 >&2
    exit 1
  fi
  sleep 1
done
' && file_is /etc/systemd/system/v6kube-peer-routes.service '# Written by v6kube: routes to the BGP peers survive a reboot, whatever manages the network
# (netplan, ifupdown or systemd-networkd).
[Unit]
Description=v6kube: routes to the BGP peers via the gateway
Wants=network-online.target
After=network-online.target
Before=kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/etc/v6kube/peer-routes.sh

[Install]
WantedBy=multi-user.target
' && unit_is v6kube-peer-routes.service enabled; then
  echo 'ok: peer-routes-at-boot: v6kube-peer-routes.service restores the peer routes at boot'
else
  echo 'run: peer-routes-at-boot'
  install -d -m 0755 /etc/v6kube
  printf '%s' '#!/bin/sh
# Written by v6kube: routes to the BGP peers via the gateway of the node. Run at boot by
# v6kube-peer-routes.service; tries again while the network is still coming up.
tries=0
until ip -6 route replace 2001:db8:ffff::e/128 via 2001:db8:0:2a00::1 && ip -6 route replace 2001:db8:ffff::f/128 via 2001:db8:0:2a00::1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "v6kube-peer-routes: no route to the BGP peers after 60 s via" 2001:db8:0:2a00::1 >&2
    exit 1
  fi
  sleep 1
done
' > /etc/v6kube/peer-routes.sh.v6kube-new
  chmod 0755 /etc/v6kube/peer-routes.sh.v6kube-new
  mv -f /etc/v6kube/peer-routes.sh.v6kube-new /etc/v6kube/peer-routes.sh
  install -d -m 0755 /etc/systemd/system
  printf '%s' '# Written by v6kube: routes to the BGP peers survive a reboot, whatever manages the network
# (netplan, ifupdown or systemd-networkd).
[Unit]
Description=v6kube: routes to the BGP peers via the gateway
Wants=network-online.target
After=network-online.target
Before=kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/etc/v6kube/peer-routes.sh

[Install]
WantedBy=multi-user.target
' > /etc/systemd/system/v6kube-peer-routes.service.v6kube-new
  chmod 0644 /etc/systemd/system/v6kube-peer-routes.service.v6kube-new
  mv -f /etc/systemd/system/v6kube-peer-routes.service.v6kube-new /etc/systemd/system/v6kube-peer-routes.service
  systemctl daemon-reload
  systemctl enable v6kube-peer-routes.service
fi

# --- base-packages: curl and ca-certificates are installed (the steps fetch apt keys with curl)
if package_installed curl '' && package_installed ca-certificates ''; then
  echo 'ok: base-packages: curl and ca-certificates are installed (the steps fetch apt keys with curl)'
else
  echo 'run: base-packages'
  apt-get update -q -o DPkg::Lock::Timeout=600
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold curl ca-certificates
fi

# --- docker-repo: depends on the operating system
case "$os" in
  ubuntu-22.04)
if nonempty /etc/apt/keyrings/docker.asc && file_is /etc/apt/sources.list.d/docker.sources '# Written by v6kube: containerd 2.x (package containerd.io) from the Docker repository, in the
# deb822 form Docker documents; the containerd of ubuntu itself is 1.x.
Types: deb
URIs: https://download.docker.com/linux/ubuntu
Suites: jammy
Components: stable
Architectures: amd64
Signed-By: /etc/apt/keyrings/docker.asc
' && absent /etc/apt/sources.list.d/docker.list; then
  echo 'ok: docker-repo: apt has the Docker repository for ubuntu jammy (containerd 2.x)'
else
  echo 'run: docker-repo'
  install -d -m 0755 /etc/apt/keyrings
  curl -fsSL --retry 5 -o /etc/apt/keyrings/docker.asc.v6kube-new https://download.docker.com/linux/ubuntu/gpg
  chmod 0644 /etc/apt/keyrings/docker.asc.v6kube-new
  mv -f /etc/apt/keyrings/docker.asc.v6kube-new /etc/apt/keyrings/docker.asc
  install -d -m 0755 /etc/apt/sources.list.d
  printf '%s' '# Written by v6kube: containerd 2.x (package containerd.io) from the Docker repository, in the
# deb822 form Docker documents; the containerd of ubuntu itself is 1.x.
Types: deb
URIs: https://download.docker.com/linux/ubuntu
Suites: jammy
Components: stable
Architectures: amd64
Signed-By: /etc/apt/keyrings/docker.asc
' > /etc/apt/sources.list.d/docker.sources.v6kube-new
  chmod 0644 /etc/apt/sources.list.d/docker.sources.v6kube-new
  mv -f /etc/apt/sources.list.d/docker.sources.v6kube-new /etc/apt/sources.list.d/docker.sources
  rm -f /etc/apt/sources.list.d/docker.list
fi
    ;;
  ubuntu-24.04)
if nonempty /etc/apt/keyrings/docker.asc && file_is /etc/apt/sources.list.d/docker.sources '# Written by v6kube: containerd 2.x (package containerd.io) from the Docker repository, in the
# deb822 form Docker documents; the containerd of ubuntu itself is 1.x.
Types: deb
URIs: https://download.docker.com/linux/ubuntu
Suites: noble
Components: stable
Architectures: amd64
Signed-By: /etc/apt/keyrings/docker.asc
' && absent /etc/apt/sources.list.d/docker.list; then
  echo 'ok: docker-repo: apt has the Docker repository for ubuntu noble (containerd 2.x)'
else
  echo 'run: docker-repo'
  install -d -m 0755 /etc/apt/keyrings
  curl -fsSL --retry 5 -o /etc/apt/keyrings/docker.asc.v6kube-new https://download.docker.com/linux/ubuntu/gpg
  chmod 0644 /etc/apt/keyrings/docker.asc.v6kube-new
  mv -f /etc/apt/keyrings/docker.asc.v6kube-new /etc/apt/keyrings/docker.asc
  install -d -m 0755 /etc/apt/sources.list.d
  printf '%s' '# Written by v6kube: containerd 2.x (package containerd.io) from the Docker repository, in the
# deb822 form Docker documents; the containerd of ubuntu itself is 1.x.
Types: deb
URIs: https://download.docker.com/linux/ubuntu
Suites: noble
Components: stable
Architectures: amd64
Signed-By: /etc/apt/keyrings/docker.asc
' > /etc/apt/sources.list.d/docker.sources.v6kube-new
  chmod 0644 /etc/apt/sources.list.d/docker.sources.v6kube-new
  mv -f /etc/apt/sources.list.d/docker.sources.v6kube-new /etc/apt/sources.list.d/docker.sources
  rm -f /etc/apt/sources.list.d/docker.list
fi
    ;;
  debian-12)
if nonempty /etc/apt/keyrings/docker.asc && file_is /etc/apt/sources.list.d/docker.sources '# Written by v6kube: containerd 2.x (package containerd.io) from the Docker repository, in the
# deb822 form Docker documents; the containerd of debian itself is 1.x.
Types: deb
URIs: https://download.docker.com/linux/debian
Suites: bookworm
Components: stable
Architectures: amd64
Signed-By: /etc/apt/keyrings/docker.asc
' && absent /etc/apt/sources.list.d/docker.list; then
  echo 'ok: docker-repo: apt has the Docker repository for debian bookworm (containerd 2.x)'
else
  echo 'run: docker-repo'
  install -d -m 0755 /etc/apt/keyrings
  curl -fsSL --retry 5 -o /etc/apt/keyrings/docker.asc.v6kube-new https://download.docker.com/linux/debian/gpg
  chmod 0644 /etc/apt/keyrings/docker.asc.v6kube-new
  mv -f /etc/apt/keyrings/docker.asc.v6kube-new /etc/apt/keyrings/docker.asc
  install -d -m 0755 /etc/apt/sources.list.d
  printf '%s' '# Written by v6kube: containerd 2.x (package containerd.io) from the Docker repository, in the
# deb822 form Docker documents; the containerd of debian itself is 1.x.
Types: deb
URIs: https://download.docker.com/linux/debian
Suites: bookworm
Components: stable
Architectures: amd64
Signed-By: /etc/apt/keyrings/docker.asc
' > /etc/apt/sources.list.d/docker.sources.v6kube-new
  chmod 0644 /etc/apt/sources.list.d/docker.sources.v6kube-new
  mv -f /etc/apt/sources.list.d/docker.sources.v6kube-new /etc/apt/sources.list.d/docker.sources
  rm -f /etc/apt/sources.list.d/docker.list
fi
    ;;
esac

# --- kubernetes-repo: apt has the pkgs.k8s.io repository for Kubernetes 1.33
if nonempty /etc/apt/keyrings/kubernetes-apt-keyring.asc && file_is /etc/apt/sources.list.d/kubernetes.list '# Written by v6kube: Kubernetes 1.33 packages (one repository per minor version).
deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.asc] https://pkgs.k8s.io/core:/stable:/v1.33/deb/ /
'; then
  echo 'ok: kubernetes-repo: apt has the pkgs.k8s.io repository for Kubernetes 1.33'
else
  echo 'run: kubernetes-repo'
  install -d -m 0755 /etc/apt/keyrings
  curl -fsSL --retry 5 -o /etc/apt/keyrings/kubernetes-apt-keyring.asc.v6kube-new https://pkgs.k8s.io/core:/stable:/v1.33/deb/Release.key
  chmod 0644 /etc/apt/keyrings/kubernetes-apt-keyring.asc.v6kube-new
  mv -f /etc/apt/keyrings/kubernetes-apt-keyring.asc.v6kube-new /etc/apt/keyrings/kubernetes-apt-keyring.asc
  install -d -m 0755 /etc/apt/sources.list.d
  printf '%s' '# Written by v6kube: Kubernetes 1.33 packages (one repository per minor version).
deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.asc] https://pkgs.k8s.io/core:/stable:/v1.33/deb/ /
' > /etc/apt/sources.list.d/kubernetes.list.v6kube-new
  chmod 0644 /etc/apt/sources.list.d/kubernetes.list.v6kube-new
  mv -f /etc/apt/sources.list.d/kubernetes.list.v6kube-new /etc/apt/sources.list.d/kubernetes.list
fi

# --- packages: containerd 2.x and kubelet, kubeadm, kubectl 1.33 are installed
if package_installed containerd.io 2. && package_installed kubelet 1.33. && package_installed kubeadm 1.33. && package_installed kubectl 1.33.; then
  echo 'ok: packages: containerd 2.x and kubelet, kubeadm, kubectl 1.33 are installed'
else
  echo 'run: packages'
  apt-get update -q -o DPkg::Lock::Timeout=600
  apt-mark unhold kubelet kubeadm kubectl
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold 'containerd.io=2.*' 'kubelet=1.33.*' 'kubeadm=1.33.*' 'kubectl=1.33.*'
  apt-mark hold kubelet kubeadm kubectl
fi

# --- packages-held: kubelet, kubeadm and kubectl are held (upgrades go through kubeadm)
if package_held kubelet && package_held kubeadm && package_held kubectl; then
  echo 'ok: packages-held: kubelet, kubeadm and kubectl are held (upgrades go through kubeadm)'
else
  echo 'run: packages-held'
  apt-mark hold kubelet kubeadm kubectl
fi

# --- containerd-config: containerd uses the systemd cgroup driver and the pause image of Kubernetes 1.33 (config version 3)
if file_is /etc/containerd/config.toml '# Written by v6kube: containerd 2.x, config version 3. Keys not set here keep their defaults.
version = 3

# The pause image kubeadm 1.33 expects: with another one, kubeadm'"'"'s preflight warns that the
# sandbox image is inconsistent (and the kubelet'"'"'s image garbage collection may remove it).
[plugins.'"'"'io.containerd.cri.v1.images'"'"'.pinned_images]
  sandbox = '"'"'registry.k8s.io/pause:3.10'"'"'

[plugins.'"'"'io.containerd.cri.v1.runtime'"'"'.containerd]
  default_runtime_name = '"'"'runc'"'"'

[plugins.'"'"'io.containerd.cri.v1.runtime'"'"'.containerd.runtimes.runc]
  runtime_type = '"'"'io.containerd.runc.v2'"'"'

# The kubelet uses the systemd cgroup driver (the kubeadm default); containerd must match.
[plugins.'"'"'io.containerd.cri.v1.runtime'"'"'.containerd.runtimes.runc.options]
  SystemdCgroup = true
'; then
  echo 'ok: containerd-config: containerd uses the systemd cgroup driver and the pause image of Kubernetes 1.33 (config version 3)'
else
  echo 'run: containerd-config'
  install -d -m 0755 /etc/containerd
  printf '%s' '# Written by v6kube: containerd 2.x, config version 3. Keys not set here keep their defaults.
version = 3

# The pause image kubeadm 1.33 expects: with another one, kubeadm'"'"'s preflight warns that the
# sandbox image is inconsistent (and the kubelet'"'"'s image garbage collection may remove it).
[plugins.'"'"'io.containerd.cri.v1.images'"'"'.pinned_images]
  sandbox = '"'"'registry.k8s.io/pause:3.10'"'"'

[plugins.'"'"'io.containerd.cri.v1.runtime'"'"'.containerd]
  default_runtime_name = '"'"'runc'"'"'

[plugins.'"'"'io.containerd.cri.v1.runtime'"'"'.containerd.runtimes.runc]
  runtime_type = '"'"'io.containerd.runc.v2'"'"'

# The kubelet uses the systemd cgroup driver (the kubeadm default); containerd must match.
[plugins.'"'"'io.containerd.cri.v1.runtime'"'"'.containerd.runtimes.runc.options]
  SystemdCgroup = true
' > /etc/containerd/config.toml.v6kube-new
  chmod 0644 /etc/containerd/config.toml.v6kube-new
  mv -f /etc/containerd/config.toml.v6kube-new /etc/containerd/config.toml
  systemctl restart containerd
fi

echo 'done: cp-0 is prepared'
