"""Stand-ins for kubeadm, kubectl and calicoctl on testbed nodes, sharing one "API server".

They check what the real tools would refuse (init twice, a join with an unknown token or a
wrong CA hash, an Installation before its CRD, Kubernetes objects given to calicoctl, a
`stable-` label where create must pin the exact version) and keep what they did in
`<lab root>/kube-api/<API address>/`, so the control plane's kubectl sees the workers that
joined. The CA is a real certificate made once per lab; kubeadm's discovery hash is checked.
"""

from __future__ import annotations

import datetime
import hashlib
import sys
from pathlib import Path

# Every stub finds the lab root from its node's state dir: <root>/nodes/<node>/state.
COMMON = r"""
ROOT=$(cd "$STATE/../../.." && pwd)
FIX="$ROOT/kube-fixtures"
api_of_server() {  # "https://[addr]:6443" or "[addr]:6443" -> the API dir
  addr=$(printf '%s' "$1" | sed -n 's/.*\[\([0-9a-fA-F:]*\)\].*/\1/p')
  [ -n "$addr" ] || { echo "error: no API server address in '$1'" >&2; exit 1; }
  echo "$ROOT/kube-api/$addr"
}
yaml_value() {  # first value of "key:" in a file, unquoted
  sed -n "s/^[[:space:]-]*$1:[[:space:]]*\"\{0,1\}\([^\"]*\)\"\{0,1\}[[:space:]]*$/\1/p" "$2" | head -n 1
}
"""

KUBEADM = COMMON + r"""
installed_version() {
  v=$(cat "$STATE/dpkg/kubeadm" 2>/dev/null || echo 1.33.4-1.1)
  echo "v${v%%-*}"
}
cmd=$1; [ $# -gt 0 ] && shift
config=
for a in "$@"; do
  case "$prev" in --config) config=$a ;; esac
  case "$a" in --config=*) config=${a#--config=} ;; esac
  prev=$a
done
case "$cmd" in
  version)
    case "$*" in *short*) installed_version ;; *) echo "kubeadm version: &version.Info{GitVersion:\"$(installed_version)\"}" ;; esac ;;
  init)
    [ -f "$config" ] || { echo "error: unable to read config from \"$config\"" >&2; exit 1; }
    grep -q '^kind: InitConfiguration' "$config" || { echo "error: no InitConfiguration in $config" >&2; exit 1; }
    [ -f "$STATE/dpkg/kubelet" ] && [ -f "$STATE/dpkg/containerd.io" ] || { echo "[ERROR] kubelet or containerd not installed" >&2; exit 1; }
    version=$(yaml_value kubernetesVersion "$config")
    case "$version" in v[0-9]*.[0-9]*.[0-9]*) ;; *) echo "stub: kubernetesVersion must be exact, got '$version'" >&2; exit 1 ;; esac
    if [ -e /etc/kubernetes/admin.conf ]; then
      echo "[ERROR FileAvailable--etc-kubernetes-admin.conf]: /etc/kubernetes/admin.conf already exists" >&2; exit 1
    fi
    addr=$(yaml_value advertiseAddress "$config")
    name=$(yaml_value name "$config")
    API="$ROOT/kube-api/$addr"
    rm -rf "$API"; mkdir -p "$API/nodes" "$API/tokens" "$API/objects" /etc/kubernetes/pki
    cp "$FIX/ca.crt" /etc/kubernetes/pki/ca.crt
    token=$(yaml_value token "$config")
    [ -n "$token" ] && : > "$API/tokens/${token%%.*}"
    cat > /etc/kubernetes/admin.conf <<EOF
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: $(base64 -w0 "$FIX/ca.crt")
    server: https://[$addr]:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
users:
- name: kubernetes-admin
  user:
    client-certificate-data: $(printf 'stub client cert' | base64 -w0)
    client-key-data: $(printf 'stub client key' | base64 -w0)
EOF
    chmod 600 /etc/kubernetes/admin.conf
    cp /etc/kubernetes/admin.conf /etc/kubernetes/kubelet.conf
    echo "$version" > "$API/version"
    echo control-plane > "$API/nodes/$name"
    echo "Your Kubernetes control-plane has initialized successfully!" ;;
  token)
    sub=$1; shift
    API=$(api_of_server "$(yaml_value server /etc/kubernetes/admin.conf)")
    case "$sub" in
      create) t=$1; case "$t" in [a-z0-9][a-z0-9][a-z0-9][a-z0-9][a-z0-9][a-z0-9].*) ;; *) echo "error: bad token" >&2; exit 1 ;; esac
              : > "$API/tokens/${t%%.*}"; echo "$t" ;;
      delete) rm -f "$API/tokens/$1"; echo "bootstrap token \"$1\" deleted" ;;
      list) ls "$API/tokens" ;;
    esac ;;
  join)
    [ -f "$config" ] || { echo "error: unable to read config from \"$config\"" >&2; exit 1; }
    if [ -e /etc/kubernetes/kubelet.conf ]; then
      echo "[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists" >&2; exit 1
    fi
    API=$(api_of_server "$(yaml_value apiServerEndpoint "$config")")
    [ -d "$API" ] || { echo "error: couldn't validate the identity of the API Server: connection refused" >&2; exit 1; }
    token=$(yaml_value token "$config")
    [ -e "$API/tokens/${token%%.*}" ] || { echo "error: token id \"${token%%.*}\" is invalid for this cluster or it has expired" >&2; exit 1; }
    hash=$(sed -n 's/^[[:space:]]*-[[:space:]]*"\{0,1\}\(sha256:[0-9a-f]*\)"\{0,1\}$/\1/p' "$config" | head -n 1)
    [ "$hash" = "$(cat "$FIX/ca.hash")" ] || { echo "error: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"$(cat "$FIX/ca.hash")\" are pinned" >&2; exit 1; }
    name=$(yaml_value name "$config")
    mkdir -p /etc/kubernetes/pki
    cp "$FIX/ca.crt" /etc/kubernetes/pki/ca.crt
    echo "kubelet stub config" > /etc/kubernetes/kubelet.conf
    echo worker > "$API/nodes/$name"
    echo "This node has joined the cluster" ;;
  reset)
    rm -rf /etc/kubernetes/manifests /etc/kubernetes/pki /etc/kubernetes/*.conf
    echo "[reset] done" ;;
  *) echo "stub kubeadm: unknown command $cmd" >&2; exit 1 ;;
esac
exit 0
"""

