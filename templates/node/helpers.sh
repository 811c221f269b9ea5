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
