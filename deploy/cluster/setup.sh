#!/bin/sh
# Joins the three Garage nodes of compose.yaml into one cluster (replication factor 3), makes
# the bucket `shoebox` and imports the key from .env, allowed on it. Run once, after
#   docker compose up -d garage1 garage2 garage3
# then start the rest with `docker compose up -d`. Running it again changes nothing.
set -eu
cd "$(dirname "$0")"
. ./.env
: "${GARAGE_KEY_ID:?set it in .env}" "${GARAGE_SECRET_KEY:?set it in .env}"

# How a node's CLI is reached; the default is its container.
exec_in=${GARAGE_EXEC:-docker compose exec -T}
g() {
    node=$1
    shift
    $exec_in "$node" /garage "$@"
}

ids=""
for node in garage1 garage2 garage3; do
    # The node's full address, ID@IP:PORT, from its own key and configuration.
    ids="$ids $(g "$node" node id -q | tail -n 1)"
done
for id in $ids; do
    g garage1 node connect "$id"
done
if g garage1 layout show | grep -q "Current cluster layout version: 0"; then
    for id in $ids; do
        g garage1 layout assign -z dc1 -c 10G "${id%%@*}"
    done
    g garage1 layout apply --version 1
fi
g garage1 key info "$GARAGE_KEY_ID" >/dev/null 2>&1 ||
    g garage1 key import --yes -n shoebox "$GARAGE_KEY_ID" "$GARAGE_SECRET_KEY"
g garage1 bucket info shoebox >/dev/null 2>&1 || g garage1 bucket create shoebox
g garage1 bucket allow --read --write --owner shoebox --key "$GARAGE_KEY_ID"
echo "Garage is ready: bucket shoebox, key $GARAGE_KEY_ID"