KUBECTL = COMMON + r"""
kubeconfig=
args=
for a in "$@"; do
  case "$a" in --kubeconfig=*) kubeconfig=${a#--kubeconfig=} ;; *) args="$args $a" ;; esac
done
set -- $args
[ -n "$kubeconfig" ] && [ -f "$kubeconfig" ] || { echo "error: no kubeconfig (the stub needs --kubeconfig=...)" >&2; exit 1; }
API=$(api_of_server "$(yaml_value server "$kubeconfig")")
[ -d "$API" ] || { echo "The connection to the server was refused" >&2; exit 1; }
file=
for a in "$@"; do [ "$prev" = -f ] && file=$a; prev=$a; done
case "$1 $2" in
  "get --raw=/readyz") echo ok ;;
  "apply "*)
    [ -f "$file" ] || { echo "error: the path \"$file\" does not exist" >&2; exit 1; }
    # one "kind name" line per document (metadata.name: the first "  name:" after "kind:")
    awk '/^kind:/{k=$2; want=1} want && /^  name:/{gsub(/"/,"",$2); print k, $2; want=0}' "$file" > "$API/.objects"
    while read -r kind name; do
      if [ "$kind" = Installation ] && [ ! -e "$API/objects/CustomResourceDefinition/installations.operator.tigera.io" ]; then
        echo "error: resource mapping not found for name: \"$name\": no matches for kind \"Installation\"" >&2; exit 1
      fi
      case "$kind" in BGPPeer|BGPConfiguration|IPPool)
        echo "error: no matches for kind \"$kind\" in version \"projectcalico.org/v3\" (the Calico API server is not installed)" >&2; exit 1 ;;
      esac
      mkdir -p "$API/objects/$kind"; : > "$API/objects/$kind/$name"
      echo "$kind/$name serverside-applied"
    done < "$API/.objects" ;;
  "get tigerastatus")
    if [ -e "$API/objects/Installation/default" ]; then
      if [ -e "$API/calico-starting" ]; then echo True; else : > "$API/calico-starting"; echo False; fi
    else echo 'Error from server (NotFound): tigerastatuses.operator.tigera.io "calico" not found' >&2; exit 1; fi ;;
  "get nodes")
    if [ "$3 $4" = "-o json" ]; then
      sep=; printf '{"items": ['
      for n in "$API"/nodes/*; do
        printf '%s{"metadata": {"name": "%s"}, "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "%s"}}}' "$sep" "${n##*/}" "$(cat "$API/version")"
        sep=", "
      done
      printf ']}\n'
    else for n in "$API"/nodes/*; do echo "${n##*/} Ready $(cat "$n")"; done; fi ;;
  "get blockaffinities.crd.projectcalico.org") cat "$API/blockaffinities.json" 2>/dev/null || echo '{"items": []}' ;;
  "get pods"|"get endpointslices") echo '{"items": []}' ;;
  "get service") cat "$API/services/$4/$5.json" 2>/dev/null || { echo "Error from server (NotFound): services \"$5\" not found" >&2; exit 1; } ;;
  "patch service") echo "$*" >> "$API/patches.log"; echo "service/$5 patched" ;;
  *) echo "stub kubectl: unsupported: $*" >&2; exit 1 ;;
esac
exit 0
"""


