#!/usr/bin/env bash
# Make a test set of migration credentials (for tests and the demo; for production use
# your own CA):
#   scripts/make-test-certs.sh DIR
# writes into DIR (created if needed, files mode 600):
#   psk                      a pre-shared key (`--tls-psk DIR/psk` on both hosts)
#   ca.pem                   a test CA (`--tls-ca DIR/ca.pem` on both hosts)
#   source.pem source.key    the source host's certificate and key
#   dest.pem dest.key        the destination host's certificate and key
#     both issued to localhost, 127.0.0.1, 198.18.0.1 and 198.18.0.2 (the test hosts),
#     and to their common names vmshift-source / vmshift-destination
#   client.pem client.key    an operator's certificate, for `vmshift ctl` and `vmshift
#                            evacuate` reaching a vmshiftd --listen (CN vmshift-operator)
#   other-psk                another pre-shared key
#   other-ca.pem other.pem other.key  a certificate from another CA
#   expired.pem expired.key  a certificate from ca.pem that has expired
# Needs the openssl command (Debian package openssl).
set -euo pipefail
dir=${1:?usage: scripts/make-test-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() {   # ca NAME CN
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -out "$1.pem" -subj "/CN=$2" -days 3650 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2>/dev/null
}

cert() {   # cert NAME CN CA DAYS
  key "$1.key"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth,clientAuth" \
    "subjectAltName=DNS:$2,DNS:localhost,IP:127.0.0.1,IP:198.18.0.1,IP:198.18.0.2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial \
    -out "$1.pem" -days "$4" -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

openssl rand -hex 32 > psk
openssl rand -hex 32 > other-psk
ca ca "vmshift test CA"
cert source vmshift-source ca 825
cert dest vmshift-destination ca 825
cert client vmshift-operator ca 825
cert expired vmshift-expired ca -1          # valid until a day before it was made
ca other-ca "another CA"
cert other vmshift-other other-ca 825
rm -f ./*.srl
echo "test credentials in $dir: psk, ca.pem, source.pem/.key, dest.pem/.key, client.pem/.key (and others for tests)"
