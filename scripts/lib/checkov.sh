#!/usr/bin/env bash
# Runs checkov (the infrastructure-as-code scanner) from a virtualenv of its
# own under .tmp/, made on first use: checkov pins old boto3 and botocore,
# which would break the moto and the AWS CLI that the other tests install in
# the shared Python. Arguments go to checkov.
#
#   scripts/lib/checkov.sh -f swarm/aws/fleet.yaml --framework cloudformation
set -euo pipefail
cd "$(dirname "$0")/../.."
CHECKOV_VERSION=3.3.30
venv=.tmp/checkov-$CHECKOV_VERSION
if [ ! -x "$venv/bin/checkov" ]; then
  echo "installing checkov $CHECKOV_VERSION (PyPI) into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION" >&2
fi
# Offline here: no download of Prisma Cloud's guideline links.
export BC_SKIP_MAPPING=TRUE
exec "$venv/bin/checkov" "$@"
