#!/bin/sh
# mkcerts.sh DIR — a throw-away PKI for tests, made at test time with the openssl CLI (EC P-256: fast):
#   ca.pem ca.key          the test CA (give ca.pem to the agent as platform.ca_file, to curl as CAINFO)
#   server.pem server.key  for refplat; subjectAltName 127.0.0.1, ::1, localhost
#   client.pem client.key  a client certificate from the same CA, for refplat --client-ca ca.pem
#   rogue.pem rogue.key    a self-signed client certificate that --client-ca must refuse
set -eu

if [ $# -ne 1 ]; then
	echo "usage: mkcerts.sh DIR" >&2
	exit 64
fi
dir=$1
mkdir -p "$dir"
cd "$dir"
umask 077

OPENSSL=${OPENSSL:-openssl}
days=3650
curve="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"

# The CA: basicConstraints and keyUsage are what OpenSSL 3 checks on an issuer.
# shellcheck disable=SC2086
$OPENSSL req -x509 $curve -keyout ca.key -out ca.pem -days $days -sha256 \
	-subj "/O=labshare tests/CN=labshare test ca" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" \
	-addext "subjectKeyIdentifier=hash" 2>/dev/null

cat >server.ext <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost
authorityKeyIdentifier=keyid
EOF
cat >client.ext <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
authorityKeyIdentifier=keyid
EOF

# issue NAME CN EXTFILE: a key, a request, a certificate signed by the CA.
issue() {
	# shellcheck disable=SC2086
	$OPENSSL req -new $curve -keyout "$1.key" -out "$1.csr" -subj "/O=labshare tests/CN=$2" 2>/dev/null
	$OPENSSL x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -set_serial "0x$($OPENSSL rand -hex 8)" \
		-days $days -sha256 -extfile "$3" -out "$1.pem" 2>/dev/null
	rm -f "$1.csr"
}
issue server localhost server.ext
issue client labshare-agent-test client.ext

# shellcheck disable=SC2086
$OPENSSL req -x509 $curve -keyout rogue.key -out rogue.pem -days $days -sha256 \
	-subj "/O=nobody/CN=rogue client" -addext "extendedKeyUsage=clientAuth" 2>/dev/null

rm -f server.ext client.ext
# Certificates are public; keys stay 0600 (an agent refuses a group-readable key file).
chmod 0644 ca.pem server.pem client.pem rogue.pem
$OPENSSL verify -CAfile ca.pem server.pem client.pem >/dev/null
