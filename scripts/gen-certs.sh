#!/usr/bin/env bash
# Generates a throw-away test PKI with certtool (ECDSA P-256) into DIR:
#   ca.pem ca-key.pem              the trusted CA
#   server.pem server-key.pem      signed by ca, names localhost/127.0.0.1/::1
#   client.pem client-key.pem      signed by ca, for mTLS (CN=test-client)
#   other-ca.pem other-ca-key.pem  an unrelated CA
#   other-server.pem other-server-key.pem  signed by other-ca
# Nothing here is committed: keys are made fresh for every run.
set -euo pipefail
dir=${1:?usage: gen-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
# Reuse a PKI made within the last day (certificates last two).
[ -n "$(find . -maxdepth 1 -name .done -mmin -1440 2>/dev/null)" ] && exit 0
rm -f .done

key() { certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 --outfile "$1" 2>/dev/null; }
tmpl() { printf '%s\n' "$@" > "$T"; }
T=$(mktemp)
trap 'rm -f "$T"' EXIT

for ca in ca other-ca; do
  key "$ca-key.pem"
  tmpl "cn = rpcnet test $ca" "ca" "cert_signing_key" "expiration_days = 2"
  certtool --generate-self-signed --load-privkey "$ca-key.pem" --template "$T" --outfile "$ca.pem" 2>/dev/null
done

leaf() { # name ca cn role
  key "$1-key.pem"
  tmpl "cn = $3" "dns_name = localhost" "ip_address = 127.0.0.1" "ip_address = ::1" \
       "$4" "signing_key" "expiration_days = 2"
  certtool --generate-certificate --load-privkey "$1-key.pem" --load-ca-certificate "$2.pem" \
           --load-ca-privkey "$2-key.pem" --template "$T" --outfile "$1.pem" 2>/dev/null
}
leaf server ca localhost tls_www_server
leaf client ca test-client tls_www_client
leaf other-server other-ca localhost tls_www_server
touch .done