def calicoctl_script(lab_root: Path, version: str) -> str:
    """What the test's download server hands out as the calicoctl release binary: a Python script
    (this interpreter, which has PyYAML) keeping Calico objects as JSON in the API directory. A
    CalicoNodeStatus is filled in from the node's own BIRD when a test runs one (its control socket
    <root>/nodes/<node>/bird.ctl), as calico-node would."""
    return f"#!{sys.executable}\nROOT = {str(lab_root)!r}\nVERSION = {version!r}\n" + CALICOCTL


CALICOCTL = r"""
import json, os, re, subprocess, sys
from pathlib import Path
import yaml

args = sys.argv[1:]
with open(os.path.join(ROOT, "calicoctl.log"), "a") as log:
    log.write("calicoctl " + " ".join(args) + "\n")
if args[:1] == ["version"]:
    print(f"Client Version:    v{VERSION}")
    sys.exit(0)
if os.environ.get("DATASTORE_TYPE") != "kubernetes" or not os.path.isfile(os.environ.get("KUBECONFIG", "")):
    sys.exit("Failed to create Calico API client: set DATASTORE_TYPE=kubernetes and KUBECONFIG")
server = re.search(r"server: https://\[([0-9a-fA-F:]+)\]", Path(os.environ["KUBECONFIG"]).read_text()).group(1)
api = Path(ROOT) / "kube-api" / server / "calico"
KINDS = {"bgpconfiguration": "BGPConfiguration", "bgpconfigurations": "BGPConfiguration", "bgppeer": "BGPPeer",
         "bgppeers": "BGPPeer", "ippool": "IPPool", "ippools": "IPPool", "caliconodestatus": "CalicoNodeStatus"}


def node_status(obj):
    ctl = Path(ROOT) / "nodes" / obj["spec"]["node"] / "bird.ctl"
    if not ctl.exists():
        return obj
    out = subprocess.run(["birdc", "-s", str(ctl), "show", "protocols"], capture_output=True, text=True).stdout
    peers = []
    for line in out.splitlines():
        cols = line.split(None, 5)
        if len(cols) >= 5 and cols[1] == "BGP" and cols[0].startswith("Node_"):
            info = cols[5] if len(cols) > 5 else ""
            peers.append({"peerIP": cols[0][5:].replace("_", ":"), "type": "NodePeer",
                          "state": "Established" if "Established" in info else (info.split() or ["Idle"])[0],
                          "since": cols[4]})
    obj["status"] = {"agent": {"birdV6": {"state": "Ready"}}, "bgp": {"numberEstablishedV6": sum(
        p["state"] == "Established" for p in peers), "peersV6": peers}}
    return obj


command = args[0] if args else ""
if command == "apply":
    for doc in yaml.safe_load_all(Path(args[args.index("-f") + 1]).read_text()):
        if not doc:
            continue
        if doc.get("apiVersion") != "projectcalico.org/v3":
            sys.exit(f"Failed to execute command: resource type '{doc.get('kind')}' is not supported")
        folder = api / doc["kind"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{doc['metadata']['name']}.json").write_text(json.dumps(doc))
        print(f"Successfully applied 1 '{doc['kind']}' resource(s)")
elif command == "get":
    kind = KINDS[args[1].lower()]
    name = args[2] if len(args) > 2 and not args[2].startswith("-") else None
    folder = api / kind
    if name:
        path = folder / f"{name}.json"
        if not path.exists():
            sys.exit(f"Failed to get resources: resource does not exist: {kind}({name})")
        print(path.read_text())
    else:
        items = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []
        if kind == "CalicoNodeStatus":
            items = [node_status(i) for i in items]
        print(json.dumps({"kind": f"{kind}List", "apiVersion": "projectcalico.org/v3", "items": items}))
elif command == "delete":
    path = api / KINDS[args[1].lower()] / f"{args[2]}.json"
    if not path.exists():
        sys.exit("resource does not exist")
    path.unlink()
    print("Successfully deleted 1 resource(s)")
else:
    sys.exit(f"stub calicoctl: unsupported: {' '.join(args)}")
"""


def write_fixtures(lab_root: Path) -> str:
    """A real CA certificate for the lab's "clusters"; returns kubeadm's discovery hash for it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    fixtures = lab_root / "kube-fixtures"
    if (fixtures / "ca.hash").exists():
        return (fixtures / "ca.hash").read_text().strip()
    fixtures.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (fixtures / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = "sha256:" + hashlib.sha256(spki).hexdigest()
    (fixtures / "ca.hash").write_text(digest + "\n")
    return digest
